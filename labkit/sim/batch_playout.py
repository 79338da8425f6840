"""Playout of a whole schedule at once: the same numbers as feeding the incremental models.

The fast path of the simulator (labkit/sim/fastpath.py) knows every message's arrival before
playout starts, so FIFO playout is computed with numpy over all messages instead of an event loop
over objects; other models are replayed message by message in the event loop's order
(deliveries first on a tie, model timers strictly before the next delivery). Both return the
same ``PlayOutcome``. See notebooks/01_why_tiny_packets_jitter.ipynb and DOMAIN.md section 4.

Exact FIFO floats. The model computes s = max(a, tail), tail = s + d message by message;
DOMAIN.md's closed form D + cummax(a - D) rounds differently. ``_fifo_tails`` gets the model's
very numbers in bulk. Within a busy period (from a message finding the queue idle to the next
such message) the tails are a chain of additions s_k + d_k + d_k+1 + ..., each d a whole number
of 1/8 ms (frame padding too). Below 2**48 the grid of a float (its ulp) divides 1/32, so such an
addition is exact while the sum stays below the next power of two; passing it rounds once, to a
grid that still divides 2/8, so later additions are exact again and keep that rounding's tie
parity. Hence while a chain has passed at most one power of two, its tail after message j is
the single rounding of s_k + (D_j - D_k-1), D the cumulative durations (exact: multiples of 1/8
far below 2**53 / 8). A chain passing two powers of two ends above twice its start: such
periods (in practice only in the first seconds of a call), and those starting at or below 0,
are summed in order by ``np.add.accumulate``, which rounds as the model does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from labkit.sim.playout import (
    BYTES_PER_MS,
    FRAME_BYTES,
    Fill,
    Playout,
    PlayRecord,
    Segment,
    deliver_clear,
    timers_before,
)  # fmt: skip
from labkit.sim.sender import CLEAR, MARK, MEDIA

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
EXACT_CHAIN_LIMIT_MS = 2.0**48  # below it a float's grid holds every multiple of 2/8 ms
MAX_PERIOD_ROUNDS = 8  # guesses of where busy periods begin before summing one by one


@dataclass
class Pieces:
    """Media rows that did not play in one go (a frame clock splits them): one entry per
    contiguous piece, in play order: its row, start and byte count."""

    rows: IntArray
    start_ms: FloatArray
    bytes: IntArray

    @classmethod
    def of(cls, media_rows: list[int], plays: list[PlayRecord]) -> Pieces | None:
        """The pieces of ``plays`` (records of ``media_rows``), None if every one played whole."""
        if not any(record.pieces for record in plays):
            return None
        rows, starts, counts = [], [], []
        for row, record in zip(media_rows, plays, strict=True):
            for start, count in record.pieces or ():
                rows.append(row)
                starts.append(start)
                counts.append(count)
        return cls(np.array(rows, dtype=np.int64), np.array(starts, dtype=np.float64),
                   np.array(counts, dtype=np.int64))  # fmt: skip


@dataclass
class PlayOutcome:
    """Per row (NaN / 0 for non-media rows): when it started playing and what became of it;
    the echoes, in the order they happened: ``echo_rows`` (mark row), ``echo_ms`` (echo time),
    ``echo_by_clear`` (echoed by a clear); ``render()`` gives the played segments and the
    silence the model inserted (only the audio needs them: sweeps never ask); ``pieces`` when
    some message played in several pieces."""

    start_ms: FloatArray
    played_bytes: IntArray
    cleared_bytes: IntArray
    discarded_bytes: IntArray
    echo_rows: IntArray
    echo_ms: FloatArray
    echo_by_clear: BoolArray
    render: Callable[[], tuple[list[Segment], list[Fill]]]
    pieces: Pieces | None = None
    end_ms: FloatArray | None = None  # when each row's played part ended (if not in one go)

    @property
    def segments(self) -> list[Segment]:
        return self.render()[0]


def play_fifo(
    kinds: IntArray, sizes: IntArray, sent_ms: FloatArray, arrived_ms: FloatArray,
    payloads: Sequence[bytes], pad_to_frame: bool = False,
) -> PlayOutcome:  # fmt: skip
    """What ``FifoPlayout`` (``pad_to_frame``: pad_every_message) does with these messages.

    Clears split the rows into epochs, played in bulk one after the other: a clear drops the
    bytes not yet played and echoes the marks still pending."""
    n = len(kinds)
    start = np.full(n, math.nan)
    played = np.zeros(n, dtype=np.int64)
    cleared = np.zeros(n, dtype=np.int64)
    media_rows = np.flatnonzero(kinds == MEDIA)
    mark_rows = np.flatnonzero(kinds == MARK)
    clear_rows = np.flatnonzero(kinds == CLEAR)
    media_sizes = sizes[media_rows]
    steps = media_sizes / BYTES_PER_MS
    pads = (-media_sizes % FRAME_BYTES) / BYTES_PER_MS if pad_to_frame else None
    echo_ms = np.empty(len(mark_rows))
    by_clear = np.zeros(len(mark_rows), dtype=np.bool_)
    tail = -math.inf
    media_from = mark_from = 0
    for epoch_end in [*clear_rows.tolist(), n]:
        media_to = int(np.searchsorted(media_rows, epoch_end))
        mark_to = int(np.searchsorted(mark_rows, epoch_end))
        rows = media_rows[media_from:media_to]
        part = slice(media_from, media_to)
        begin, tails = _fifo_tails(arrived_ms[rows], steps[part],
                                   None if pads is None else pads[part], tail)  # fmt: skip
        start[rows], played[rows] = begin, media_sizes[part]
        # a mark is echoed once the audio queued before it has played
        marks = mark_rows[mark_from:mark_to]
        tail_before = np.concatenate(([tail], tails))[np.searchsorted(rows, marks)]
        echo_ms[mark_from:mark_to] = np.maximum(arrived_ms[marks], tail_before)
        if len(tails):
            tail = float(tails[-1])
        if epoch_end < n:
            now = float(arrived_ms[epoch_end])
            # a mark due before the clear arrived was echoed then, the rest by the clear; on a
            # tie the clear goes first if it was in flight, else (sent this instant) the mark
            first = timers_before(float(sent_ms[epoch_end]), now)
            late = echo_ms[mark_from:mark_to] > first
            echo_ms[mark_from:mark_to][late] = now
            by_clear[mark_from:mark_to] = late
            _truncate(media_rows[:media_to], start, played, cleared, sizes, now)
            tail = min(tail, now)
        media_from, mark_from = media_to, mark_to
    last_clear = int(clear_rows[-1]) if len(clear_rows) else -1

    def render() -> tuple[list[Segment], list[Fill]]:
        rows, sizes_ = media_rows.tolist(), media_sizes.tolist()
        starts, counts = start[media_rows].tolist(), played[media_rows].tolist()
        segments = [
            (begin, begin + count / BYTES_PER_MS, payloads[row][:count])
            for row, begin, count, size in zip(rows, starts, counts, sizes_, strict=True)
            if count > 0 or (size == 0 and row > last_clear)
        ]
        return segments, _padding_fills(media_rows, start, played, sizes, pads,
                                        arrived_ms[clear_rows])  # fmt: skip

    discarded = np.zeros(n, dtype=np.int64)
    return PlayOutcome(start, played, cleared, discarded, mark_rows, echo_ms, by_clear, render)


def _padding_fills(media_rows: IntArray, start: FloatArray, played: IntArray, sizes: IntArray,
                   pads: FloatArray | None, clears_ms: FloatArray) -> list[Fill]:  # fmt: skip
    """The silence padding after each message played whole, cut short by a clear."""
    if pads is None:
        return []
    whole = (played[media_rows] == sizes[media_rows]) & (played[media_rows] > 0) & (pads > 0)
    begins = start[media_rows][whole] + played[media_rows][whole] / BYTES_PER_MS
    ends = begins + pads[whole]
    if len(clears_ms):
        after = np.searchsorted(clears_ms, begins, side="left")
        cut = np.where(after < len(clears_ms), clears_ms[np.minimum(after, len(clears_ms) - 1)],
                       np.inf)  # fmt: skip
        ends = np.minimum(ends, cut)
    return [(b, e) for b, e in zip(begins.tolist(), ends.tolist(), strict=True) if e > b]


def _fifo_tails(
    arrived_ms: FloatArray, steps_ms: FloatArray, pads_ms: FloatArray | None, tail_ms: float
) -> tuple[FloatArray, FloatArray]:
    """Start and queue end after each of these media messages, queued behind ``tail_ms``: the
    model's s = max(a, tail); tail = s + step (+ pad) rounded as the model rounds (see the
    module docstring).

    Which messages find the queue idle (begin a busy period) is first guessed from the closed
    form, then checked against the exact tails; a guess off by a rounding is corrected and the
    tails summed again (once at most, in practice)."""
    if len(arrived_ms) == 0:
        return arrived_ms, arrived_ms
    base = arrived_ms.copy()  # where a busy period starting at that message would start
    base[0] = max(base[0], tail_ms)
    widths = steps_ms if pads_ms is None else steps_ms + pads_ms
    total = np.cumsum(widths)
    before = total - widths
    if total[-1] >= EXACT_CHAIN_LIMIT_MS:
        return _fifo_tails_one_by_one(base, steps_ms, pads_ms)
    guess = total + np.maximum.accumulate(base - before)
    idle = _idle_at(base, guess)
    for _ in range(MAX_PERIOD_ROUNDS):
        tails = _period_tails(base, steps_ms, pads_ms, total, before, idle)
        found = _idle_at(base, tails)
        if np.array_equal(found, idle):
            behind = np.empty_like(tails)  # the tail each message queues behind
            behind[0], behind[1:] = math.nan, tails[:-1]
            return np.where(idle, base, behind), tails
        idle = found
    return _fifo_tails_one_by_one(base, steps_ms, pads_ms)


def _idle_at(base: FloatArray, tails: FloatArray) -> BoolArray:
    """Which messages find the queue idle, given the tail after each (np.r_ would cost more
    than the comparison)."""
    idle = np.empty(len(base), dtype=np.bool_)
    idle[0] = True
    np.greater(base[1:], tails[:-1], out=idle[1:])
    return idle


def _period_tails(
    base: FloatArray, steps_ms: FloatArray, pads_ms: FloatArray | None, total: FloatArray,
    before: FloatArray, idle: BoolArray,
) -> FloatArray:  # fmt: skip
    """Tails when the busy periods begin at the ``idle`` rows: one rounded addition per row,
    and in-order sums for the periods where one addition would round differently."""
    heads = np.flatnonzero(idle)
    head_of = heads[np.cumsum(idle) - 1]
    period_base = base[head_of]
    tails: FloatArray = period_base + (total - before[head_of])
    # see the module docstring: one rounded addition is the model's sum unless the tail passed
    # twice the period's start (and below zero the reasoning does not hold: also summed in order)
    inexact = (tails > 2 * period_base) | (tails >= EXACT_CHAIN_LIMIT_MS)
    for lo in dict.fromkeys(head_of[inexact].tolist()):  # periods in order, each once
        after = int(np.searchsorted(heads, lo, side="right"))
        hi = int(heads[after]) if after < len(heads) else len(base)
        tails[lo:hi] = _chain(float(base[lo]), steps_ms[lo:hi],
                              None if pads_ms is None else pads_ms[lo:hi])  # fmt: skip
    return tails


def _chain(begin_ms: float, steps_ms: FloatArray, pads_ms: FloatArray | None) -> FloatArray:
    """The tails of one busy period from ``begin_ms``, added in order (each step, then its pad,
    as the model adds them)."""
    if pads_ms is None:
        return np.add.accumulate(np.concatenate(([begin_ms], steps_ms)))[1:]
    terms = np.empty(2 * len(steps_ms) + 1)
    terms[0], terms[1::2], terms[2::2] = begin_ms, steps_ms, pads_ms
    chained: FloatArray = np.add.accumulate(terms)[2::2]
    return chained


def _fifo_tails_one_by_one(
    base: FloatArray, steps_ms: FloatArray, pads_ms: FloatArray | None
) -> tuple[FloatArray, FloatArray]:
    """``_fifo_tails`` message by message, for inputs beyond the bulk method's reach."""
    begins, tails = [], []
    tail = -math.inf
    pads = [None] * len(base) if pads_ms is None else pads_ms.tolist()
    for now, step, pad in zip(base.tolist(), steps_ms.tolist(), pads, strict=True):
        begin = now if now > tail else tail
        tail = begin + step
        if pad is not None:
            tail += pad
        begins.append(begin)
        tails.append(tail)
    return np.array(begins, dtype=np.float64), np.array(tails, dtype=np.float64)


def _truncate(media_rows: IntArray, start: FloatArray, played: IntArray, cleared: IntArray,
              sizes: IntArray, now: float) -> None:  # fmt: skip
    """A clear at ``now``: drop every byte not yet played, newest first (FifoPlayout's rule:
    it stops at the newest message that had finished by ``now``)."""
    ends = start[media_rows] + played[media_rows] / BYTES_PER_MS
    finished = np.flatnonzero(ends <= now)
    rows = media_rows[finished[-1] + 1 :] if len(finished) else media_rows
    kept = np.minimum(np.maximum(((now - start[rows]) * BYTES_PER_MS).astype(np.int64), 0),
                      played[rows])  # fmt: skip
    cleared[rows] = sizes[rows] - kept
    played[rows] = kept


def replay(
    model: Playout, kinds: list[int], sizes: list[int], sent_ms: list[float],
    arrived_ms: list[float], payloads: Sequence[bytes], names: list[str],
) -> PlayOutcome:  # fmt: skip
    """Feed any incremental model the messages at their arrivals, in the event loop's order:
    the model's timers due before a delivery first, and those due at its instant too when the
    message was sent that very instant (it was not in flight when they fired)."""
    n = len(kinds)
    row_of = {name: row for row, name in enumerate(names) if kinds[row] == MARK}
    echoes: list[tuple[int, float, bool]] = []
    media_rows: list[int] = []

    def run_timers(until_ms: float) -> None:
        while (t := model.next_event_ms()) is not None and t <= until_ms:
            echoes.extend((row_of[name], echo_ms, False) for name, echo_ms in model.advance(t))

    for row in range(n):
        kind, now = kinds[row], arrived_ms[row]
        run_timers(timers_before(sent_ms[row], now))
        if kind == MEDIA:
            media_rows.append(row)
            model.receive_media(payloads[row], now)
        elif kind == MARK:
            model.receive_mark(names[row], now)
        elif kind == CLEAR:
            timer_echoes, clear_echoes = deliver_clear(model, sent_ms[row], now)
            echoes.extend((row_of[name], echo_ms, False) for name, echo_ms in timer_echoes)
            echoes.extend((row_of[name], now, True) for name in clear_echoes)
    run_timers(math.inf)
    start, played, cleared, discarded = [math.nan] * n, [0] * n, [0] * n, [0] * n
    end = [math.nan] * n
    for row, record in zip(media_rows, model.plays, strict=True):
        start[row], played[row] = record.start_ms, record.played_bytes
        cleared[row], discarded[row] = record.cleared_bytes, record.discarded_bytes
        end[row] = record.end_ms
    segments, fills = model.segments, model.fills
    return PlayOutcome(
        np.array(start, dtype=np.float64), np.array(played, dtype=np.int64),
        np.array(cleared, dtype=np.int64), np.array(discarded, dtype=np.int64),
        np.array([row for row, _, _ in echoes], dtype=np.int64),
        np.array([t for _, t, _ in echoes], dtype=np.float64),
        np.array([by for _, _, by in echoes], dtype=np.bool_),
        lambda: (segments, fills),
        pieces := Pieces.of(media_rows, model.plays),
        None if pieces is None else np.array(end, dtype=np.float64),
    )  # fmt: skip

"""The simulator's fast path for strategies that never react to mark echoes.

A strategy that says it is ``echo_blind`` (forward, rechunk, paced, preroll, the original
report's buffer) sends the same messages at the same times whatever Twilio echoes, so the run
splits into stages, each done once and in bulk:

1. the sender alone on the virtual clock (labkit/sim/sender.py): the strategy object itself,
   driven by the sending loop's timing (lateness, stalls, per-message cost);
2. link arrivals for all messages at once (``Link.arrivals_ms``, the same random draws);
3. playout of the whole schedule (labkit/sim/batch_playout.py), giving the mark echo times;
4. echo arrivals over the return link, and which echoes the ledger credits: with
   ``honor_generations`` an echo of generation g counts only if it reaches the app before the
   g-th interrupt (see ``_cleared_first``).

The numbers are the event loop's (tests/test_sim_fastpath.py checks it). Nothing here knows a
strategy's rules: only the world (link, playout, echoes) is vectorised.
See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from labkit.outbound.base import BYTES_PER_MS, OutboundStrategy
from labkit.sim.batch_playout import PlayOutcome, play_fifo, replay
from labkit.sim.links import Link
from labkit.sim.playout import FifoPlayout, Fill, Playout, Segment
from labkit.sim.prepared import PreparedTrace
from labkit.sim.sender import KIND_NAMES, SentMessages, as_list, send_all
from labkit.sim.sender_loop import SenderLoop

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
KIND_NAME_ARRAY = np.array(KIND_NAMES, dtype=object)
Render = Callable[[], tuple[list[Segment], list[Fill]]]


def applies(trace: PreparedTrace, strategy: OutboundStrategy) -> bool:
    """True when ``strategy`` says it is ``echo_blind``, is fresh, and its ledger credits each
    echoed mark once (forgetting a cleared generation's iff ``honor_generations``) and cannot
    evict marks over this trace (fewer trace bytes than its cap)."""
    if not getattr(strategy, "echo_blind", False):
        return False
    ledger = strategy.ledger
    honor = getattr(ledger, "honor_generations", None)
    cap_bytes = getattr(ledger, "max_pending_bytes", math.inf)
    return (
        isinstance(honor, bool)
        and ledger.pending_count == 0
        and ledger.generation == 0
        and trace.audio_bytes <= cap_bytes
    )


def run(
    trace: PreparedTrace, strategy: OutboundStrategy, loop: SenderLoop, fwd: Link, back: Link,
    model: Playout,
) -> tuple[dict[str, Any], Render, IntArray, PlayOutcome]:  # fmt: skip
    """Schedule columns (SCHEDULE_COLUMNS, as numpy arrays), a function rendering the played
    segments and fills, the kind codes and the playout's outcome of one run."""
    sent = send_all(trace, strategy, loop)
    return finish(trace, sent, honors_generations(strategy), fwd, back, model)


def finish(
    trace: PreparedTrace, sent: SentMessages, honor_generations: bool, fwd: Link, back: Link,
    model: Playout,
) -> tuple[dict[str, Any], Render, IntArray, PlayOutcome]:  # fmt: skip
    """Stages 2-4 for the messages ``sent`` (``fwd``, ``back`` and ``model`` fresh)."""
    sent_ms = np.asarray(sent.sent_ms, dtype=np.float64)
    arrived_ms = fwd.arrivals_ms(sent_ms)
    kinds = _kind_codes(sent.kind)
    sizes = np.asarray(sent.size, dtype=np.int64)
    if type(model) is FifoPlayout:
        play = play_fifo(kinds, sizes, sent_ms, arrived_ms, sent.payloads, model.pad_to_frame)
    else:
        play = replay(model, as_list(sent.kind), as_list(sent.size), as_list(sent.sent_ms),
                      arrived_ms.tolist(), sent.payloads, as_list(sent.name))  # fmt: skip
    columns = _columns(sent, kinds, sizes, sent_ms, arrived_ms, play)
    _add_echoes(columns, play, back, trace.interrupts_ms, honor_generations, sent.generation)
    return columns, play.render, kinds, play


def _kind_codes(kinds: list[int] | IntArray) -> IntArray:
    """``kinds`` (0..2) as an array: a list is read as the bytes its codes fit in (half the
    time of np.array on a list)."""
    if isinstance(kinds, np.ndarray):
        return kinds.astype(np.int64, copy=False)
    codes: IntArray = np.frombuffer(bytes(kinds), dtype=np.uint8).astype(np.int64)
    return codes


def fingerprint(sent: SentMessages, honor_generations: bool) -> bytes:
    """A digest of everything of ``sent`` that the metrics depend on (all but payload bytes:
    playout models and metrics read only their lengths, which ``size`` holds, and the bytes
    are the trace's own at ``item_id``/``offset``). Arrivals are a function of these on one
    link and seed."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(b"h" if honor_generations else b"d")
    for ints in (sent.kind, sent.content_index, sent.offset, sent.size, sent.generation):
        digest.update(np.array(ints, dtype=np.int64).tobytes())
    digest.update(np.array(sent.sent_ms, dtype=np.float64).tobytes())
    for texts in (sent.item_id, sent.name):
        _digest_texts(digest, as_list(texts))
    return digest.digest()


def _digest_texts(digest: Any, texts: list[str]) -> None:
    """Feed ``texts`` to ``digest`` so that different lists give different bytes: joined by NUL
    when no text holds one (a count of the NULs checks it), else each after its length. The
    lengths cost 4x the join (~0.2 ms a column on the longest trace): most texts hold no NUL."""
    joined = "\0".join(texts)
    if joined.count("\0") == max(len(texts) - 1, 0):
        digest.update(b"j" + len(texts).to_bytes(8, "little"))
    else:
        digest.update(b"l" + np.fromiter(map(len, texts), np.int64, len(texts)).tobytes())
        joined = "".join(texts)
    digest.update(joined.encode("utf-8", "surrogatepass"))


def honors_generations(strategy: OutboundStrategy) -> bool:
    """Whether the strategy's ledger ignores echoes of marks an interrupt cleared."""
    return bool(getattr(strategy.ledger, "honor_generations", False))


def _columns(
    sent: SentMessages, kinds: IntArray, sizes: IntArray, sent_ms: FloatArray,
    arrived_ms: FloatArray, play: PlayOutcome,
) -> dict[str, Any]:  # fmt: skip
    """The schedule as columns: numpy arrays (int64, float64, object) where the metrics read
    them, converted once here unless they are arrays already; ``generation`` and ``name`` stay
    as the sender gave them (the metrics read names of marks only, and the schedule DataFrame
    takes lists anyway)."""
    played = play.played_bytes
    start = np.where(played > 0, play.start_ms, math.nan)
    end = start + played / BYTES_PER_MS  # the same float operations as begin + played / 8
    if play.end_ms is not None:  # some message played in pieces: it ended with its last
        end = np.where(played > 0, play.end_ms, math.nan)
    return {
        "kind": KIND_NAME_ARRAY[kinds],
        "item_id": np.asarray(sent.item_id, dtype=object),
        "content_index": np.asarray(sent.content_index, dtype=np.int64),
        "offset": np.asarray(sent.offset, dtype=np.int64),
        "size": sizes,
        "generation": sent.generation,
        "sent_ms": sent_ms,
        "arrived_ms": arrived_ms,
        "name": sent.name,
        "play_start_ms": start,
        "play_end_ms": end,
        "played_bytes": played,
        "cleared_bytes": play.cleared_bytes,
        "discarded_bytes": play.discarded_bytes,
    }


def _add_echoes(columns: dict[str, Any], play: PlayOutcome, back: Link,
                interrupts_ms: list[float], honor_generations: bool,
                generations: list[int] | IntArray) -> None:  # fmt: skip
    """Echo columns: when each mark was echoed and the echo reached the app, and the bytes the
    ledger credited (a mark's size, once, unless its interrupt made the ledger forget it)."""
    n = len(columns["kind"])
    echo, received = np.full(n, math.nan), np.full(n, math.nan)
    credited = np.zeros(n, dtype=np.int64)
    rows, echo_ms = play.echo_rows, play.echo_ms
    received_ms = back.arrivals_ms(echo_ms)
    latest = _latest_of_each(rows)  # a mark echoed twice shows its last echo
    echo[rows[latest]], received[rows[latest]] = echo_ms[latest], received_ms[latest]
    credits = rows
    if honor_generations and interrupts_ms:
        gens = np.asarray(generations, dtype=np.int64)[rows]
        forgotten = _cleared_first(gens, received_ms, play.echo_by_clear,
                                   np.array(interrupts_ms, dtype=np.float64))  # fmt: skip
        credits = rows[~forgotten]
    credited[credits] = columns["size"][credits]
    columns.update(echo_ms=echo, echo_received_ms=received, credited_bytes=credited)


def _latest_of_each(rows: IntArray) -> IntArray | slice:
    """Positions of the last occurrence of each row (all of them when none repeats)."""
    if len(rows) < 2 or bool(np.all(rows[1:] > rows[:-1])):
        return slice(None)
    _, from_end = np.unique(rows[::-1], return_index=True)
    latest: IntArray = len(rows) - 1 - from_end
    return latest


def _cleared_first(generations: IntArray, received_ms: FloatArray, by_clear: BoolArray,
                   interrupts_ms: FloatArray) -> BoolArray:  # fmt: skip
    """Whether the ledger forgot each mark (its generation's interrupt) before its echo came.

    The event loop hands an echo to the strategy before a trace event of the same instant,
    unless the echo was caused by that very interrupt's clear.
    """
    interrupted = generations < len(interrupts_ms)
    cut_ms = interrupts_ms[np.where(interrupted, generations, 0)]
    forgotten: BoolArray = interrupted & (by_clear | (cut_ms < received_ms))
    return forgotten

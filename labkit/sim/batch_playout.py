"""Playout of a whole schedule at once: the same numbers as feeding the incremental models.

The fast path of the simulator (labkit/sim/fastpath.py) knows every message's arrival before
playout starts, so FIFO playout is one loop over plain floats instead of an event loop over
objects; other models are replayed message by message in the event loop's order (deliveries
first on a tie, model timers strictly before the next delivery). Both return the same
``PlayOutcome``. The FIFO loop keeps the model's exact float operations (s = max(a, tail),
tail = s + d) rather than DOMAIN.md's closed form D + cummax(a - D), whose rounding differs.
See notebooks/01_why_tiny_packets_jitter.ipynb and DOMAIN.md section 4.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from labkit.sim.playout import BYTES_PER_MS, FRAME_BYTES, FifoPlayout, Segment
from labkit.sim.sender import CLEAR, MARK, MEDIA


@dataclass
class PlayOutcome:
    """Per row (NaN / 0 for non-media rows): when it started playing and what became of it;
    ``echoes`` lists (mark row, echo time, echoed by a clear) in the order of the echoes;
    ``render()`` gives the played segments (only the audio needs them: sweeps never ask)."""

    start_ms: list[float]
    played_bytes: list[int]
    cleared_bytes: list[int]
    discarded_bytes: list[int]
    echoes: list[tuple[int, float, bool]]
    render: Callable[[], list[Segment]]

    @property
    def segments(self) -> list[Segment]:
        return self.render()


def play_fifo(
    kinds: list[int], sizes: list[int], sent_ms: list[float], arrived_ms: list[float],
    payloads: list[bytes], pad_to_frame: bool = False,
) -> PlayOutcome:  # fmt: skip
    """What ``FifoPlayout`` (``pad_to_frame`` = frame_padding) does with these messages."""
    n = len(kinds)
    start, played, cleared = [math.nan] * n, [0] * n, [0] * n
    media_rows: list[int] = []
    pending: list[tuple[int, float]] = []  # marks not yet echoed: (row, echo time if no clear)
    echoes: list[tuple[int, float, bool]] = []
    last_clear = -1
    tail = -math.inf
    for row in range(n):
        kind, now = kinds[row], arrived_ms[row]
        if kind == MEDIA:
            size = sizes[row]
            begin = now if now > tail else tail
            start[row], played[row] = begin, size
            media_rows.append(row)
            tail = begin + size / BYTES_PER_MS
            if pad_to_frame:
                tail += (-size % FRAME_BYTES) / BYTES_PER_MS
        elif kind == MARK:
            pending.append((row, now if now > tail else tail))
        elif kind == CLEAR:
            # a mark due before the clear arrived was echoed then, the rest by the clear; on a
            # tie the clear goes first if it was in flight, else (sent this instant) the mark
            first = now if sent_ms[row] == now else math.nextafter(now, -math.inf)
            echoes += [(r, t, False) if t <= first else (r, now, True) for r, t in pending]
            pending = []
            _truncate(media_rows, start, played, cleared, sizes, now)
            last_clear = row
            tail = min(tail, now)
    echoes += [(r, t, False) for r, t in pending]

    def render() -> list[Segment]:
        return [
            (start[r], start[r] + played[r] / BYTES_PER_MS, payloads[r][: played[r]])
            for r in media_rows
            if played[r] > 0 or (sizes[r] == 0 and r > last_clear)
        ]

    return PlayOutcome(start, played, cleared, [0] * n, echoes, render)


def _truncate(media_rows: list[int], start: list[float], played: list[int], cleared: list[int],
              sizes: list[int], now: float) -> None:  # fmt: skip
    """A clear at ``now``: drop every byte not yet played, newest first (FifoPlayout's rule)."""
    for row in reversed(media_rows):
        if start[row] + played[row] / BYTES_PER_MS <= now:
            break
        kept = min(max(int((now - start[row]) * BYTES_PER_MS), 0), played[row])
        cleared[row] = sizes[row] - kept
        played[row] = kept


def replay(
    model: FifoPlayout, kinds: list[int], sizes: list[int], sent_ms: list[float],
    arrived_ms: list[float], payloads: list[bytes], names: list[str], items: list[Hashable],
    last: list[bool],
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
        run_timers(now if sent_ms[row] == now else math.nextafter(now, -math.inf))
        if kind == MEDIA:
            media_rows.append(row)
            model.receive_media(payloads[row], now, item=items[row], last=last[row])
        elif kind == MARK:
            model.receive_mark(names[row], now)
        elif kind == CLEAR:
            echoes.extend((row_of[name], now, True) for name in model.receive_clear(now))
    run_timers(math.inf)
    start, played, cleared, discarded = [math.nan] * n, [0] * n, [0] * n, [0] * n
    for row, record in zip(media_rows, model.plays, strict=True):
        start[row], played[row] = record.start_ms, record.played_bytes
        cleared[row], discarded[row] = record.cleared_bytes, record.discarded_bytes
    segments = model.segments
    return PlayOutcome(start, played, cleared, discarded, echoes, lambda: segments)

"""Twilio-side playout models: incremental, sans-I/O, shared by the simulator and the emulator.

Each model receives the outbound messages at their arrival time (``now``, ms), plays queued audio at
8 bytes/ms, and echoes marks when the audio before them has played. ``advance(now)`` returns the
marks whose echo time is due; ``next_event_ms()`` says when to call it next. ``segments`` lists what
the caller heard: ``(start_ms, end_ms, payload)``, gaps between them are silence.

Models (see notebooks/01_why_tiny_packets_jitter.ipynb and DOMAIN.md section 4):
- ``fifo``: Twilio as documented; plays whenever anything is queued:
  s_i = max(a_i, s_{i-1} + d_{i-1}).
- ``prefetch(depth_ms)``: after running empty (and at the start), waits until ``depth_ms`` is
  queued, the item ends, or ``max_wait_ms`` has passed (PJSIP-like re-buffering).
- ``fixed(delay_ms)``: each item plays on a fixed schedule
  ``first arrival + delay_ms + media offset``; a message arriving after its slot is discarded
  whole and its slot concealed (NetEQ-like).
- ``frame_padding``: FIFO, but every message is padded with silence to whole 20 ms frames.

``receive_media`` takes optional keyword-only hints the simulator knows and Twilio does not:
``item`` (any hashable naming the item, to anchor ``fixed`` schedules) and ``last`` (this message
carries the item's final byte, so ``prefetch`` stops waiting).

``passive_timers`` says a model's ``advance`` only releases mark echoes (fifo, frame_padding,
fixed; not prefetch, whose timer starts playback): the simulator may then hand it each message as
soon as its arrival time is known.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Protocol

BYTES_PER_MS = 8
FRAME_BYTES = 160
EPS_MS = 1e-9  # arrivals within this of a deadline count as on time
PLAYOUT_NAMES = ("fifo", "prefetch", "fixed", "frame_padding")

Segment = tuple[float, float, bytes]


@dataclass(slots=True)
class PlayRecord:
    """What became of one received media message; ``start_ms`` is NaN while it waits."""

    arrived_ms: float
    size: int
    start_ms: float = math.nan
    played_bytes: int = 0
    cleared_bytes: int = 0
    discarded_bytes: int = 0
    segment_index: int = -1

    @property
    def end_ms(self) -> float:
        """End of the played part (NaN if nothing plays)."""
        return self.start_ms + self.played_bytes / BYTES_PER_MS


class Playout(Protocol):
    """The incremental playout contract (used live by the Twilio emulator)."""

    segments: list[Segment]
    plays: list[PlayRecord]

    def receive_media(
        self, payload: bytes, now: float, *, item: Hashable | None = None, last: bool = False
    ) -> None: ...

    def receive_mark(self, name: str, now: float) -> None: ...

    def receive_clear(self, now: float) -> list[str]: ...

    def advance(self, now: float) -> list[tuple[str, float]]: ...

    def next_event_ms(self) -> float | None: ...


class FifoPlayout:
    """Twilio as documented: play whatever is queued, in order, the moment it is there."""

    name = "fifo"
    # advance() only releases mark echoes; all else follows from the receive calls alone, so a
    # driver may hand over each message as soon as its arrival time is known, before the clock
    # gets there (the simulator does: labkit/sim/simulator.py).
    passive_timers = True

    def __init__(self, pad_to_frame: bool = False) -> None:
        self.pad_to_frame = pad_to_frame
        self.segments: list[Segment] = []
        self.plays: list[PlayRecord] = []
        self._tail_ms = -math.inf  # when everything scheduled so far has played
        self._marks: deque[list[Any]] = deque()  # [echo_ms, name, index of the media before it]

    # --- accounting -------------------------------------------------------------------------
    @property
    def played_bytes(self) -> int:
        return sum(p.played_bytes for p in self.plays)

    @property
    def cleared_bytes(self) -> int:
        return sum(p.cleared_bytes for p in self.plays)

    @property
    def discarded_bytes(self) -> int:
        return sum(p.discarded_bytes for p in self.plays)

    # --- messages ---------------------------------------------------------------------------
    def receive_media(
        self, payload: bytes, now: float, *, item: Hashable | None = None, last: bool = False
    ) -> None:
        # _schedule(record, payload, max(now, tail)) inline: once per message, 0.3 us saved
        size = len(payload)
        tail_ms = self._tail_ms
        start_ms = tail_ms if tail_ms > now else now
        end_ms = start_ms + size / BYTES_PER_MS
        self.plays.append(PlayRecord(now, size, start_ms, size, 0, 0, len(self.segments)))
        self.segments.append((start_ms, end_ms, payload))
        self._tail_ms = end_ms + self._padding_ms(size) if self.pad_to_frame else end_ms

    def receive_mark(self, name: str, now: float) -> None:
        self._marks.append([max(now, self._tail_ms), name, len(self.plays) - 1])

    def receive_clear(self, now: float) -> list[str]:
        names = [mark[1] for mark in self._marks]
        self._marks.clear()
        self._truncate_after(now)
        return names

    def advance(self, now: float) -> list[tuple[str, float]]:
        due: list[tuple[str, float]] = []
        marks = self._marks
        while marks and marks[0][0] <= now:
            echo_ms, name, _ = marks.popleft()
            due.append((name, echo_ms))
        return due

    def next_event_ms(self) -> float | None:
        if self._marks:
            echo_ms: float = self._marks[0][0]
            return echo_ms if echo_ms < math.inf else None
        return None

    # --- helpers ----------------------------------------------------------------------------
    def _schedule(self, record: PlayRecord, payload: bytes, start_ms: float) -> None:
        record.start_ms = start_ms
        record.played_bytes = record.size
        record.segment_index = len(self.segments)
        end_ms = start_ms + record.size / BYTES_PER_MS
        self.segments.append((start_ms, end_ms, payload))
        self._tail_ms = end_ms + self._padding_ms(record.size)

    def _padding_ms(self, size: int) -> float:
        if not self.pad_to_frame:
            return 0.0
        return (-size % FRAME_BYTES) / BYTES_PER_MS

    def _truncate_after(self, now: float) -> None:
        """A clear at ``now``: drop every byte not yet played, newest first."""
        for record in reversed(self.plays):
            if record.discarded_bytes:
                continue
            if not math.isnan(record.start_ms) and record.end_ms <= now:
                break
            kept = 0 if math.isnan(record.start_ms) else int((now - record.start_ms) * BYTES_PER_MS)
            kept = min(max(kept, 0), record.played_bytes)
            record.cleared_bytes = record.size - kept
            record.played_bytes = kept
            if record.segment_index >= 0:
                start_ms, _, payload = self.segments[record.segment_index]
                self.segments[record.segment_index] = (
                    start_ms,
                    start_ms + kept / BYTES_PER_MS,
                    payload[:kept],
                )
        self.segments = [seg for seg in self.segments if seg[1] > seg[0]]
        self._reindex_segments()
        self._tail_ms = min(self._tail_ms, now)

    def _reindex_segments(self) -> None:
        index = 0
        for record in self.plays:
            if record.played_bytes > 0 and record.segment_index >= 0:
                record.segment_index = index
                index += 1
            else:
                record.segment_index = -1


class PrefetchPlayout(FifoPlayout):
    """After running empty, re-buffer to ``depth_ms`` before playing again (PJSIP-like)."""

    name = "prefetch"
    passive_timers = False  # its timer starts playback after a wait

    def __init__(self, depth_ms: float = 60.0, max_wait_ms: float = 1000.0) -> None:
        super().__init__()
        if depth_ms < 0 or max_wait_ms <= 0:
            raise ValueError(
                f"prefetch playout: depth_ms must be >= 0 and max_wait_ms > 0, "
                f"got depth_ms={depth_ms}, max_wait_ms={max_wait_ms}"
            )
        self.depth_ms = depth_ms
        self.max_wait_ms = max_wait_ms
        self._waiting: list[tuple[PlayRecord, bytes]] = []
        self._wait_started_ms = math.nan
        self._waiting_item: Hashable | None = None

    def receive_media(
        self, payload: bytes, now: float, *, item: Hashable | None = None, last: bool = False
    ) -> None:
        self.advance_timers(now)
        if self._waiting and item is not None and item != self._waiting_item:
            self._start_playing(now)  # a new item means the waiting one ended
        record = PlayRecord(arrived_ms=now, size=len(payload))
        self.plays.append(record)
        if not self._waiting and now <= self._tail_ms + EPS_MS:
            self._schedule(record, payload, max(now, self._tail_ms))
            return
        if not self._waiting:
            self._wait_started_ms = now
            self._waiting_item = item
        self._waiting.append((record, payload))
        queued_bytes = sum(r.size for r, _ in self._waiting)
        if last or queued_bytes >= self.depth_ms * BYTES_PER_MS:
            self._start_playing(now)

    def receive_mark(self, name: str, now: float) -> None:
        self.advance_timers(now)
        echo_ms = math.inf if self._waiting else max(now, self._tail_ms)
        self._marks.append([echo_ms, name, len(self.plays) - 1])

    def receive_clear(self, now: float) -> list[str]:
        self._waiting.clear()
        return super().receive_clear(now)

    def advance(self, now: float) -> list[tuple[str, float]]:
        self.advance_timers(now)
        return super().advance(now)

    def next_event_ms(self) -> float | None:
        candidates = [self._wait_started_ms + self.max_wait_ms] if self._waiting else []
        mark_ms = super().next_event_ms()
        if mark_ms is not None:
            candidates.append(mark_ms)
        return min(candidates) if candidates else None

    def advance_timers(self, now: float) -> None:
        if self._waiting and now >= self._wait_started_ms + self.max_wait_ms:
            self._start_playing(self._wait_started_ms + self.max_wait_ms)

    def _start_playing(self, now: float) -> None:
        for record, payload in self._waiting:
            self._schedule(record, payload, max(now, self._tail_ms))
        self._waiting.clear()
        for mark in self._marks:
            if mark[0] == math.inf:
                index = mark[2]
                before = self.plays[index] if index >= 0 else None
                end_ms = before.start_ms + before.size / BYTES_PER_MS if before else -math.inf
                mark[0] = max(now, end_ms)


class FixedPlayout(FifoPlayout):
    """Fixed schedule per item: first arrival + ``delay_ms`` + media offset; late ones discarded."""

    name = "fixed"

    def __init__(self, delay_ms: float = 100.0, talkspurt_gap_ms: float = 500.0) -> None:
        super().__init__()
        if delay_ms < 0:
            raise ValueError(f"fixed playout: delay_ms must be >= 0, got {delay_ms}")
        self.delay_ms = delay_ms
        self.talkspurt_gap_ms = talkspurt_gap_ms
        self._item: Hashable | None = None
        self._anchor_ms = math.nan
        self._offset_ms = 0.0

    def receive_media(
        self, payload: bytes, now: float, *, item: Hashable | None = None, last: bool = False
    ) -> None:
        if self._is_new_talkspurt(now, item):
            self._item = item
            self._anchor_ms = max(now + self.delay_ms, self._tail_ms)
            self._offset_ms = 0.0
        record = PlayRecord(arrived_ms=now, size=len(payload))
        self.plays.append(record)
        slot_ms = self._anchor_ms + self._offset_ms
        self._offset_ms += record.size / BYTES_PER_MS
        if now > slot_ms + EPS_MS:
            record.start_ms = slot_ms
            record.discarded_bytes = record.size  # late: its slot is concealed
            self._tail_ms = max(self._tail_ms, slot_ms + record.size / BYTES_PER_MS)
            return
        self._schedule(record, payload, slot_ms)

    def receive_clear(self, now: float) -> list[str]:
        self._anchor_ms = math.nan
        return super().receive_clear(now)

    def _is_new_talkspurt(self, now: float, item: Hashable | None) -> bool:
        if math.isnan(self._anchor_ms):
            return True
        if item is not None:
            return item != self._item
        return now > self._tail_ms + self.talkspurt_gap_ms


def make_playout(name: str, **params: float) -> FifoPlayout:
    """A fresh playout model by name: fifo, prefetch(depth_ms), fixed(delay_ms), frame_padding."""
    try:
        if name == "fifo":
            return FifoPlayout(**params)  # type: ignore[arg-type]
        if name == "frame_padding":
            return FifoPlayout(pad_to_frame=True, **params)
        if name == "prefetch":
            return PrefetchPlayout(**params)
        if name == "fixed":
            return FixedPlayout(**params)
    except TypeError as exc:
        raise ValueError(f"playout {name!r}: bad parameters {params}: {exc}") from None
    raise ValueError(f"unknown playout {name!r}; choose one of {', '.join(PLAYOUT_NAMES)}")

"""Twilio-side playout models: incremental, sans-I/O, shared by the simulator and the emulator.

Each model receives the outbound messages at their arrival time (``now``, ms), plays queued audio at
8 bytes/ms, and echoes marks when the audio before them has played. ``advance(now)`` returns the
marks whose echo time is due; ``next_event_ms()`` says when to call it next. ``segments`` lists the
audio the caller heard, ``(start_ms, end_ms, payload)``; ``fills`` lists silence the model itself
inserted (padding), ``(start_ms, end_ms)``. Any other time between segments is a gap in which
Twilio sent the carrier nothing, which the carrier conceals (labkit.sim.render).

Twilio documents only that media "is buffered and played in the order received"; it documents no
frame clock, padding, jitter buffer or playout delay. So each model is a hypothesis about Twilio,
and none is told anything Twilio is not told (no item boundaries, no end of an answer):

- ``fifo``: Twilio as documented: play whatever is queued, in order, the moment it is there,
  s_i = max(a_i, s_{i-1} + d_{i-1}). Supported by Twilio's Media Streams documentation.
- ``frame_clock``: Twilio feeds the call in 20 ms RTP frames (160 bytes of mu-law), the usual
  packetisation of G.711 (RFC 3551 section 4.5.14's default 20 ms), on a clock that ticks every
  20 ms. At a tick a full frame plays if 160 bytes are queued; if fewer are queued the queue is dry,
  and the partial frame is padded with silence. Nothing plays at a tick with nothing queued.
- ``frame_clock_skip``: the same clock, but a partial frame waits for the next tick (the tick is
  skipped: nothing is sent, the carrier conceals) unless it already waited ``max_skipped_ticks``.
- ``prefetch(depth_ms, max_wait_ms)``: after running empty (and at the start), wait until
  ``depth_ms`` is queued or ``max_wait_ms`` passed since the first waiting byte, then play (a
  re-buffering receiver, like PJSIP's jitter buffer prefetch).
- ``pad_every_message``: every message padded with silence to whole 20 ms frames even while audio is
  queued. The extreme: it turns 7.4 s of 20-60 byte deltas into ~30 s of audio, so it is broken
  audio throughout, not a stutter at word starts; kept to show why it cannot be the explanation.
- ``fixed(delay_ms)``: a fixed schedule per talkspurt (first arrival + ``delay_ms`` + media offset);
  a message arriving after its slot is discarded and its slot concealed (WebRTC NetEQ-like). A
  talkspurt starts after ``talkspurt_gap_ms`` of idle queue. Not a hypothesis about Twilio; a
  receiver policy for comparison.

``passive_timers`` says a model's ``advance`` only releases mark echoes (fifo, pad_every_message,
fixed): the simulator may then hand it each message as soon as its arrival time is known.
See notebooks/01_why_tiny_packets_jitter.ipynb and notebooks/06_which_explanation_survives.ipynb.
"""

from __future__ import annotations

import inspect
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

BYTES_PER_MS = 8
FRAME_BYTES = 160
FRAME_MS = 20.0
EPS_MS = 1e-9  # arrivals within this of a deadline count as on time
PLAYOUT_NAMES = ("fifo", "frame_clock", "frame_clock_skip", "prefetch", "pad_every_message",
                 "fixed")  # fmt: skip
DEFAULT_PLAYOUT = "fifo"
TWILIO_HYPOTHESES = ("fifo", "frame_clock", "frame_clock_skip", "prefetch", "pad_every_message")

Segment = tuple[float, float, bytes]
Fill = tuple[float, float]


@dataclass(slots=True)
class PlayRecord:
    """What became of one received media message; ``start_ms`` is NaN while it waits.

    ``pieces`` is set when the message did not play in one go (a frame clock may split it):
    (start_ms, bytes) of each contiguous piece, in order."""

    arrived_ms: float
    size: int
    start_ms: float = math.nan
    played_bytes: int = 0
    cleared_bytes: int = 0
    discarded_bytes: int = 0
    segment_index: int = -1
    pieces: list[tuple[float, int]] | None = field(default=None)

    @property
    def end_ms(self) -> float:
        """End of the played part (NaN if nothing plays)."""
        if self.pieces:
            start, count = self.pieces[-1]
            return start + count / BYTES_PER_MS
        return self.start_ms + self.played_bytes / BYTES_PER_MS


class Playout(Protocol):
    """The incremental playout contract (used live by the Twilio emulator)."""

    name: str
    passive_timers: bool
    fills: list[Fill]
    plays: list[PlayRecord]

    @property
    def segments(self) -> list[Segment]: ...

    def receive_media(self, payload: bytes, now: float) -> None: ...

    def receive_mark(self, name: str, now: float) -> None: ...

    def receive_clear(self, now: float) -> list[str]: ...

    def advance(self, now: float) -> list[tuple[str, float]]: ...

    def next_event_ms(self) -> float | None: ...


def _at_least(value: float, low: float) -> bool:
    """A finite number >= ``low`` (NaN and infinities are not parameters)."""
    return math.isfinite(value) and value >= low


def _above(value: float, low: float) -> bool:
    return math.isfinite(value) and value > low


def timers_before(sent_ms: float, arrived_ms: float) -> float:
    """The last instant whose timers fire before a message sent at ``sent_ms`` arrives at
    ``arrived_ms``. On a tie a message in flight goes first; one sent that very instant goes
    after them (they fired before it was sent). The one tie rule of every driver."""
    return arrived_ms if sent_ms == arrived_ms else math.nextafter(arrived_ms, -math.inf)


def deliver_clear(
    model: Playout, sent_ms: float, now: float
) -> tuple[list[tuple[str, float]], list[str]]:
    """Hand ``model`` a clear: its clock first runs up to ``timers_before`` the clear (a frame
    clock's tick there plays; marks due echo as usual), then the clear drops what is queued.
    Returns those echoes ``(name, echo_ms)`` and the marks the clear itself echoes at ``now``."""
    return model.advance(timers_before(sent_ms, now)), model.receive_clear(now)


def _echoes_due(marks: deque[list[Any]], now: float) -> list[tuple[str, float]]:
    """Release the pending marks (``[echo_ms, name, ...]``, in echo order) due by ``now``."""
    due: list[tuple[str, float]] = []
    while marks and marks[0][0] <= now:
        echo_ms, name, _ = marks.popleft()
        due.append((name, echo_ms))
    return due


class _Accounting:
    """Byte totals over ``plays``, shared by every model."""

    plays: list[PlayRecord]

    @property
    def played_bytes(self) -> int:
        return sum(p.played_bytes for p in self.plays)

    @property
    def cleared_bytes(self) -> int:
        return sum(p.cleared_bytes for p in self.plays)

    @property
    def discarded_bytes(self) -> int:
        return sum(p.discarded_bytes for p in self.plays)


class FifoPlayout(_Accounting):
    """Twilio as documented: play whatever is queued, in order, the moment it is there.
    ``pad_to_frame`` pads every message to whole 20 ms frames (``pad_every_message``)."""

    name = "fifo"
    # advance() only releases mark echoes; all else follows from the receive calls alone, so a
    # driver may hand over each message as soon as its arrival time is known, before the clock
    # gets there (the simulator does: labkit/sim/simulator.py).
    passive_timers = True

    def __init__(self, pad_to_frame: bool = False) -> None:
        self.pad_to_frame = pad_to_frame
        if pad_to_frame:
            self.name = "pad_every_message"
        self.segments: list[Segment] = []
        self.fills: list[Fill] = []
        self.plays: list[PlayRecord] = []
        self._tail_ms = -math.inf  # when everything scheduled so far has played
        self._marks: deque[list[Any]] = deque()  # [echo_ms, name, index of the media before it]

    # --- messages ---------------------------------------------------------------------------
    def receive_media(self, payload: bytes, now: float) -> None:
        # _schedule(record, payload, max(now, tail)) inline: once per message
        size = len(payload)
        tail_ms = self._tail_ms
        start_ms = tail_ms if tail_ms > now else now
        end_ms = start_ms + size / BYTES_PER_MS
        self.plays.append(PlayRecord(now, size, start_ms, size, 0, 0, len(self.segments)))
        self.segments.append((start_ms, end_ms, payload))
        self._tail_ms = end_ms + self._pad(end_ms, size) if self.pad_to_frame else end_ms

    def receive_mark(self, name: str, now: float) -> None:
        self._marks.append([max(now, self._tail_ms), name, len(self.plays) - 1])

    def receive_clear(self, now: float) -> list[str]:
        names = [mark[1] for mark in self._marks]
        self._marks.clear()
        self._truncate_after(now)
        return names

    def advance(self, now: float) -> list[tuple[str, float]]:
        return _echoes_due(self._marks, now)

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
        self._tail_ms = end_ms + self._pad(end_ms, record.size) if self.pad_to_frame else end_ms

    def _pad(self, end_ms: float, size: int) -> float:
        """Silence padding a message of ``size`` bytes to whole frames (recorded as a fill)."""
        pad_ms = (-size % FRAME_BYTES) / BYTES_PER_MS
        if end_ms + pad_ms > end_ms:
            self.fills.append((end_ms, end_ms + pad_ms))
        return pad_ms

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
        self.fills = [(s, min(e, now)) for s, e in self.fills if s < now]
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
    """After running empty (and at the start), re-buffer to ``depth_ms`` before playing again,
    or until ``max_wait_ms`` has passed since the first waiting byte (PJSIP-like). It is not told
    where an answer ends, so a short answer's tail waits ``max_wait_ms``."""

    name = "prefetch"
    passive_timers = False  # its timer starts playback after a wait

    def __init__(self, depth_ms: float = 60.0, max_wait_ms: float = 120.0) -> None:
        super().__init__()
        if not (_at_least(depth_ms, 0.0) and _above(max_wait_ms, 0.0)):
            raise ValueError(
                f"prefetch playout: depth_ms must be a finite number >= 0 and max_wait_ms one "
                f"> 0, got depth_ms={depth_ms}, max_wait_ms={max_wait_ms}"
            )
        self.depth_ms = depth_ms
        self.max_wait_ms = max_wait_ms
        self._waiting: list[tuple[PlayRecord, bytes]] = []
        self._wait_started_ms = math.nan

    def receive_media(self, payload: bytes, now: float) -> None:
        self.advance_timers(now)
        record = PlayRecord(arrived_ms=now, size=len(payload))
        self.plays.append(record)
        if not self._waiting and now <= self._tail_ms + EPS_MS:
            self._schedule(record, payload, max(now, self._tail_ms))
            return
        if not self._waiting:
            self._wait_started_ms = now
        self._waiting.append((record, payload))
        queued_bytes = sum(r.size for r, _ in self._waiting)
        if queued_bytes >= self.depth_ms * BYTES_PER_MS:
            self._start_playing(now)

    def receive_mark(self, name: str, now: float) -> None:
        self.advance_timers(now)
        echo_ms = math.inf if self._waiting else max(now, self._tail_ms)
        self._marks.append([echo_ms, name, len(self.plays) - 1])

    def receive_clear(self, now: float) -> list[str]:
        self.advance_timers(now)
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
    """Fixed schedule per talkspurt: first arrival + ``delay_ms`` + media offset; late ones are
    discarded. A talkspurt starts when audio arrives after ``talkspurt_gap_ms`` of idle queue."""

    name = "fixed"

    def __init__(self, delay_ms: float = 100.0, talkspurt_gap_ms: float = 500.0) -> None:
        super().__init__()
        if not (_at_least(delay_ms, 0.0) and _above(talkspurt_gap_ms, 0.0)):
            raise ValueError(f"fixed playout: delay_ms must be a finite number >= 0 and "
                             f"talkspurt_gap_ms one > 0, got {delay_ms} and "
                             f"{talkspurt_gap_ms}")  # fmt: skip
        self.delay_ms = delay_ms
        self.talkspurt_gap_ms = talkspurt_gap_ms
        self._anchor_ms = math.nan
        self._offset_ms = 0.0

    def receive_media(self, payload: bytes, now: float) -> None:
        if math.isnan(self._anchor_ms) or now > self._tail_ms + self.talkspurt_gap_ms:
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


class FrameClockPlayout(_Accounting):
    """Twilio plays 20 ms frames on a clock (see the module docstring): at each tick a full
    frame if 160 bytes are queued; a partial frame when fewer are, padded with silence
    (``partial="pad"``), or held for up to ``max_skipped_ticks`` ticks first (``partial="skip"``).
    Ticks fall at ``phase_ms + 20 k``. A clear drops what is queued; a frame already playing
    finishes. A mark is echoed when its last byte before it has played."""

    passive_timers = False  # its ticks start playback

    def __init__(self, partial: str = "pad", max_skipped_ticks: int = 1,
                 phase_ms: float = 0.0) -> None:  # fmt: skip
        if partial not in ("pad", "skip"):
            raise ValueError(f"frame clock playout: partial must be 'pad' or 'skip', "
                             f"got {partial!r}")  # fmt: skip
        whole_ticks = _at_least(max_skipped_ticks, 0) and float(max_skipped_ticks).is_integer()
        if not (whole_ticks and _at_least(phase_ms, 0.0) and phase_ms < FRAME_MS):
            raise ValueError(f"frame clock playout: need a whole max_skipped_ticks >= 0 and "
                             f"0 <= phase_ms < {FRAME_MS}, got {max_skipped_ticks}, {phase_ms}")
        self.name = "frame_clock" if partial == "pad" else "frame_clock_skip"
        self.partial = partial
        self.max_skipped_ticks = int(max_skipped_ticks)
        self.phase_ms = float(phase_ms)
        self._segments: list[Segment] = []
        self._unjoined: list[bytes] = []  # bytes played after the last segment's, contiguous
        self.fills: list[Fill] = []
        self.plays: list[PlayRecord] = []
        self._queue: deque[list[Any]] = deque()  # [record, payload, bytes of it taken]
        self._queued_bytes = 0
        self._received_bytes = 0  # position (in queue bytes) after the last byte received
        self._played_bytes = 0  # position after the last byte played
        self._last_byte_end_ms = -math.inf
        # ticks are counted, never summed: tick k falls at phase_ms + 20 k exactly
        self._next_tick = 0  # the clock's next tick (meaningful while bytes are queued)
        self._last_tick = -(2**62)  # the last tick that played a frame
        self._skipped = 0
        self._marks: deque[list[Any]] = deque()  # [echo_ms or inf, name, position]

    @property
    def segments(self) -> list[Segment]:
        """Audio played, as (start_ms, end_ms, bytes): contiguous frames form one segment."""
        self._join_last_segment()
        return self._segments

    def receive_media(self, payload: bytes, now: float) -> None:
        self._run_ticks(now, inclusive=False)
        record = PlayRecord(arrived_ms=now, size=len(payload))
        self.plays.append(record)
        if not payload:
            return
        if not self._queued_bytes:  # the clock's next tick, after the frame that last played
            self._next_tick = max(self._tick_at_or_after(now), self._last_tick + 1)
        self._queue.append([record, payload, 0])
        self._queued_bytes += len(payload)
        self._received_bytes += len(payload)

    def receive_mark(self, name: str, now: float) -> None:
        self._run_ticks(now, inclusive=False)
        if self._received_bytes <= self._played_bytes:
            self._marks.append([max(now, self._last_byte_end_ms), name, self._received_bytes])
        else:
            self._marks.append([math.inf, name, self._received_bytes])

    def receive_clear(self, now: float) -> list[str]:
        self._run_ticks(now, inclusive=False)
        names = [mark[1] for mark in self._marks]
        self._marks.clear()
        for record, payload, taken in self._queue:
            record.cleared_bytes += len(payload) - taken
        self._queue.clear()
        self._queued_bytes = 0
        self._received_bytes = self._played_bytes
        self._skipped = 0
        return names

    def advance(self, now: float) -> list[tuple[str, float]]:
        self._run_ticks(now, inclusive=True)
        return _echoes_due(self._marks, now)

    def next_event_ms(self) -> float | None:
        """When the next mark echo falls due, or when the last queued byte will have played. The
        ticks between need no call of their own (with nothing new arriving, what they play is
        fixed); but a call may end with audio queued after its last mark, and that audio plays."""
        queued_ms = self._projected_echo_ms(self._received_bytes) if self._queued_bytes else None
        if not self._marks:
            return queued_ms
        echo_ms, _, position = self._marks[0]
        mark_ms = echo_ms if echo_ms < math.inf else self._projected_echo_ms(position)
        return mark_ms if queued_ms is None or mark_ms < queued_ms else queued_ms

    def _projected_echo_ms(self, position: int) -> float:
        """When the byte before queue position ``position`` will have played, if nothing else
        arrives: after the run of full frames, or after the partial frame that follows it."""
        before = position - self._played_bytes
        full = self._queued_bytes // FRAME_BYTES
        if before <= full * FRAME_BYTES:
            return self._tick_ms(self._next_tick) + before / BYTES_PER_MS
        skips = 0 if self.partial == "pad" else self.max_skipped_ticks - (
            0 if full else self._skipped)
        tail_tick = self._next_tick + full + max(skips, 0)
        return self._tick_ms(tail_tick) + (before - full * FRAME_BYTES) / BYTES_PER_MS

    # --- the clock ----------------------------------------------------------------------------
    def _tick_ms(self, tick: int) -> float:
        return self.phase_ms + tick * FRAME_MS

    def _tick_at_or_after(self, now: float) -> int:
        tick = math.ceil((now - self.phase_ms) / FRAME_MS)
        return tick if self._tick_ms(tick) >= now else tick + 1

    def _run_ticks(self, until_ms: float, *, inclusive: bool) -> None:
        """Every tick before ``until_ms`` (and at it if ``inclusive``) while bytes are queued.
        Consecutive full frames play as one block: the same bytes at the same times as frame
        by frame (they are contiguous), without a Python step per 20 ms."""
        # runs once per message received: each tick's time is computed once and handed on
        while self._queued_bytes:
            tick = self._next_tick
            tick_ms = self._tick_ms(tick)
            if not (tick_ms < until_ms or (inclusive and tick_ms == until_ms)):
                return
            full = min(self._queued_bytes // FRAME_BYTES,
                       self._ticks_before(tick, tick_ms, until_ms, inclusive))  # fmt: skip
            if full:
                self._skipped = 0
                self._play_frame(tick_ms, full * FRAME_BYTES)
                self._last_tick, self._next_tick = tick + full - 1, tick + full
                continue
            skips = self._skips_before(tick, tick_ms, until_ms, inclusive)
            if skips:  # less than a frame queued, and it may wait: the ticks pass at once
                self._skipped += skips
                self._next_tick = tick + skips
                continue
            self._tick(tick, tick_ms)  # less than a frame queued: pad it
            self._next_tick = tick + 1

    def _ticks_before(self, tick: int, tick_ms: float, until_ms: float, inclusive: bool) -> int:
        """How many ticks from ``tick`` (at ``tick_ms``) fall before ``until_ms`` (or at it,
        if inclusive)."""
        if until_ms == math.inf:
            return self._queued_bytes // FRAME_BYTES + 1
        count = math.ceil((until_ms - tick_ms) / FRAME_MS)
        if inclusive and self._tick_ms(tick + count) == until_ms:
            count += 1
        return max(count, 0)

    def _skips_before(self, tick: int, tick_ms: float, until_ms: float, inclusive: bool) -> int:
        """How many ticks from ``tick`` a partial frame still skips before ``until_ms``: one
        step for them all (``max_skipped_ticks`` may be large)."""
        if self.partial == "pad" or self._queued_bytes >= FRAME_BYTES:
            return 0
        waits = self.max_skipped_ticks - self._skipped
        if waits <= 0 or until_ms == math.inf:
            return max(waits, 0)
        return min(waits, self._ticks_before(tick, tick_ms, until_ms, inclusive))

    def _tick(self, tick: int, tick_ms: float) -> None:
        """A tick with less than a frame queued that waits no longer: the rest of it is padded
        with silence. (A skipped tick sends nothing: the carrier conceals it.)"""
        take = self._queued_bytes
        self._last_tick = tick
        self._skipped = 0
        self._play_frame(tick_ms, take)
        self.fills.append((tick_ms + take / BYTES_PER_MS, tick_ms + FRAME_MS))

    def _play_frame(self, tick_ms: float, take: int) -> None:
        at = 0
        while at < take:
            entry = self._queue[0]
            record, payload, taken = entry
            count = min(len(payload) - taken, take - at)
            start_ms = tick_ms + at / BYTES_PER_MS
            self._add_piece(record, start_ms, payload[taken : taken + count])
            entry[2] = taken + count
            at += count
            if entry[2] == len(payload):
                self._queue.popleft()
        first_byte = self._played_bytes
        self._queued_bytes -= take
        self._played_bytes += take
        self._last_byte_end_ms = tick_ms + take / BYTES_PER_MS
        played = self._played_bytes
        for mark in self._marks:  # in queue-position order: stop at the first not yet played
            if mark[2] > played:
                break
            if mark[0] == math.inf:
                mark[0] = tick_ms + (mark[2] - first_byte) / BYTES_PER_MS

    def _add_piece(self, record: PlayRecord, start_ms: float, data: bytes) -> None:
        count = len(data)
        end_ms = start_ms + count / BYTES_PER_MS
        if record.pieces is None:
            record.pieces = []
            record.start_ms = start_ms
        pieces = record.pieces
        if pieces and pieces[-1][0] + pieces[-1][1] / BYTES_PER_MS == start_ms:
            pieces[-1] = (pieces[-1][0], pieces[-1][1] + count)  # contiguous: one piece
        else:
            pieces.append((start_ms, count))
        record.played_bytes += count
        segments = self._segments
        if segments and segments[-1][1] == start_ms:
            # joined when read: appending to the bytes each frame copied a whole turn per frame
            last_start, _, last_data = segments[-1]
            segments[-1] = (last_start, end_ms, last_data)
            self._unjoined.append(data)
        else:
            self._join_last_segment()
            segments.append((start_ms, end_ms, data))

    def _join_last_segment(self) -> None:
        if self._unjoined:
            start_ms, end_ms, data = self._segments[-1]
            self._segments[-1] = (start_ms, end_ms, b"".join([data, *self._unjoined]))
            self._unjoined.clear()


def make_playout(name: str, **params: Any) -> Playout:
    """A fresh playout model by name (PLAYOUT_NAMES), with its parameters."""
    factory, fixed = _playout_factory(name)
    if params:  # only then: every run makes a model
        check_playout_params(name, params)
    try:
        model: Playout = factory(**fixed, **params)
    except TypeError as exc:
        raise ValueError(f"playout {name!r}: bad parameters {params}: {exc}") from None
    return model


def _playout_factories() -> dict[str, tuple[Callable[..., Playout], dict[str, Any]]]:
    """Each playout's class and the arguments its name fixes: which model it is, not a setting
    (fifo and pad_every_message take no parameter)."""
    return {
        "fifo": (FifoPlayout, {"pad_to_frame": False}),
        "pad_every_message": (FifoPlayout, {"pad_to_frame": True}),
        "prefetch": (PrefetchPlayout, {}),
        "fixed": (FixedPlayout, {}),
        "frame_clock": (FrameClockPlayout, {"partial": "pad"}),
        "frame_clock_skip": (FrameClockPlayout, {"partial": "skip"}),
    }


def _playout_factory(name: str) -> tuple[Callable[..., Playout], dict[str, Any]]:
    factories = _playout_factories()
    if name not in factories:
        raise ValueError(f"unknown playout {name!r}; choose one of {', '.join(PLAYOUT_NAMES)}")
    return factories[name]


def playout_parameters(name: str) -> tuple[str, ...]:
    """The parameters playout ``name`` takes (its settings, each with a default)."""
    factory, fixed = _playout_factory(name)
    return tuple(key for key in inspect.signature(factory).parameters if key not in fixed)


def check_playout_params(name: str, params: Iterable[str]) -> None:
    """A ValueError unless playout ``name`` takes every parameter in ``params``: it names what
    ``name`` takes and which playouts take each parameter it does not (a parameter of another
    playout is the usual slip: ``depth_ms`` is prefetch's)."""
    taken = playout_parameters(name)
    unknown = [key for key in params if key not in taken]
    if not unknown:
        return
    owners = {key: [other for other in PLAYOUT_NAMES if key in playout_parameters(other)]
              for key in unknown}  # fmt: skip
    where = [f"{key} is a parameter of {', '.join(found)}" if found else f"no playout takes {key}"
             for key, found in owners.items()]  # fmt: skip
    raise ValueError(f"playout {name!r} takes no parameter {', '.join(map(repr, unknown))}; "
                     f"it takes {', '.join(taken) or 'none'} ({'; '.join(where)})")  # fmt: skip

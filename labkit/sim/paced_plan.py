"""``paced``'s messages for a whole trace in one pass: the strategy's own rules, flattened.

``paced`` sends one 20 ms frame per timer, so driving the object (labkit/outbound/paced.py)
costs a poll, a Media and a ledger call per frame: most of a simulation of it. When the timers
fire on time (no sender lateness), what it sends is fixed by the trace and its parameters, so
the simulator computes the same rows here with plain numbers: the same item queue (a new
item's audio ends the previous item's), the same stream clock (frame k due at
``anchor + media_ms - lead``, re-anchored at ``now`` when the clock has passed it), the same
mark cadence and names as ``MarkLedger``, and ``send_all``'s call order (a timer strictly
before the next trace event). Every float is computed by the same operations in the same
order, so the rows are equal bit for bit (tests/test_sim_paced_plan.py drives both over
random and shipped traces). The strategy object itself is only read, never advanced.
See notebooks/01_why_tiny_packets_jitter.ipynb.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from labkit.marks import MarkLedger
from labkit.outbound.base import BYTES_PER_MS
from labkit.outbound.paced import PacedStrategy

if TYPE_CHECKING:
    from labkit.sim.sender import Row
    from labkit.sim.simulator import PreparedTrace

MEDIA, MARK, CLEAR = 0, 1, 2  # labkit.sim.sender's row kinds
AUDIO, DONE = 0, 1  # trace event codes (labkit.sim.simulator.TRACE_EVENT_CODES)
ItemKey = tuple[str, int]


def plannable(strategy: object) -> bool:
    """True for a fresh ``PacedStrategy`` exactly (a subclass may change any rule)."""
    if type(strategy) is not PacedStrategy:
        return False
    ledger = strategy.ledger
    return (
        strategy.anchor_ms is None
        and strategy.media_ms == 0.0
        and strategy._now == -math.inf
        and not strategy._queue.buffers
        and not strategy._queue._pushed
        and isinstance(ledger, MarkLedger)
        and ledger.generation == 0
        and ledger.pending_count == 0
        and not ledger._progress
    )


class _Buffer:
    """One item's queued bytes: where they start in the item, how many, whether it ended."""

    __slots__ = ("content_index", "data", "ended", "item_id", "key", "offset", "size")

    def __init__(self, key: ItemKey, offset: int, data: bytes) -> None:
        self.key = key
        self.item_id, self.content_index = key
        self.offset = offset  # of the first byte still queued, within the item
        self.size = 0
        self.ended = False
        self.data = data  # all the item's bytes in the trace: frames are slices of it


class _Progress:
    """MarkLedger's per-item progress: bytes sent, and how far marks cover them."""

    __slots__ = ("marked_to", "sent_to")

    def __init__(self, offset: int) -> None:
        self.marked_to = offset
        self.sent_to = offset


class PacedPlan:
    """The rows ``send_all`` would record for ``strategy`` over a trace (see module doc)."""

    def __init__(self, strategy: PacedStrategy) -> None:
        ledger = strategy.ledger
        assert isinstance(ledger, MarkLedger)
        self.frame_bytes = strategy.frame_bytes
        self.lead_ms = strategy.lead_ms
        every_ms = ledger.mark_every_ms
        self.every_bytes = None if every_ms is None else every_ms * BYTES_PER_MS
        self.seq = ledger._seq
        self.generation = ledger.generation
        self.rows: list[Row] = []
        self.item_bytes: dict[ItemKey, bytes] = {}
        self.buffers: list[_Buffer] = []  # head first
        self.pushed: dict[ItemKey, int] = {}
        self.progress: dict[ItemKey, _Progress] = {}
        self.anchor_ms: float | None = None
        self.media_ms = 0.0

    def run(self, trace: PreparedTrace) -> list[Row]:
        times, codes, keys, payloads = trace.times_ms, trace.codes, trace.keys, trace.payloads
        self.item_bytes = trace.item_audio
        deadline: float | None = None
        poll_at = math.inf
        buffers, pushed = self.buffers, self.pushed
        for t, code, key, data in zip(times, codes, keys, payloads, strict=True):
            if poll_at < t:  # send_all: timers strictly before the trace event fire first
                deadline, poll_at = self.poll_until(t, poll_at)
            if code == AUDIO:
                tail = buffers[-1] if buffers else None
                if tail is not None and tail.key == key and not tail.ended and self.waiting(t):
                    # more audio for the open tail while the head's whole frame waits for its
                    # deadline: service would send nothing and the timer stays as it is
                    pushed[key] += len(data)
                    tail.size += len(data)
                    continue
                self.push(key, data, t)
            elif code == DONE:
                self.end(key, t)
            else:
                self.interrupt(t)
            deadline, poll_at = self.rearm(deadline, poll_at, t)
        self.poll_until(math.inf, poll_at)
        return self.rows

    def poll_until(self, until_ms: float, poll_at: float) -> tuple[float | None, float]:
        """The timers that fire before ``until_ms``, from the one armed at ``poll_at``; returns
        the timer left armed. The hot path: while the head holds a whole frame beyond the one
        due, each timer sends one frame and arms the next frame_ms later, so such runs go
        inline; anything else (the clock passed, a tail, a new item) takes ``service``."""
        buffers, frame_bytes, lead_ms = self.buffers, self.frame_bytes, self.lead_ms
        frame_ms = frame_bytes / BYTES_PER_MS
        append, progress_of, every_bytes = self.rows.append, self.progress, self.every_bytes
        generation, two_frames = self.generation, frame_bytes + frame_bytes
        deadline: float | None = None
        while poll_at < until_ms:
            now = poll_at
            head = buffers[0] if buffers else None
            anchor_ms, media_ms = self.anchor_ms, self.media_ms
            if (head is None or anchor_ms is None or head.size < two_frames
                    or anchor_ms + media_ms < now or anchor_ms + media_ms - lead_ms > now
                    or every_bytes is None or head.key not in progress_of):
                self.service(now)
                deadline, poll_at = self.rearm(None, math.inf, now)
                continue
            key, item_id, index, data = head.key, head.item_id, head.content_index, head.data
            progress = progress_of[key]
            offset, size, marked_to = head.offset, head.size, progress.marked_to
            while True:  # send(head, frame_bytes, now) and the timer's re-arm, inline
                end = offset + frame_bytes
                append((MEDIA, item_id, index, offset, frame_bytes, generation, now, "",
                        data[offset:end]))  # fmt: skip
                if end - marked_to >= every_bytes:
                    progress.sent_to = end
                    self.mark(key, progress, now)
                    marked_to = end
                offset, size = end, size - frame_bytes
                media_ms += frame_ms
                due_ms = anchor_ms + media_ms - lead_ms
                if not (now < due_ms < until_ms and size >= two_frames):
                    break
                now = due_ms  # the next timer: that frame's deadline (max(due, now) = due)
            progress.sent_to = offset
            head.offset, head.size, self.media_ms = offset, size, media_ms
            if due_ms <= now:  # the lead lets the next frame go at once: service goes on
                self.service(now)
            deadline, poll_at = self.rearm(None, math.inf, now)
        return deadline, poll_at

    def rearm(
        self, deadline: float | None, poll_at: float, now: float
    ) -> tuple[float | None, float]:
        """send_all's timer after a call at ``now``: re-armed only when the deadline moved."""
        new = self.next_deadline()
        if new == deadline:
            return deadline, poll_at
        return new, (math.inf if new is None else max(new + 0.0, now))

    def waiting(self, now: float) -> bool:
        """Whether the head holds a whole frame whose deadline is still ahead of ``now``."""
        head = self.buffers[0]
        anchor_ms = self.anchor_ms
        return (
            head.size >= self.frame_bytes
            and anchor_ms is not None
            and anchor_ms + self.media_ms - self.lead_ms > now
        )

    def next_deadline(self) -> float | None:
        buffers, anchor_ms = self.buffers, self.anchor_ms
        if not buffers or anchor_ms is None:
            return None
        head = buffers[0]
        if head.size < self.frame_bytes and not (head.ended and head.size):
            return None
        return anchor_ms + self.media_ms - self.lead_ms

    def push(self, key: ItemKey, data: bytes, now: float) -> None:
        if data:
            offset = self.pushed.get(key, 0)
            self.pushed[key] = offset + len(data)
            buffers = self.buffers
            tail = buffers[-1] if buffers else None
            if tail is None or tail.ended or tail.key != key:
                if tail is not None:
                    tail.ended = True  # a new item: the previous one's audio is complete
                tail = _Buffer(key, offset, self.item_bytes[key])
                buffers.append(tail)
            tail.size += len(data)
        self.service(now)

    def end(self, key: ItemKey, now: float) -> None:
        for buffer in reversed(self.buffers):
            if buffer.key == key and not buffer.ended:
                buffer.ended = True
                self.service(now)
                return
        self.service(now)
        self.finish(key, now)

    def interrupt(self, now: float) -> None:
        self.buffers.clear()
        self.anchor_ms, self.media_ms = None, 0.0
        self.rows.append((CLEAR, "", -1, 0, 0, self.generation, now, "", b""))
        self.generation += 1
        self.progress.clear()

    def service(self, now: float) -> None:
        """PacedStrategy._service: every frame whose deadline has come, in order."""
        buffers, frame_bytes, lead_ms = self.buffers, self.frame_bytes, self.lead_ms
        while buffers:
            head = buffers[0]
            buffered = head.size
            if buffered >= frame_bytes:
                size = frame_bytes
            elif not head.ended:
                return
            elif buffered:
                size = buffered
            else:
                del buffers[0]
                self.finish(head.key, now)
                continue
            anchor_ms, media_ms = self.anchor_ms, self.media_ms
            if anchor_ms is None or anchor_ms + media_ms < now:
                anchor_ms = self.anchor_ms = now - media_ms
            if anchor_ms + media_ms - lead_ms > now:
                return
            self.send(head, size, now)
            self.media_ms = media_ms + size / BYTES_PER_MS

    def send(self, head: _Buffer, size: int, now: float) -> None:
        """One frame (MarkLedger.media's cadence); retires the head after its tail."""
        offset = head.offset
        payload = head.data[offset : offset + size]
        head.offset, head.size = offset + size, head.size - size
        final = head.ended and not head.size
        if final:
            del self.buffers[0]
        key = head.key
        self.rows.append((MEDIA, head.item_id, head.content_index, offset, size, self.generation,
                          now, "", payload))  # fmt: skip
        progress = self.progress.get(key)
        if progress is None:
            progress = self.progress[key] = _Progress(offset)
        sent_to = progress.sent_to = offset + size
        every_bytes = self.every_bytes
        due = sent_to > progress.marked_to if every_bytes is None else (
            sent_to - progress.marked_to >= every_bytes)  # fmt: skip
        if final or due:
            self.mark(key, progress, now)
            if final:
                del self.progress[key]

    def finish(self, key: ItemKey, now: float) -> None:
        """MarkLedger.finish: a marks-only row when the item's last bytes are unmarked."""
        progress = self.progress.pop(key, None)
        if progress is not None and progress.sent_to != progress.marked_to:
            self.mark(key, progress, now)

    def mark(self, key: ItemKey, progress: _Progress, now: float) -> None:
        self.seq += 1
        start, end = progress.marked_to, progress.sent_to
        progress.marked_to = end
        self.rows.append((MARK, key[0], key[1], start, end - start, self.generation, now,
                          f"m{self.seq}.g{self.generation}", b""))  # fmt: skip


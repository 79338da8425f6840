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
from itertools import chain
from typing import TYPE_CHECKING

from labkit.marks import MarkLedger
from labkit.outbound.base import BYTES_PER_MS
from labkit.outbound.paced import PacedStrategy

if TYPE_CHECKING:
    from labkit.sim.sender import Row
    from labkit.sim.simulator import PreparedTrace

MEDIA, MARK, CLEAR = 0, 1, 2  # labkit.sim.sender's row kinds
AUDIO, DONE = 0, 1  # trace event codes (labkit.sim.simulator.TRACE_EVENT_CODES)
END = -1  # the run's own sentinel after the last trace event
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
        # the ledger marks once ``sent - marked >= every_bytes``; sent and marked are whole
        # bytes, so that is ``sent >= marked + ceil(every_bytes)``: an int the loop compares
        # (the ledger checks mark_every_ms is finite and > 0)
        self.mark_gap_bytes = 0 if self.every_bytes is None else math.ceil(self.every_bytes)
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
        buffers, pushed, progress_of = self.buffers, self.pushed, self.progress
        append = self.rows.append
        frame_bytes, lead_ms, mark_gap = self.frame_bytes, self.lead_ms, self.mark_gap_bytes
        by_cadence = self.every_bytes is not None  # else only an item's last frame is marked
        frame_ms, two_frames = frame_bytes / BYTES_PER_MS, frame_bytes + frame_bytes
        deadline: float | None = None
        poll_at = math.inf
        # the timers after the last event fire before the sentinel (t = inf), which ends the run
        trace_events = zip(times, codes, keys, payloads, strict=True)
        events = chain(trace_events, ((math.inf, END, ("", 0), b""),))
        for t, code, key, data in events:
            # send_all: timers strictly before the trace event fire first. The hot path: while
            # the head holds a whole frame beyond the one due, each timer sends one frame and
            # arms the next frame_ms later, so such runs go inline (here rather than in a
            # method: a call and its set-up per run of timers cost ~10% of the plan); anything
            # else (the clock passed, a tail, a new item) takes ``service``.
            while poll_at < t:
                now = poll_at
                head = buffers[0] if buffers else None
                anchor_ms, media_ms = self.anchor_ms, self.media_ms
                progress = progress_of.get(head.key) if head is not None and by_cadence else None
                if (head is None or progress is None or anchor_ms is None
                        or head.size < two_frames
                        or anchor_ms + media_ms < now or anchor_ms + media_ms - lead_ms > now):
                    self.service(now)
                    deadline, poll_at = self.rearm(None, math.inf, now)
                    continue
                # send(head, frame_bytes, now), its marks and the timer's re-arm, inline. Per
                # frame only what must be new objects (row, payload, time, offset) is allocated:
                # the loop stops by an offset bound rather than a running size, and marks come
                # at an integer offset (the ledger's ``sent - marked >= every`` on whole bytes)
                item_id, index, audio = head.item_id, head.content_index, head.data
                offset, marked_to = head.offset, progress.marked_to
                stop = offset + head.size - two_frames  # past it, fewer than 2 frames are left
                mark_at = marked_to + mark_gap
                generation = self.generation
                while True:
                    end = offset + frame_bytes
                    append((MEDIA, item_id, index, offset, frame_bytes, generation, now, "",
                            audio[offset:end]))  # fmt: skip
                    if end >= mark_at:  # self.mark, inline
                        self.seq += 1
                        append((MARK, item_id, index, marked_to, end - marked_to, generation,
                                now, f"m{self.seq}.g{generation}", b""))  # fmt: skip
                        marked_to, mark_at = end, end + mark_gap
                    offset = end
                    media_ms += frame_ms
                    due_ms = anchor_ms + media_ms - lead_ms
                    if not (now < due_ms and offset <= stop):
                        break
                    # Trace events before that deadline that only add audio to the open tail
                    # are the event's fast path below (the head keeps two whole frames and the
                    # due one waits: only sizes change), so they are taken here and the run
                    # goes on: leaving the run and re-entering it per such event cost ~15%.
                    while (t < due_ms and code == AUDIO and (last := buffers[-1]).key == key
                            and not last.ended):  # fmt: skip
                        pushed[key] += len(data)
                        last.size += len(data)
                        if last is head:
                            stop += len(data)
                        t, code, key, data = next(events)
                    if t <= due_ms:
                        break  # the event goes first (timers fire strictly before it)
                    now = due_ms  # the next timer: that frame's deadline (max(due, now) = due)
                progress.sent_to, progress.marked_to = offset, marked_to
                head.size -= offset - head.offset
                head.offset, self.media_ms = offset, media_ms
                if due_ms <= now:  # the lead lets the next frame go at once: service goes on
                    self.service(now)
                    deadline, poll_at = self.rearm(None, math.inf, now)
                else:
                    # rearm, inline: the head still holds a whole frame (the loop went on only
                    # with two), so the next deadline is due_ms, and it is ahead of now
                    deadline, poll_at = due_ms, due_ms + 0.0
            if code == AUDIO:
                tail = buffers[-1] if buffers else None
                if tail is not None and tail.key == key and not tail.ended:
                    head, anchor_ms = buffers[0], self.anchor_ms
                    if (head.size >= frame_bytes and anchor_ms is not None
                            and anchor_ms + self.media_ms - lead_ms > t):
                        # more audio for the open tail while the head's whole frame waits for
                        # its deadline: service would send nothing and the timer stays as it is
                        pushed[key] += len(data)
                        tail.size += len(data)
                        continue
                self.push(key, data, t)
            elif code == DONE:
                self.end(key, t)
            elif code == END:
                break
            else:
                self.interrupt(t)
            deadline, poll_at = self.rearm(deadline, poll_at, t)
        return self.rows

    def rearm(
        self, deadline: float | None, poll_at: float, now: float
    ) -> tuple[float | None, float]:
        """send_all's timer after a call at ``now``: re-armed only when the deadline moved."""
        new = self.next_deadline()
        if new == deadline:
            return deadline, poll_at
        return new, (math.inf if new is None else max(new + 0.0, now))

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


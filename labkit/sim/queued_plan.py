"""The queued strategies' messages for a whole trace in one pass, with plain numbers.

``rechunk``, ``preroll`` and ``adaptive`` share ``QueuedStrategy``'s machinery (labkit/outbound/
queued.py): per-item buffers in push order, ended heads going out whole, the mark ledger, the
drops of an interrupt. Driving the objects costs an ``AudioChunk``, a ``Media`` and a ledger
call per model delta, most of a simulation of them. ``QueuedPlan`` is that machinery with plain
numbers (buffers as offsets and sizes, ``MarkLedger``'s cadence and names from
labkit/sim/plan_ledger.py) in ``send_all``'s call order (a timer strictly before the next
trace event); a subclass states its strategy's rule: how much of the open head goes now, and
its next deadline. Every float is computed by the same operations in the same order, so the
rows are the sender's bit for bit (tests/test_sim_queued_plan.py drives both over random and
shipped traces). Media rows carry no payload: their bytes are cut from the item's audio only
if the run's audio is asked for (``sender.ItemSlices``). The strategy object is only read.
``adaptive``'s plan, which also learns from echoes, is labkit/sim/adaptive_plan.py.
See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

from labkit.marks import ItemProgress, MarkLedger, mark_names
from labkit.outbound.base import FRAME_BYTES, Mark
from labkit.outbound.preroll import PrerollStrategy
from labkit.outbound.queued import QueuedStrategy
from labkit.outbound.rechunk import RechunkStrategy
from labkit.sim.echo_feed import EchoFeed
from labkit.sim.plan_ledger import PlanLedger
from labkit.sim.sender import CLEAR, MARK, MAX_STEPS_PER_EVENT, MEDIA, ItemSlices, SentMessages
from labkit.sim.timer_rule import rearm

if TYPE_CHECKING:
    from labkit.sim.sender import Row
    from labkit.sim.simulator import PreparedTrace

AUDIO, DONE = 0, 1  # trace event codes (labkit.sim.simulator.TRACE_EVENT_CODES)
ItemKey = tuple[str, int]
NAME_BLOCK = 256  # mark names fetched at a time from the shared cache


def is_fresh(strategy: QueuedStrategy) -> bool:
    """Whether ``strategy`` has not been driven yet (its queue and ledger are as built)."""
    ledger, queue = strategy.ledger, strategy._queue
    return (
        strategy._now == -math.inf
        and not queue.buffers
        and not queue._pushed
        and strategy.dropped_bytes == 0
        and isinstance(ledger, MarkLedger)
        and ledger.generation == 0
        and ledger.pending_count == 0
        and not ledger._progress
    )


def plannable(strategy: object) -> bool:
    """True for a fresh ``RechunkStrategy`` or ``PrerollStrategy`` exactly (a subclass may
    change any rule)."""
    return type(strategy) in PLANS and is_fresh(strategy)  # type: ignore[arg-type]


def sent_messages(trace: PreparedTrace, strategy: QueuedStrategy) -> SentMessages:
    """What ``send_all`` would record for a ``plannable`` strategy with timers on time."""
    return messages(PLANS[type(strategy)](strategy), trace, [])


def messages(plan: QueuedPlan, trace: PreparedTrace, arrived_ms: list[float]) -> SentMessages:
    """The plan's rows as columns, payloads cut lazily; ``arrived_ms`` as the plan fills it."""
    sent = SentMessages.from_rows(plan.run(trace), arrived_ms)
    sent.payloads = ItemSlices(sent, trace.item_audio)
    return sent


class Buffer:
    """One item's queued bytes: where they start in the item, how many, whether it ended;
    until when it is held (``adaptive``); the end offset and arrival of each chunk not yet
    wholly sent (``rechunk``: the oldest byte's arrival starts its flush timer)."""

    __slots__ = ("chunk_arrivals", "chunk_ends", "content_index", "ended", "hold_until_ms",
                 "item_id", "key", "offset", "size")  # fmt: skip

    def __init__(self, key: ItemKey, offset: int) -> None:
        self.key = key
        self.item_id, self.content_index = key
        self.offset = offset  # of the first byte still queued, within the item
        self.size = 0
        self.ended = False
        self.hold_until_ms = -math.inf
        self.chunk_ends: deque[int] = deque()
        self.chunk_arrivals: deque[float] = deque()


class QueuedPlan:
    """The rows ``send_all`` would record for a queued strategy (see module doc)."""

    def __init__(self, strategy: QueuedStrategy) -> None:
        ledger = strategy.ledger
        assert isinstance(ledger, MarkLedger)
        self.name = strategy.name
        self.align_frames = strategy.align_frames
        self.threshold_bytes = strategy._threshold_bytes
        self.seq = ledger._seq
        self.generation = ledger.generation
        self.names: list[str] = []  # MarkLedger's names of this generation, from seq names_from
        self.names_from = 0
        self.rows: list[Row] = []
        self.buffers: deque[Buffer] = deque()  # head first
        self.pushed: dict[ItemKey, int] = {}  # bytes pushed per item, for buffers closed
        self.marks = PlanLedger(ledger)
        self.feed: EchoFeed | None = None  # the world, told each message as it goes out

    def run(self, trace: PreparedTrace) -> list[Row]:
        """send_all's loop: trace events in order, a timer at its deadline strictly first."""
        times, codes, keys, payloads = trace.times_ms, trace.codes, trace.keys, trace.payloads
        max_polls = MAX_STEPS_PER_EVENT * (len(times) + 10) + trace.audio_bytes
        polls = 0
        deadline: float | None = None
        poll_at = math.inf
        push, next_deadline = self.push, self.next_deadline
        for t, code, key, data in zip(times, codes, keys, payloads, strict=True):
            while poll_at < t:
                polls = self._count_poll(polls, max_polls, deadline)
                self.service(poll_at)
                deadline, poll_at = rearm(next_deadline(), None, math.inf, poll_at)
            if code == AUDIO:
                push(key, data, t)
            elif code == DONE:
                self.end(key, t)
            else:
                self.interrupt(t)
            deadline, poll_at = rearm(next_deadline(), deadline, poll_at, t)
        while poll_at < math.inf:
            polls = self._count_poll(polls, max_polls, deadline)
            self.service(poll_at)
            deadline, poll_at = rearm(next_deadline(), None, math.inf, poll_at)
        return self.rows

    def _count_poll(self, polls: int, max_polls: int, deadline: float | None) -> int:
        if polls >= max_polls:  # the sender's guard against a deadline that never moves on
            raise RuntimeError(f"simulation of strategy {self.name!r} did not terminate: its "
                               f"deadline ({deadline}) keeps firing without moving on")
        return polls + 1

    # -- the strategy's rule (subclasses) ------------------------------------------------------

    def next_deadline(self) -> float | None:
        raise NotImplementedError

    def ready(self, head: Buffer, now: float) -> int:
        """How many bytes of the open head ``head`` go out now (0: none)."""
        raise NotImplementedError

    def whole(self, size: int) -> int:
        """QueuedStrategy._sendable: whole frames with ``align_frames``."""
        return size - size % FRAME_BYTES if self.align_frames else size

    # -- hooks (a subclass that learns or watches the wire) ------------------------------------

    def pushed_chunk(self, buffer: Buffer, size: int, now: float) -> None:
        """A chunk of ``size`` bytes landed in ``buffer`` (QueuedStrategy._on_push)."""

    def opened(self, buffer: Buffer, now: float) -> None:
        """``buffer`` was just opened with the item's next chunk."""

    def retired(self, head: Buffer, now: float) -> None:
        """Every byte of ``head`` went out and it left the queue."""

    def before_interrupt(self, now: float) -> None:
        """An interrupt at ``now`` is about to drop the queue."""

    # -- QueuedStrategy's machinery ------------------------------------------------------------

    def push(self, key: ItemKey, data: bytes, now: float) -> None:
        """QueuedStrategy.push: the chunk joins the open tail of its item, or opens a buffer."""
        if data:
            buffers = self.buffers
            tail = buffers[-1] if buffers else None
            if tail is not None and not tail.ended and tail.key == key:
                tail.size += len(data)
            else:
                tail = self.open(key, len(data), now)
            self.pushed_chunk(tail, len(data), now)
        self.service(now)

    def open(self, key: ItemKey, size: int, now: float) -> Buffer:
        """A new tail buffer holding ``size`` bytes (audio of a new item ends the open one)."""
        buffers = self.buffers
        if buffers and not buffers[-1].ended:
            self.close(buffers[-1])
        buffer = Buffer(key, self.pushed.get(key, 0))
        buffer.size = size
        buffers.append(buffer)
        self.opened(buffer, now)
        return buffer

    def close(self, buffer: Buffer) -> None:
        buffer.ended = True
        self.pushed[buffer.key] = buffer.offset + buffer.size

    def end(self, key: ItemKey, now: float) -> None:
        """QueuedStrategy.end: the item's open buffer ends, else its last mark may follow."""
        buffers = self.buffers
        if buffers and not buffers[-1].ended and buffers[-1].key == key:
            self.close(buffers[-1])
            self.service(now)
            return
        self.service(now)
        self.finish(key, now)

    def interrupt(self, now: float) -> None:
        """QueuedStrategy.interrupt: drop the queue, clear (the next media starts a generation)."""
        self.before_interrupt(now)
        buffers = self.buffers
        if buffers and not buffers[-1].ended:
            self.close(buffers[-1])
        buffers.clear()
        self.rows.append((CLEAR, "", -1, 0, 0, self.generation, now, "", b""))
        if self.feed is not None:
            self.feed.clear(now)
        self.generation += 1
        self.names = []  # the new generation's names
        self.marks.progress.clear()

    def service(self, now: float) -> None:
        """_service: ended heads go out whole; then the strategy's rule for the open head."""
        buffers = self.buffers
        if not buffers:
            return
        head = buffers[0]
        if head.ended:
            open_head = self.drain_ended_heads(now)
            if open_head is None:
                return
            head = open_head
        size = self.ready(head, now)
        if size:
            self.send(head, size, now)

    def drain_ended_heads(self, now: float) -> Buffer | None:
        """QueuedStrategy._drain_ended_heads: returns the open head left, if any."""
        buffers = self.buffers
        while buffers:
            head = buffers[0]
            if not head.ended:
                return head
            if head.size:
                self.send(head, head.size, now)  # final: retires the head
            else:
                self.retire(head, now)
                self.finish(head.key, now)
        return None

    def retire(self, head: Buffer, now: float) -> None:
        self.buffers.popleft()
        self.retired(head, now)

    # -- the ledger ----------------------------------------------------------------------------

    def send(self, head: Buffer, size: int, now: float) -> None:
        """QueuedStrategy._send with MarkLedger.media: the bytes, a mark when due."""
        offset = head.offset
        head.offset, head.size = offset + size, head.size - size
        final = head.ended and not head.size
        key = head.key
        self.rows.append((MEDIA, head.item_id, head.content_index, offset, size, self.generation,
                          now, "", b""))  # fmt: skip
        if self.feed is not None:
            self.feed.media(now, size)
        progress = self.marks.sent(key, offset, size, final)
        if progress is not None:
            self.mark(key, progress, now)
        if final:
            self.retire(head, now)

    def finish(self, key: ItemKey, now: float) -> None:
        """MarkLedger.finish: a marks-only row when the item's last bytes are unmarked."""
        progress = self.marks.finish(key)
        if progress is not None:
            self.mark(key, progress, now)

    def mark(self, key: ItemKey, progress: ItemProgress, now: float) -> None:
        """A mark row naming the item's bytes sent since its previous mark."""
        self.seq = seq = self.seq + 1
        start, end = progress.marked_to, progress.sent_to
        progress.marked_to = end
        generation = self.generation
        names = self.names
        if seq - self.names_from >= len(names):  # the next block of this generation's names
            names = self.names = mark_names(generation, seq, NAME_BLOCK)
            self.names_from = seq
        name = names[seq - self.names_from]
        self.rows.append((MARK, key[0], key[1], start, end - start, generation, now, name, b""))
        if self.feed is not None:
            self.feed.mark(now, Mark(name, key[0], key[1], start, end, generation, now))


class RechunkPlan(QueuedPlan):
    """RechunkStrategy: the open head goes once it holds ``threshold_ms`` of audio or its
    oldest byte waited ``flush_interval_ms``."""

    def __init__(self, strategy: QueuedStrategy) -> None:
        super().__init__(strategy)
        assert isinstance(strategy, RechunkStrategy)
        self.flush_interval_ms = strategy.flush_interval_ms

    def pushed_chunk(self, buffer: Buffer, size: int, now: float) -> None:
        buffer.chunk_ends.append(buffer.offset + buffer.size)
        buffer.chunk_arrivals.append(now)

    def oldest_arrival_ms(self, head: Buffer) -> float:
        """When the head's oldest byte arrived: its first chunk not wholly sent (ItemBuffer's
        ``_arrivals[0]``)."""
        ends, arrivals = head.chunk_ends, head.chunk_arrivals
        while ends[0] <= head.offset:
            ends.popleft()
            arrivals.popleft()
        return arrivals[0]

    def next_deadline(self) -> float | None:
        buffers = self.buffers
        if not buffers:
            return None
        head = buffers[0]
        if not self.whole(head.size):
            return None
        return self.oldest_arrival_ms(head) + self.flush_interval_ms

    def ready(self, head: Buffer, now: float) -> int:
        buffered = head.size
        if not buffered:
            return 0
        if (buffered >= self.threshold_bytes
                or self.oldest_arrival_ms(head) + self.flush_interval_ms <= now):  # fmt: skip
            return self.whole(buffered)
        return 0


class PrerollPlan(QueuedPlan):
    """PrerollStrategy: an item's audio goes once ``threshold_ms`` of it arrived."""

    def next_deadline(self) -> float | None:
        return None  # it waits for audio, never for time

    def ready(self, head: Buffer, now: float) -> int:
        if head.offset + head.size >= self.threshold_bytes:
            return self.whole(head.size)
        return 0


PLANS: dict[type[QueuedStrategy], type[QueuedPlan]] = {
    RechunkStrategy: RechunkPlan,
    PrerollStrategy: PrerollPlan,
}

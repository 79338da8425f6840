"""``adaptive``'s messages for a whole trace in one pass: its sending rules with plain numbers.

Driving the strategy object (labkit/outbound/adaptive.py) through the event loop costs a
``Media``, a ledger call and the world's bookkeeping per model delta: twice the simulator's
budget. But echoes reach ``adaptive``'s sending only through each item's hold, fixed when the
item's first byte arrives from the hold history, and through what an interrupt makes it forget.
So this plan:

- sends by the strategy's rules (the item queue, the hold, whole 20 ms frames, an ended item's
  tail, the drops of an interrupt), with ``MarkLedger``'s cadence and names and ``send_all``'s
  call order (a timer strictly before the next trace event), computing every float by the same
  operations in the same order;
- leaves the learning to the strategy object itself (``start_item``, ``item_stats``,
  ``item_sent``, ``learn_from_echo``, ``forget_items``), called at the moments the strategy
  would call them;
- hands it the echoes that reached the app (labkit/sim/echo_feed.py), in the order they
  arrived, only when it matters: just before an item starts (its hold reads the history),
  before an interrupt (the learner forgets its items) and before it hears more of an item
  whose every byte already went out (interleaved items: it may have sampled and dropped that
  item by then). Else an echo handed over later changes nothing: echoes arrive in send order
  and an item's audio goes out only after the items before it, so each sample is taken on the
  same echoes and the same least round trip as in the event loop.

Media rows carry no payload (b""): their bytes are the item's audio at (offset, size), cut
only if the run's audio is asked for (``sender.ItemSlices``). Else the rows are the event
loop's, bit for bit (tests/test_sim_adaptive_plan.py), for a fresh ``AdaptiveStrategy`` with
its timers on time, FIFO playout and a ledger that cannot evict marks.
See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

from labkit.marks import ItemProgress, MarkLedger, mark_names
from labkit.outbound.adaptive import AdaptiveStrategy, ItemStats
from labkit.outbound.base import BYTES_PER_MS, FRAME_BYTES, Mark
from labkit.sim.echo_feed import EchoFeed
from labkit.sim.links import Link
from labkit.sim.plan_ledger import PlanLedger
from labkit.sim.playout import FifoPlayout
from labkit.sim.sender import CLEAR, MARK, MAX_STEPS_PER_EVENT, MEDIA
from labkit.sim.timer_rule import rearm

if TYPE_CHECKING:
    from labkit.sim.sender import Row
    from labkit.sim.simulator import PreparedTrace

AUDIO, DONE = 0, 1  # trace event codes (labkit.sim.simulator.TRACE_EVENT_CODES)
ItemKey = tuple[str, int]
NAME_BLOCK = 256  # mark names fetched at a time from the shared cache


def applies(trace: PreparedTrace, strategy: object, fwd: Link, model: object) -> bool:
    """True for a fresh ``AdaptiveStrategy`` exactly (a subclass may change any rule), timers
    on time, FIFO playout (``fifo``/``frame_padding``) and a ledger cap above the trace's
    audio (so no mark is ever evicted: every first echo of the current generation counts)."""
    if type(strategy) is not AdaptiveStrategy or type(model) is not FifoPlayout:
        return False
    ledger, queue = strategy.ledger, strategy._queue
    return (
        fwd.lateness_ms == 0.0
        and not model.plays
        and strategy._now == -math.inf
        and not queue.buffers
        and not queue._pushed
        and not strategy.learned_anything()
        and isinstance(ledger, MarkLedger)
        and ledger.generation == 0
        and ledger.pending_count == 0
        and not ledger._progress
        and trace.audio_bytes <= ledger._max_pending_bytes
    )


class _Buffer:
    """One item's queued bytes: where they start in the item, how many, until when held."""

    __slots__ = ("content_index", "ended", "hold_until_ms", "item_id", "key", "offset", "size")

    def __init__(self, key: ItemKey, offset: int) -> None:
        self.key = key
        self.item_id, self.content_index = key
        self.offset = offset  # of the first byte still queued, within the item
        self.size = 0
        self.ended = False
        self.hold_until_ms = -math.inf


class AdaptivePlan:
    """The rows the event loop would record for ``strategy`` over a trace (see module doc)."""

    def __init__(self, strategy: AdaptiveStrategy, feed: EchoFeed) -> None:
        ledger = strategy.ledger
        self.strategy = strategy
        self.feed = feed
        self.align_frames = strategy.align_frames
        self.honor_generations = ledger.honor_generations
        self.seq = ledger._seq
        self.names: list[str] = []  # MarkLedger's names of this generation, from seq names_from
        self.names_from = 0
        self.generation = ledger.generation
        self.rows: list[Row] = []
        self.buffers: deque[_Buffer] = deque()  # head first
        self.pushed: dict[ItemKey, int] = {}  # bytes pushed per item, for buffers closed
        self.marks = PlanLedger(ledger)
        self.marks_sent = self.marks.sent  # bound once: a call per message
        self.stats_of = strategy.item_stats  # bound once: a call per delta
        self.feed_media = feed.media

    def run(self, trace: PreparedTrace) -> list[Row]:
        """send_all's loop: trace events in order, a timer at its deadline strictly first."""
        times, codes, keys, payloads = trace.times_ms, trace.codes, trace.keys, trace.payloads
        max_polls = MAX_STEPS_PER_EVENT * (len(times) + 10) + trace.audio_bytes
        polls = 0
        deadline: float | None = None
        poll_at = math.inf
        push, buffers, align = self.push, self.buffers, self.align_frames
        for t, code, key, data in zip(times, codes, keys, payloads, strict=True):
            while poll_at < t:
                polls = self._count_poll(polls, max_polls, deadline)
                self.service(poll_at)
                deadline, poll_at = self.rearm(None, poll_at)
            if code == AUDIO:
                push(key, data, t)
            elif code == DONE:
                self.end(key, t)
            else:
                self.interrupt(t)
            # rearm with next_deadline, inline (once per trace event)
            if buffers:
                head = buffers[0]
                new = None if (head.size < FRAME_BYTES if align else not head.size) else (
                    head.hold_until_ms)  # fmt: skip
            else:
                new = None
            if new != deadline:
                deadline, poll_at = new, (math.inf if new is None else max(new + 0.0, t))
        while poll_at < math.inf:
            polls = self._count_poll(polls, max_polls, deadline)
            self.service(poll_at)
            deadline, poll_at = self.rearm(None, poll_at)
        return self.rows

    def _count_poll(self, polls: int, max_polls: int, deadline: float | None) -> int:
        if polls >= max_polls:  # the sender's guard against a deadline that never moves on
            raise RuntimeError(f"simulation of strategy 'adaptive' did not terminate: its "
                               f"deadline ({deadline}) keeps firing without moving on")
        return polls + 1

    def rearm(
        self, deadline: float | None, now: float, poll_at: float = math.inf
    ) -> tuple[float | None, float]:
        """send_all's timer after a call at ``now``."""
        return rearm(self.next_deadline(), deadline, poll_at, now)

    def next_deadline(self) -> float | None:
        """AdaptiveStrategy.next_deadline: the head's hold, once it has something to send."""
        buffers = self.buffers
        if not buffers:
            return None
        head = buffers[0]
        if head.size < FRAME_BYTES if self.align_frames else not head.size:
            return None
        return head.hold_until_ms

    # -- the strategy's calls ------------------------------------------------------------------

    def push(self, key: ItemKey, data: bytes, now: float) -> None:
        """QueuedStrategy.push with AdaptiveStrategy._on_push, then _service."""
        if not data:
            self.service(now)
            return
        buffers = self.buffers
        tail = buffers[-1] if buffers else None
        if tail is not None and not tail.ended and tail.key == key:
            tail.size += len(data)
        else:
            tail = self.open(key, data, now)
        stats = self.stats_of(key)
        if stats is not None and stats.final_end is not None:
            stats = self.settle(key, now)
        if stats is not None:  # lateness of the frame the chunk's first byte belongs to
            first_byte = tail.offset + tail.size - len(data)
            if self.align_frames:
                first_byte -= first_byte % FRAME_BYTES
            lateness_ms = now - first_byte / BYTES_PER_MS
            if lateness_ms > stats.max_lateness_ms:
                stats.max_lateness_ms = lateness_ms
        if buffers[0] is not tail or now < tail.hold_until_ms:
            self.service(now)
            return
        # service and send, inline for their usual case (once per model delta, ~15% of the
        # plan): the open tail is the head, its hold is over, so its whole frames go out (not
        # its last bytes: it has not ended)
        size = tail.size
        if self.align_frames:
            size -= size % FRAME_BYTES
        if not size:
            return
        offset = tail.offset
        tail.offset = offset + size
        tail.size -= size
        self.rows.append((MEDIA, key[0], key[1], offset, size, self.generation, now, "",
                          b""))  # fmt: skip
        self.feed_media(now, size)
        progress = self.marks_sent(key, offset, size, False)
        if progress is not None:
            self.mark(key, progress, now)

    def open(self, key: ItemKey, data: bytes, now: float) -> _Buffer:
        """A new tail buffer (audio of a new item ends the open one); an item's first byte
        starts its hold, learned from the echoes that reached the app by now."""
        buffers = self.buffers
        if buffers and not buffers[-1].ended:
            self.close(buffers[-1])
        buffer = _Buffer(key, self.pushed.get(key, 0))
        buffer.size = len(data)
        buffers.append(buffer)
        if buffer.offset == 0:
            self.learn_until(now)
            buffer.hold_until_ms = now + self.strategy.start_item(key, now)
        return buffer

    def close(self, buffer: _Buffer) -> None:
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
        """QueuedStrategy.interrupt: drop the queue, forget the items, clear (a new generation)."""
        self.learn_until(now)  # the items it forgets learned from these echoes first
        buffers = self.buffers
        if buffers and not buffers[-1].ended:
            self.close(buffers[-1])
        buffers.clear()
        self.strategy.forget_items()
        self.rows.append((CLEAR, "", -1, 0, 0, self.generation, now, "", b""))
        self.feed.clear(now)
        self.generation += 1
        self.names = []  # the new generation's names
        self.marks.progress.clear()

    def service(self, now: float) -> None:
        """AdaptiveStrategy._service: ended heads go out whole; the open head, once its hold
        is over, sends its whole frames (all its bytes without ``align_frames``)."""
        buffers = self.buffers
        if not buffers:
            return
        head = buffers[0]
        if head.ended:
            open_head = self.drain_ended_heads(now)
            if open_head is None:
                return
            head = open_head
        if now >= head.hold_until_ms:
            size = head.size
            if self.align_frames:
                size -= size % FRAME_BYTES
            if size:
                self.send(head, size, now)

    def drain_ended_heads(self, now: float) -> _Buffer | None:
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

    def retire(self, head: _Buffer, now: float) -> None:
        self.buffers.popleft()
        stats = self.stats_of(head.key)
        if stats is not None and stats.final_end is not None:
            self.settle(head.key, now)
        self.strategy.item_sent(head.key, head.offset)

    # -- the ledger ----------------------------------------------------------------------------

    def send(self, head: _Buffer, size: int, now: float) -> None:
        """QueuedStrategy._send with MarkLedger.media: the bytes, a mark when due."""
        offset = head.offset
        sent_to = offset + size
        head.offset, head.size = sent_to, head.size - size
        final = head.ended and not head.size
        key = head.key
        self.rows.append((MEDIA, head.item_id, head.content_index, offset, size, self.generation,
                          now, "", b""))  # fmt: skip
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
        self.seq = seq = self.seq + 1
        start, end = progress.marked_to, progress.sent_to
        progress.marked_to = end
        generation = self.generation
        names = self.names
        if seq - self.names_from >= len(names):  # the next block of this generation's names
            names = self.names = mark_names(generation, seq, NAME_BLOCK)
            self.names_from = seq
        mark = Mark(names[seq - self.names_from], key[0], key[1], start, end, generation, now)
        self.rows.append((MARK, key[0], key[1], start, end - start, generation, now, mark.name,
                          b""))  # fmt: skip
        self.feed.mark(now, mark)

    # -- the echoes ----------------------------------------------------------------------------

    def settle(self, key: ItemKey, now: float) -> ItemStats | None:
        """Before the learner hears more of an item whose every byte already went out (its
        key came back: interleaved items): the echoes so far, for by now it may have taken
        the item's sample and forgotten it. Returns the item's stats left, if any."""
        self.learn_until(now)
        return self.stats_of(key)

    def learn_until(self, now: float) -> None:
        """Hand the learner the echoes that reached the app by ``now``, as the ledger would:
        an echo of a cleared generation is forgotten when the ledger honours generations."""
        learn = self.strategy.learn_from_echo
        forgets, generation = self.honor_generations, self.generation
        for reached_ms, mark in self.feed.reached_by(now):
            if not (forgets and mark.generation != generation):
                learn(mark, reached_ms)

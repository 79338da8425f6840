"""``adaptive``'s messages for a whole trace in one pass: its sending rules with plain numbers.

Driving the strategy object (labkit/outbound/adaptive.py) through the event loop costs a
``Media``, a ledger call and the world's bookkeeping per model delta: twice the simulator's
budget. But echoes reach ``adaptive``'s sending only through each item's hold, fixed when the
item's first byte arrives from the hold history, and through what an interrupt makes it forget.
So this plan:

- sends by the strategy's rules with plain numbers: the queued strategies' machinery
  (labkit/sim/queued_plan.py: the item queue, an ended item's tail, the drops of an interrupt,
  the ledger's cadence and names, the sender's call order) and adaptive's own (the hold, whole
  20 ms frames);
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

The rows are the event loop's, bit for bit (tests/test_sim_adaptive_plan.py), for a fresh
``AdaptiveStrategy`` with its timers on time, FIFO playout and a ledger that cannot evict
marks.
See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit.outbound.adaptive import AdaptiveStrategy, ItemStats
from labkit.outbound.base import BYTES_PER_MS, FRAME_BYTES
from labkit.sim.echo_feed import EchoFeed
from labkit.sim.links import Link
from labkit.sim.playout import FifoPlayout
from labkit.sim.queued_plan import Buffer, ItemKey, QueuedPlan, is_fresh

if TYPE_CHECKING:
    from labkit.sim.simulator import PreparedTrace


def applies(trace: PreparedTrace, strategy: object, fwd: Link, model: object) -> bool:
    """True for a fresh ``AdaptiveStrategy`` exactly (a subclass may change any rule), timers
    on time, FIFO playout (``fifo``/``frame_padding``) and a ledger cap above the trace's
    audio (so no mark is ever evicted: every first echo of the current generation counts)."""
    if type(strategy) is not AdaptiveStrategy or type(model) is not FifoPlayout:
        return False
    return (
        fwd.lateness_ms == 0.0
        and not model.plays
        and is_fresh(strategy)
        and not strategy.learned_anything()
        and trace.audio_bytes <= strategy.ledger._max_pending_bytes
    )


class AdaptivePlan(QueuedPlan):
    """The rows the event loop would record for ``strategy`` over a trace (see module doc)."""

    def __init__(self, strategy: AdaptiveStrategy, feed: EchoFeed) -> None:
        super().__init__(strategy)
        self.strategy = strategy
        self.feed = self.world = feed  # world: the same, typed as always there
        self.honor_generations = strategy.ledger.honor_generations
        self.stats_of = strategy.item_stats  # bound once: a call per delta

    # -- AdaptiveStrategy's rule ---------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The head's hold, once it has something to send."""
        buffers = self.buffers
        if not buffers:
            return None
        head = buffers[0]
        if head.size < FRAME_BYTES if self.align_frames else not head.size:
            return None
        return head.hold_until_ms

    def ready(self, head: Buffer, now: float) -> int:
        """Once its hold is over the head sends its whole frames (all without align_frames)."""
        return self.whole(head.size) if now >= head.hold_until_ms else 0

    # -- the learner, called where the strategy calls it ---------------------------------------

    def opened(self, buffer: Buffer, now: float) -> None:
        """An item's first byte starts its hold, learned from the echoes that reached the app
        by now (a mid-item buffer, after an interrupt, is not held)."""
        if buffer.offset == 0:
            self.learn_until(now)
            buffer.hold_until_ms = now + self.strategy.start_item(buffer.key, now)

    def pushed_chunk(self, buffer: Buffer, size: int, now: float) -> None:
        """AdaptiveStrategy._on_push: the lateness of the frame the chunk's first byte is in."""
        stats = self.stats_of(buffer.key)
        if stats is not None and stats.final_end is not None:
            stats = self.settle(buffer.key, now)
        if stats is not None:
            first_byte = buffer.offset + buffer.size - size
            if self.align_frames:
                first_byte -= first_byte % FRAME_BYTES
            lateness_ms = now - first_byte / BYTES_PER_MS
            if lateness_ms > stats.max_lateness_ms:
                stats.max_lateness_ms = lateness_ms

    def retired(self, head: Buffer, now: float) -> None:
        stats = self.stats_of(head.key)
        if stats is not None and stats.final_end is not None:
            self.settle(head.key, now)
        self.strategy.item_sent(head.key, head.offset)

    def before_interrupt(self, now: float) -> None:
        self.learn_until(now)  # the items it forgets learned from these echoes first
        self.strategy.forget_items()

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
        for reached_ms, mark in self.world.reached_by(now):
            if not (forgets and mark.generation != generation):
                learn(mark, reached_ms)

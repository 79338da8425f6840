"""``forward``: one media message per model delta, sent at once.

What the SDK's Twilio example and the JS SDK's transport do. Promise: no byte waits (0 ms).
It ignores ``threshold_ms``. See notebooks/01_why_tiny_packets_jitter.ipynb.
"""

from __future__ import annotations

import math

from labkit.marks import DEFAULT_MARK_EVERY_MS, MarkLedger
from labkit.outbound.base import AudioChunk, Mark, Outbound
from labkit.outbound.queued import Clocked, check_threshold


class ForwardStrategy(Clocked):
    """Send every delta as it arrives; marks at the ledger's cadence, always at an item's end
    (``end()``, or the first audio of another item)."""

    name = "forward"
    threshold_means: str | None = None  # it ignores threshold_ms (sweeps run it once)
    echo_blind = True

    def __init__(
        self,
        threshold_ms: float = 0.0,
        *,
        mark_every_ms: float | None = DEFAULT_MARK_EVERY_MS,
        honor_generations: bool = True,
    ) -> None:
        super().__init__()
        self.threshold_ms = check_threshold(self.name, threshold_ms)  # unused: nothing is held
        self.ledger = MarkLedger(mark_every_ms, honor_generations=honor_generations)
        self._pushed: dict[tuple[str, int], int] = {}
        self._current: tuple[str, int] | None = None  # the item whose audio came last

    def push(self, chunk: AudioChunk, now: float) -> list[Outbound]:
        if not self._now <= now < math.inf:  # _tick's clock check, inline: once per delta
            self._tick(now, "push")
        self._now = now
        data = chunk.data
        if not data:
            return []
        item_id, content_index = chunk.item_id, chunk.content_index
        key = (item_id, content_index)
        current = self._current
        if current is None or current == key:
            out: list[Outbound] = []
        else:
            out = self.ledger.finish(*current, now)  # the model moved on: that item is done
        self._current = key
        pushed = self._pushed
        offset = pushed.get(key, 0)
        pushed[key] = offset + len(data)
        out.append(self.ledger.media(item_id, content_index, offset, data, now))
        return out

    def poll(self, now: float) -> list[Outbound]:
        self._tick(now, "poll")
        return []

    def next_deadline(self) -> float | None:
        return None

    def end(self, item_id: str, content_index: int, now: float) -> list[Outbound]:
        self._tick(now, "end")
        return self.ledger.finish(item_id, content_index, now)

    def interrupt(self, now: float) -> list[Outbound]:
        self._tick(now, "interrupt")
        return [self.ledger.clear(now)]

    def echo(self, name: str, now: float) -> Mark | None:
        return self.ledger.echo(name, now)

    def close(self) -> None:
        self._pushed.clear()
        self.ledger.close()

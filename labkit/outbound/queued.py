"""What every buffering strategy shares: the item queue, the mark ledger, the clock check.

A subclass only decides, in ``_service(now)``, how much of the head buffer to send now, and in
``next_deadline()`` when that decision changes. See notebooks/01_why_tiny_packets_jitter.ipynb.
"""

from __future__ import annotations

import math

from labkit.marks import DEFAULT_MARK_EVERY_MS, MarkLedger
from labkit.outbound.base import BYTES_PER_MS, AudioChunk, Mark, Outbound
from labkit.outbound.itemqueue import ItemBuffer, ItemQueue, whole_frames
from labkit.values import is_real

# Ten minutes of buffer, Twilio's own limit: no strategy holds or leads by more.
MAX_THRESHOLD_MS = 600_000.0


def threshold_problem(threshold_ms: object) -> str | None:
    """Why ``threshold_ms`` is no threshold, or None: the one rule for every strategy, the
    command line and a call's settings. A finite number of ms from 0 to MAX_THRESHOLD_MS (a
    bool or a string is no number of ms, though float() would take one)."""
    try:
        value = float(threshold_ms) if is_real(threshold_ms) else math.nan
    except OverflowError:  # an int too large for a float
        value = math.nan
    if math.isfinite(value) and 0 <= value <= MAX_THRESHOLD_MS:
        return None
    return (f"threshold_ms must be a finite number of ms from 0 to {MAX_THRESHOLD_MS:g} (ten "
            f"minutes of buffer, Twilio's own limit), got {threshold_ms!r:.40}")


def check_threshold_ms(threshold_ms: float) -> float:
    """``threshold_ms`` as a float, or a ValueError saying why not (``threshold_problem``): the
    command line's and a call's settings' check."""
    problem = threshold_problem(threshold_ms)
    if problem is not None:
        raise ValueError(problem)
    return float(threshold_ms)


def check_threshold(name: str, threshold_ms: float) -> float:
    """``check_threshold_ms``, the ValueError naming the strategy."""
    try:
        return check_threshold_ms(threshold_ms)
    except ValueError as exc:
        raise ValueError(f"strategy {name!r}: {exc}") from None


class Clocked:
    """Rejects a clock that runs backwards: a driver bug that would silently reorder audio."""

    name = "strategy"
    threshold_means: str | None  # what threshold_ms is to the strategy; None: it ignores it

    def __init__(self) -> None:
        self._now = -math.inf

    def _tick(self, now: float, where: str) -> None:
        if not self._now <= now < math.inf:  # also rejects NaN
            if now == math.inf:  # every later, finite call would be "earlier"
                raise ValueError(f"{self.name}.{where}: now must be a finite time, got {now!r}")
            raise ValueError(f"{self.name}.{where}: now={now!r} is earlier than a previous "
                             f"call's now={self._now!r} (the clock must not run backwards)")
        self._now = now


class QueuedStrategy(Clocked):
    """Base of rechunk, preroll, paced and adaptive (not forward: it buffers nothing)."""

    name = "queued"
    echo_blind = True  # what it sends never depends on echoes (adaptive's does)

    def __init__(
        self,
        threshold_ms: float,
        *,
        mark_every_ms: float | None = DEFAULT_MARK_EVERY_MS,
        honor_generations: bool = True,
        align_frames: bool = False,
    ) -> None:
        super().__init__()
        self.threshold_ms = check_threshold(self.name, threshold_ms)
        self._threshold_bytes = self.threshold_ms * BYTES_PER_MS
        self.align_frames = align_frames
        self.ledger = MarkLedger(mark_every_ms, honor_generations=honor_generations)
        self._queue = ItemQueue()
        self.dropped_bytes = 0  # buffered bytes dropped by interrupts
        # push runs once per model delta: skip the call to a hook the subclass left empty
        self._hooks_push = type(self)._on_push is not QueuedStrategy._on_push

    def push(self, chunk: AudioChunk, now: float) -> list[Outbound]:
        if not self._now <= now < math.inf:  # _tick's clock check, inline: once per delta
            self._tick(now, "push")
        self._now = now
        data = chunk.data
        if data:
            # ItemQueue.push and ItemBuffer.append, inline for their usual case (the chunk
            # continues the open tail buffer; no key tuple, no count update: ItemQueue counts
            # a buffer's bytes when it closes). Push runs once per model delta: ~9% of the
            # strategy's own time, ~5-8% of a rechunk or preroll simulate (neither half alone
            # pays: the calls and the per-push dict update cost about the same)
            buffers = self._queue.buffers
            tail = buffers[-1] if buffers else None
            if (tail is not None and not tail.ended and tail.item_id == chunk.item_id
                    and tail.content_index == chunk.content_index):
                tail._chunks.append(data if type(data) is bytes else bytes(data))
                tail._arrivals.append(now)
                tail.size += len(data)
                buffer, is_new = tail, False
            else:
                buffer, is_new = self._queue.open(chunk, now), True
            if self._hooks_push:
                self._on_push(buffer, is_new, len(data), now)
        return self._service(now)

    def poll(self, now: float) -> list[Outbound]:
        if not now >= self._now:  # the clock check of _tick, inline: a poll per 20 ms frame
            self._tick(now, "poll")
        self._now = now
        return self._service(now)

    def end(self, item_id: str, content_index: int, now: float) -> list[Outbound]:
        self._tick(now, "end")
        if self._queue.end((item_id, content_index)):
            return self._service(now)
        out = self._service(now)
        out += self.ledger.finish(item_id, content_index, now)
        return out

    def interrupt(self, now: float) -> list[Outbound]:
        self._tick(now, "interrupt")
        self.dropped_bytes += self._queue.drop_all()  # never flush first: it would only be cleared
        self._on_interrupt(now)
        return [self.ledger.clear(now)]

    def echo(self, name: str, now: float) -> Mark | None:
        return self.ledger.echo(name, now)

    def close(self) -> None:
        self._queue.clear()
        self.ledger.close()

    def next_deadline(self) -> float | None:
        raise NotImplementedError

    # -- what subclasses decide --------------------------------------------------------------

    def _service(self, now: float) -> list[Outbound]:
        raise NotImplementedError

    def _on_push(self, buffer: ItemBuffer, is_new: bool, size: int, now: float) -> None:
        """Hook: a chunk of ``size`` bytes landed in ``buffer``."""

    def _on_interrupt(self, now: float) -> None:
        """Hook: the queue was just dropped."""

    # -- helpers ----------------------------------------------------------------------------

    def _sendable(self, size: int) -> int:
        """How many of ``size`` buffered bytes may go in one message before the item's end."""
        return whole_frames(size) if self.align_frames else size

    def _send(self, buffer: ItemBuffer, size: int, now: float, out: list[Outbound]) -> None:
        """Send the first ``size`` bytes of the head buffer; retire it when its tail went out."""
        offset, payload = buffer.take(size)
        final = buffer.ended and not buffer.size
        out.append(self.ledger.media(buffer.item_id, buffer.content_index, offset, payload, now,
                                     final=final))
        if final:
            self._retire_head()

    def _retire_head(self) -> None:
        self._queue.buffers.popleft()

    def _drain_ended_heads(self, now: float, out: list[Outbound]) -> ItemBuffer | None:
        """Ended heads go out whole (a tail may be any size); returns the open head left, if any."""
        buffers = self._queue.buffers
        while buffers:
            head = buffers[0]
            if not head.ended:
                return head
            if head.size:
                self._send(head, head.size, now, out)  # final: retires the head
            else:
                self._retire_head()
                out += self.ledger.finish(head.item_id, head.content_index, now)
        return None

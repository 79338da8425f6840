"""``rechunk``: the original report's fix, done right.

Accumulate an item's audio until at least ``threshold_ms * 8`` bytes are buffered, then send
all of it as one message; also send what has waited ``flush_interval_ms`` (deadline = arrival
of the oldest buffered byte + flush_interval_ms); an item's tail goes out at ``end()`` (or when
the next item's audio arrives). Media never mixes items. Unlike the original report it never
flushes before ``clear`` and never sends ``clear`` at the end of an item.

Promise: no byte waits longer than ``flush_interval_ms``. With ``align_frames`` only whole
160-byte frames go out before the tail, so a byte waits at most ``flush_interval_ms`` after
the last byte of its frame arrived (or until its item ends).
See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import math

from labkit.marks import DEFAULT_MARK_EVERY_MS
from labkit.outbound.base import Outbound
from labkit.outbound.itemqueue import whole_frames
from labkit.outbound.queued import QueuedStrategy

DEFAULT_FLUSH_INTERVAL_MS = 100.0


class RechunkStrategy(QueuedStrategy):
    """Accumulate to ``threshold_ms`` of audio or ``flush_interval_ms`` of waiting, then send."""

    name = "rechunk"
    threshold_means: str | None = "message size (ms of audio)"  # what threshold_ms is to it

    def __init__(
        self,
        threshold_ms: float = 50.0,
        *,
        flush_interval_ms: float = DEFAULT_FLUSH_INTERVAL_MS,
        mark_every_ms: float | None = DEFAULT_MARK_EVERY_MS,
        honor_generations: bool = True,
        align_frames: bool = False,
    ) -> None:
        super().__init__(threshold_ms, mark_every_ms=mark_every_ms,
                         honor_generations=honor_generations, align_frames=align_frames)
        if not (math.isfinite(flush_interval_ms) and flush_interval_ms >= 0):
            raise ValueError(f"strategy 'rechunk': flush_interval_ms must be >= 0, "
                             f"got {flush_interval_ms!r}")
        self.flush_interval_ms = float(flush_interval_ms)

    # next_deadline and _service run after every push: _sendable and the head's
    # oldest_arrival_ms are inline (the oldest byte's arrival is that of the first chunk left)

    def next_deadline(self) -> float | None:
        buffers = self._queue.buffers
        if not buffers:
            return None
        head = buffers[0]
        buffered = head.size
        if not (whole_frames(buffered) if self.align_frames else buffered):
            return None
        return head._arrivals[0] + self.flush_interval_ms

    def _service(self, now: float) -> list[Outbound]:
        out: list[Outbound] = []
        head = self._drain_ended_heads(now, out)
        if head is None or not head.size:
            return out
        buffered = head.size
        if buffered >= self._threshold_bytes or head._arrivals[0] + self.flush_interval_ms <= now:
            size = whole_frames(buffered) if self.align_frames else buffered
            if size:
                self._send(head, size, now, out)
        return out

"""``preroll``: hold the start of every item, then forward.

Holds the first ``threshold_ms`` of each item's audio (the whole item if it is shorter, sent at
``end()``), then sends everything buffered at once and forwards every later delta as it comes.
The held audio becomes the cushion in Twilio's queue that absorbs upstream stalls.

Promise: a byte waits until its item has pushed ``threshold_ms`` of audio or ended, no longer.
With ``align_frames`` only whole 160-byte frames go out before the item's tail, so a byte may
also wait for the rest of its frame. See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

from labkit.outbound.base import Outbound
from labkit.outbound.itemqueue import whole_frames
from labkit.outbound.queued import QueuedStrategy


class PrerollStrategy(QueuedStrategy):
    """Hold ``threshold_ms`` of each item's audio, then forward."""

    name = "preroll"
    threshold_means: str | None = "pre-roll held per answer (ms)"  # what threshold_ms is to it

    def next_deadline(self) -> float | None:
        return None  # it waits for audio, never for time

    def _service(self, now: float) -> list[Outbound]:
        out: list[Outbound] = []
        head = self._drain_ended_heads(now, out)
        if head is None:
            return out
        buffered = head.size  # end_offset and _sendable, inline: this runs after every delta
        if head.offset + buffered >= self._threshold_bytes:
            size = whole_frames(buffered) if self.align_frames else buffered
            if size:
                self._send(head, size, now, out)
        return out

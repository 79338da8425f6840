"""``paced``: frames on an absolute stream clock with a lead.

Sends frames of ``frame_ms`` (default 20 ms = 160 bytes; an item's tail may be shorter). Frame
k, starting at media time m_k since the anchor, is due at ``anchor + m_k - lead`` with
``lead = threshold_ms``: Twilio is kept at most ``lead`` (plus the frame in flight) of audio
ahead of real time. Deadlines come from the anchor and media time, never from accumulated
sleeps, so they do not drift. ``threshold_ms = 0`` is pipecat's just-in-time pacing.

When the stream clock has passed the next frame's media time (the buffer ran dry: an upstream
stall, Twilio's queue drained), the clock re-anchors at ``now`` so pacing resumes with at most
``lead`` queued ahead, never a catch-up burst. Media time continues across items while audio is
continuous. A frame waits for its last byte to arrive (or its item to end).

Promise: a frame goes out at max(its deadline, the arrival of its last byte or its item's end).
With ``align_frames`` the frame size is rounded up to whole 160-byte frames.
See notebooks/01_why_tiny_packets_jitter.ipynb.
"""

from __future__ import annotations

import math

from labkit.marks import DEFAULT_MARK_EVERY_MS
from labkit.outbound.base import BYTES_PER_MS, FRAME_BYTES, FRAME_MS, Outbound
from labkit.outbound.queued import QueuedStrategy


class PacedStrategy(QueuedStrategy):
    """Frames of ``frame_ms`` at 1x real time, ``threshold_ms`` of lead."""

    name = "paced"
    threshold_means: str | None = "lead over real time (ms)"  # what threshold_ms is to it

    def __init__(
        self,
        threshold_ms: float = 0.0,
        *,
        frame_ms: float = FRAME_MS,
        mark_every_ms: float | None = DEFAULT_MARK_EVERY_MS,
        honor_generations: bool = True,
        align_frames: bool = False,
    ) -> None:
        super().__init__(threshold_ms, mark_every_ms=mark_every_ms,
                         honor_generations=honor_generations, align_frames=align_frames)
        frame_bytes = round(frame_ms * BYTES_PER_MS) if math.isfinite(frame_ms) else 0
        if frame_bytes < 1:
            raise ValueError(f"strategy 'paced': frame_ms must be >= 1/8 ms, got {frame_ms!r}")
        if align_frames:
            frame_bytes = max(FRAME_BYTES, math.ceil(frame_bytes / FRAME_BYTES) * FRAME_BYTES)
        self.frame_bytes = frame_bytes
        self.lead_ms = self.threshold_ms
        self.anchor_ms: float | None = None  # stream clock: media time 0 plays at anchor_ms
        self.media_ms = 0.0  # media time sent since the anchor
        self.reanchors = 0

    def next_deadline(self) -> float | None:
        # Called after every driver call, so kept to a few attribute reads.
        buffers = self._queue.buffers
        anchor_ms = self.anchor_ms
        if not buffers or anchor_ms is None:
            return None
        head = buffers[0]
        buffered = head.size
        if buffered < self.frame_bytes and not (head.ended and buffered):
            return None  # no complete frame, and not the tail of an ended item
        return anchor_ms + self.media_ms - self.lead_ms

    def _service(self, now: float) -> list[Outbound]:
        # One pass per frame (the strategy's hot loop): send the head's next frame once it is
        # complete (or is an ended item's tail) and its deadline has come.
        out: list[Outbound] = []
        buffers = self._queue.buffers
        frame_bytes = self.frame_bytes
        while buffers:
            head = buffers[0]
            buffered = head.size
            if buffered >= frame_bytes:
                size = frame_bytes
            elif not head.ended:
                return out
            elif buffered:
                size = buffered
            else:
                self._retire_head()
                out += self.ledger.finish(head.item_id, head.content_index, now)
                continue
            anchor_ms, media_ms = self.anchor_ms, self.media_ms
            if anchor_ms is None or anchor_ms + media_ms < now:
                # The stream clock passed the next frame's media time: Twilio's queue ran
                # dry. Restart the clock at now instead of catching up, which would burst
                # the backlog at once.
                if anchor_ms is not None:
                    self.reanchors += 1
                anchor_ms = self.anchor_ms = now - media_ms
            if anchor_ms + media_ms - self.lead_ms > now:
                return out
            # _send, inline
            offset, payload = head.take(size)
            final = head.ended and not head.size
            out.append(self.ledger.media(head.item_id, head.content_index, offset, payload, now,
                                         final=final))
            if final:
                self._retire_head()
            self.media_ms = media_ms + size / BYTES_PER_MS
        return out

    def _on_interrupt(self, now: float) -> None:
        self.anchor_ms = None  # clear empties Twilio's queue: the next audio starts a new clock
        self.media_ms = 0.0

    def close(self) -> None:
        super().close()
        self.anchor_ms = None  # the call ended: audio after it (a reuse) starts a new clock
        self.media_ms = 0.0

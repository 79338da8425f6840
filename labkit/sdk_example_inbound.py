"""The SDK example's caller audio toward the model, modelled from its code (before and after #2033).

Sans-I/O, as the example's handler behaves at commit 6ee7b8823 (PR #2033, the fix merged for issue
#1906; ``shared/reference/pr2033_merged_inbound_warmup_twilio_handler.py``), not as its description
reads:

- every Twilio frame is appended to one buffer, and the buffer is sent *whole* as soon as it holds
  at least 400 B (``BUFFER_SIZE_BYTES``, lines 221-229). Twilio's frames are 160 B, so a steady
  caller is sent in 480 B (60 ms) pieces, not 400 B ones;
- a loop wakes every 50 ms and sends whatever the buffer holds when more than 100 ms passed since
  the last send (lines 283-296). The last send's time starts at the handler's creation (line 59),
  before the OpenAI session is entered and the Twilio socket accepted, so the first wake after the
  caller's first frame usually sends a partial 160 or 320 B;
- until warmed up, every send goes to a start-up buffer instead, released whole once it holds at
  least 3 x 400 B (``STARTUP_BUFFER_CHUNKS``, lines 262-276): 1280, 1440 or 1600 B, by where the
  loop's wakes fall. ``warmup_chunks=0`` is the example before #2033.

labkit's own handler cuts exact 400 B pieces instead (labkit/inbound.py).
See notebooks/06_which_explanation_survives.ipynb.
"""

from __future__ import annotations

from dataclasses import dataclass

CHUNK_BYTES = 400  # the example's BUFFER_SIZE_BYTES: 50 ms at 8000 B/s
WAKE_EVERY_MS = 50.0  # the flush loop's sleep (CHUNK_LENGTH_S)
STALE_AFTER_MS = 100.0  # the loop sends only when more than 2 x CHUNK_LENGTH_S passed
DEFAULT_WARMUP_CHUNKS = 3  # TWILIO_STARTUP_BUFFER_CHUNKS' default
FRAME_MS = 20
FRAME_BYTES = 160


class SdkExampleInbound:
    """The example handler's two inbound paths: ``frame`` (each Twilio media) and ``wake`` (its
    flush loop). Each returns the byte strings sent to the model at ``now_ms``."""

    def __init__(self, warmup_chunks: int = DEFAULT_WARMUP_CHUNKS, created_ms: float = 0.0):
        if warmup_chunks < 0:
            raise ValueError(f"SdkExampleInbound: warmup_chunks must be >= 0, got {warmup_chunks}")
        self.warmup_bytes = CHUNK_BYTES * warmup_chunks
        self._held = bytearray()
        self._startup = bytearray()
        self._warmed_up = warmup_chunks == 0
        self._last_send_ms = created_ms  # set in the handler's __init__, not at the first frame

    def frame(self, payload: bytes, now_ms: float) -> list[bytes]:
        """A caller frame arrived."""
        self._held += payload
        return self._flush(now_ms) if len(self._held) >= CHUNK_BYTES else []

    def wake(self, now_ms: float) -> list[bytes]:
        """The flush loop woke."""
        if self._held and now_ms - self._last_send_ms > STALE_AFTER_MS:
            return self._flush(now_ms)
        return []

    def _flush(self, now_ms: float) -> list[bytes]:
        piece = bytes(self._held)
        self._held.clear()
        self._last_send_ms = now_ms
        if self._warmed_up:
            return [piece]
        self._startup += piece
        if len(self._startup) < self.warmup_bytes:
            return []
        self._warmed_up = True
        warmup = bytes(self._startup)
        self._startup.clear()
        return [warmup]


@dataclass(frozen=True)
class FirstSend:
    """When the model first receives the caller's audio, in ms after the caller's first frame
    arrived, and how many bytes (``bytes / 8`` ms of the caller) it receives then."""

    at_ms: float
    bytes: int


def first_send(warmup_chunks: int, wake_phase_ms: float, created_ms_before: float = 1000.0,
               max_frames: int = 100) -> FirstSend:  # fmt: skip
    """The example's first send to the model for a caller who talks from the first frame.

    Frames arrive every 20 ms from 0; the flush loop wakes at ``wake_phase_ms`` (0-50) and every
    50 ms after it; the handler was created ``created_ms_before`` before the first frame (the
    OpenAI session is entered in between, so usually far more than 100 ms)."""
    if not 0 <= wake_phase_ms < WAKE_EVERY_MS:
        raise ValueError(f"first_send: wake_phase_ms must be in [0, 50), got {wake_phase_ms}")
    handler = SdkExampleInbound(warmup_chunks, created_ms=-created_ms_before)
    wake_ms = wake_phase_ms
    for index in range(max_frames):
        frame_ms = float(index * FRAME_MS)
        while wake_ms < frame_ms:  # the loop's wakes before this frame
            if sent := handler.wake(wake_ms):
                return FirstSend(wake_ms, len(sent[0]))
            wake_ms += WAKE_EVERY_MS
        if sent := handler.frame(bytes(FRAME_BYTES), frame_ms):
            return FirstSend(frame_ms, len(sent[0]))
    raise RuntimeError(f"first_send: nothing sent within {max_frames} frames")

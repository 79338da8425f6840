"""Caller audio toward the model: Twilio's 20 ms frames regrouped into model-sized chunks.

Sans-I/O. Twilio sends one ``media`` message per 20 ms frame (160 B) stamped with its media time
(ms since the stream started). ``InboundBuffer`` rebuilds the caller's timeline from those stamps
and cuts it into exact ``chunk_bytes`` pieces (default 50 ms = 400 B). The first ``warmup_chunks``
chunks (default 3, i.e. 150 ms) are held and released together as one piece, so the model's VAD
starts on a short cushion instead of a single frame: the idea of the SDK example's fix (#2033),
whose code sends 480 B pieces and a 160-200 ms first piece instead (labkit/sdk_example_inbound.py).
See notebooks/05_barge_in_and_marks.ipynb.

Timeline rules (Twilio's WebSocket is TCP, so frames arrive in order; a timestamp that goes
backwards is a duplicate or a replay, not a late packet worth re-inserting):
- a forward gap of at most ``max_gap_ms`` is filled with silence (0xFF), byte for byte;
- a forward gap above it is not filled: the timeline restarts at the new stamp (``restarts`` += 1),
  because inventing seconds of silence would only delay everything the caller says next;
- a frame wholly before the expected time is dropped (``duplicate_frames`` += 1); a frame that
  overlaps the expected time keeps only its new tail (``overlap_bytes_dropped`` counts the rest);
- a backward jump larger than ``max_gap_ms`` is a new timeline (``restarts`` += 1), kept whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from labkit.values import is_real, is_whole

BYTES_PER_MS = 8
SILENCE_BYTE = 0xFF
DEFAULT_CHUNK_MS = 50
DEFAULT_WARMUP_CHUNKS = 3
DEFAULT_MAX_GAP_MS = 200


@dataclass(slots=True)
class InboundStats:
    frames: int = 0
    payload_bytes: int = 0
    gaps_filled: int = 0
    silence_bytes: int = 0
    restarts: int = 0
    duplicate_frames: int = 0
    overlap_bytes_dropped: int = 0


class InboundBuffer:
    """``push`` each caller frame with its Twilio stamp; send each returned piece to the model."""

    def __init__(
        self,
        chunk_ms: float = DEFAULT_CHUNK_MS,
        warmup_chunks: int = DEFAULT_WARMUP_CHUNKS,
        max_gap_ms: float = DEFAULT_MAX_GAP_MS,
    ) -> None:
        if not (is_real(chunk_ms) and 0 < chunk_ms < math.inf
                and int(chunk_ms * BYTES_PER_MS) > 0):  # fmt: skip
            raise ValueError(f"InboundBuffer: chunk_ms must be a finite number of ms of at least "
                             f"one byte, got {chunk_ms!r}")  # fmt: skip
        if not (is_whole(warmup_chunks) and warmup_chunks >= 0):
            raise ValueError(f"InboundBuffer: warmup_chunks must be a whole number >= 0, "
                             f"got {warmup_chunks!r}")  # fmt: skip
        if not (is_real(max_gap_ms) and 0 <= max_gap_ms < math.inf):
            raise ValueError(f"InboundBuffer: max_gap_ms must be a finite number >= 0, "
                             f"got {max_gap_ms!r}")  # fmt: skip
        self.chunk_bytes = int(chunk_ms * BYTES_PER_MS)
        self.warmup_bytes = self.chunk_bytes * warmup_chunks
        self.max_gap_bytes = int(max_gap_ms * BYTES_PER_MS)
        self.stats = InboundStats()
        self._pending = bytearray()
        self._warmed_up = warmup_chunks == 0
        self._expected_byte: int | None = None  # timeline position (bytes) of the next frame

    def push(self, frame_payload: bytes, timestamp_ms: int) -> list[bytes]:
        """One Twilio frame; returns the pieces ready for the model (maybe none). Its
        ``timestamp_ms`` is Twilio's: whole ms from the stream's start."""
        if not (is_whole(timestamp_ms) and timestamp_ms >= 0):
            raise ValueError(f"InboundBuffer.push: timestamp_ms must be a whole number of ms "
                             f">= 0, got {timestamp_ms!r}")  # fmt: skip
        self.stats.frames += 1
        self.stats.payload_bytes += len(frame_payload)
        self._pending += self._place_on_timeline(frame_payload, timestamp_ms * BYTES_PER_MS)
        return self._ready_pieces()

    def flush(self) -> bytes:
        """Everything still held (the call ended, or the caller stopped talking)."""
        rest = bytes(self._pending)
        self._pending.clear()
        return rest

    def _place_on_timeline(self, payload: bytes, at_byte: int) -> bytes:
        expected = self._expected_byte
        if expected is None:
            expected = at_byte
        gap = at_byte - expected
        if gap > self.max_gap_bytes or -gap > self.max_gap_bytes:
            self.stats.restarts += 1
            gap = 0
        elif gap > 0:
            self.stats.gaps_filled += 1
            self.stats.silence_bytes += gap
        elif gap < 0:
            overlap = min(-gap, len(payload))
            if overlap == len(payload):
                self.stats.duplicate_frames += 1
            self.stats.overlap_bytes_dropped += overlap
            self._expected_byte = max(expected, at_byte + len(payload))
            return payload[overlap:]
        self._expected_byte = at_byte + len(payload)
        return bytes([SILENCE_BYTE]) * gap + payload if gap else payload

    def _ready_pieces(self) -> list[bytes]:
        if not self._warmed_up:
            if len(self._pending) < self.warmup_bytes:
                return []
            self._warmed_up = True
            warmup = bytes(self._pending[: self.warmup_bytes])
            del self._pending[: self.warmup_bytes]
            return [warmup, *self._ready_pieces()]
        count = len(self._pending) // self.chunk_bytes
        if count == 0:
            return []
        cut = count * self.chunk_bytes
        ready = bytes(self._pending[:cut])
        del self._pending[:cut]
        return [ready[i : i + self.chunk_bytes] for i in range(0, cut, self.chunk_bytes)]

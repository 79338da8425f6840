"""Per-item byte buffers in arrival order: what buffering strategies hold back.

Media never mixes items: each buffer holds one item's (item_id, content_index) bytes, and
only the head buffer sends. Audio of a new item implies the previous item's audio is complete
(the model moved on), so the previous buffer is marked ended and its tail may go out.
See notebooks/01_why_tiny_packets_jitter.ipynb.
"""

from __future__ import annotations

from collections import deque

from labkit.outbound.base import FRAME_BYTES, AudioChunk

ItemKey = tuple[str, int]


def whole_frames(size: int) -> int:
    """The largest multiple of FRAME_BYTES not above ``size``."""
    return size - size % FRAME_BYTES


class ItemBuffer:
    """One item's bytes waiting to be sent, with the arrival time of each chunk."""

    __slots__ = ("_arrivals", "content_index", "data", "ended", "first_arrival_ms", "hold_until_ms",
                 "item_id", "offset")

    def __init__(self, item_id: str, content_index: int, offset: int, now: float) -> None:
        self.item_id = item_id
        self.content_index = content_index
        self.data = bytearray()
        self.offset = offset  # byte offset of data[0] within the item
        self.ended = False
        self.first_arrival_ms = now
        self.hold_until_ms = -float("inf")  # strategies that pre-roll set it
        self._arrivals: deque[tuple[int, float]] = deque()  # (end offset of a chunk, its arrival)

    @property
    def key(self) -> ItemKey:
        return (self.item_id, self.content_index)

    @property
    def end_offset(self) -> int:
        """Offset just past the last byte pushed into this buffer."""
        return self.offset + len(self.data)

    @property
    def oldest_arrival_ms(self) -> float | None:
        """Arrival time of the oldest byte still buffered."""
        return self._arrivals[0][1] if self.data else None

    def append(self, data: bytes, now: float) -> None:
        self.data += data
        self._arrivals.append((self.end_offset, now))

    def take(self, size: int) -> tuple[int, bytes]:
        """Remove the first ``size`` bytes: (their item offset, the bytes)."""
        offset = self.offset
        payload = bytes(self.data[:size])
        del self.data[:size]  # bytearray drops a prefix in O(1) amortised
        self.offset += size
        while self._arrivals and self._arrivals[0][0] <= self.offset:
            self._arrivals.popleft()
        return offset, payload


class ItemQueue:
    """Buffers in push order; remembers how many bytes each item has pushed (its next offset)."""

    def __init__(self) -> None:
        self.buffers: deque[ItemBuffer] = deque()
        self._pushed: dict[ItemKey, int] = {}

    @property
    def head(self) -> ItemBuffer | None:
        return self.buffers[0] if self.buffers else None

    def push(self, chunk: AudioChunk, now: float) -> tuple[ItemBuffer, bool]:
        """Append the chunk; returns its buffer and whether that buffer is new."""
        key = (chunk.item_id, chunk.content_index)
        offset = self._pushed.get(key, 0)
        self._pushed[key] = offset + len(chunk.data)
        tail = self.buffers[-1] if self.buffers else None
        if tail is not None and tail.key == key and not tail.ended:
            tail.append(chunk.data, now)
            return tail, False
        if tail is not None:
            tail.ended = True  # a new item: the previous one's audio is complete
        buffer = ItemBuffer(chunk.item_id, chunk.content_index, offset, now)
        buffer.append(chunk.data, now)
        self.buffers.append(buffer)
        return buffer, True

    def end(self, key: ItemKey) -> bool:
        """Mark the item's open buffer ended; False when it has none (all its bytes went out)."""
        for buffer in reversed(self.buffers):
            if buffer.key == key and not buffer.ended:
                buffer.ended = True
                return True
        return False

    def pushed(self, key: ItemKey) -> int:
        return self._pushed.get(key, 0)

    def drop_all(self) -> int:
        """Barge-in: forget every buffered byte (item offsets continue). Returns bytes dropped."""
        dropped = sum(len(buffer.data) for buffer in self.buffers)
        self.buffers.clear()
        return dropped

    def clear(self) -> None:
        self.buffers.clear()
        self._pushed.clear()

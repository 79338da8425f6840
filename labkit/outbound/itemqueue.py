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
    """One item's bytes waiting to be sent, with the arrival time of each chunk.

    The bytes stay as the chunks that arrived (never copied into one growing buffer): a
    message that is exactly one whole chunk goes out without a copy, and a 20 ms frame is one
    slice of one chunk. ``size`` counts the bytes still buffered.
    """

    __slots__ = ("_arrivals", "_chunks", "_read", "content_index", "ended", "first_arrival_ms",
                 "hold_until_ms", "item_id", "key", "offset", "size")

    def __init__(self, item_id: str, content_index: int, offset: int, now: float) -> None:
        self.item_id = item_id
        self.content_index = content_index
        self.key: ItemKey = (item_id, content_index)
        self.offset = offset  # byte offset of the first buffered byte within the item
        self.size = 0  # bytes buffered
        self.ended = False
        self.first_arrival_ms = now
        self.hold_until_ms = -float("inf")  # strategies that pre-roll set it
        self._chunks: deque[bytes] = deque()  # non-empty chunks, the first read from _read
        self._arrivals: deque[float] = deque()  # arrival time of each chunk in _chunks
        self._read = 0  # bytes of _chunks[0] already taken

    @property
    def data(self) -> bytes:
        """The buffered bytes (a copy; strategies use ``size``)."""
        joined = b"".join(self._chunks)
        return joined[self._read:]

    @property
    def end_offset(self) -> int:
        """Offset just past the last byte pushed into this buffer."""
        return self.offset + self.size

    @property
    def oldest_arrival_ms(self) -> float | None:
        """Arrival time of the oldest byte still buffered."""
        return self._arrivals[0] if self.size else None

    def append(self, data: bytes, now: float) -> None:
        if data:  # an empty chunk adds no byte whose arrival could ever be the oldest
            self._chunks.append(bytes(data))
            self._arrivals.append(now)
            self.size += len(data)

    def take(self, size: int) -> tuple[int, bytes]:
        """Remove the first ``size`` bytes (at most all buffered): (their offset, the bytes)."""
        offset = self.offset
        chunks = self._chunks
        read = self._read
        if size > 0:
            first = chunks[0]
            stop = read + size
            first_size = len(first)
            if stop < first_size:  # inside the first chunk: one slice
                payload = first[read:stop]
                self._read = stop
            elif stop == first_size:  # the rest of the first chunk (whole: no copy)
                payload = first[read:]  # a bytes object sliced whole is not copied
                chunks.popleft()
                self._arrivals.popleft()
                self._read = 0
            else:
                payload = self._take_across(size)
        else:
            payload = b""
        self.offset = offset + size
        self.size -= size
        return offset, payload

    def _take_across(self, size: int) -> bytes:
        """``size`` bytes spanning several chunks (size is more than the first chunk holds)."""
        chunks, arrivals = self._chunks, self._arrivals
        parts = [chunks.popleft()[self._read:]]
        arrivals.popleft()
        need = size - len(parts[0])
        read = 0
        while need:
            chunk = chunks[0]
            if need < len(chunk):
                parts.append(chunk[:need])
                read = need
                break
            chunks.popleft()
            arrivals.popleft()
            parts.append(chunk)
            need -= len(chunk)
        self._read = read
        return b"".join(parts)


class ItemQueue:
    """Buffers in push order; remembers how many bytes each item has pushed (its next offset).

    ``_pushed`` is brought up to date when a buffer closes (ended or dropped), not on every
    push: while a buffer is open its own ``end_offset`` is its item's count, so appending a
    chunk to the open tail (once per model delta) costs no key tuple and no dict update.
    Only the tail can be open (audio of a new item ends it), so ``pushed`` looks there first.
    """

    __slots__ = ("_pushed", "buffers")

    def __init__(self) -> None:
        self.buffers: deque[ItemBuffer] = deque()
        self._pushed: dict[ItemKey, int] = {}

    @property
    def head(self) -> ItemBuffer | None:
        return self.buffers[0] if self.buffers else None

    def push(self, chunk: AudioChunk, now: float) -> tuple[ItemBuffer, bool]:
        """Append the chunk; returns its buffer and whether that buffer is new."""
        buffers = self.buffers
        tail = buffers[-1] if buffers else None
        if (tail is not None and not tail.ended and tail.item_id == chunk.item_id
                and tail.content_index == chunk.content_index):
            tail.append(chunk.data, now)
            return tail, False
        return self.open(chunk, now), True

    def open(self, chunk: AudioChunk, now: float) -> ItemBuffer:
        """A new tail buffer holding ``chunk`` (ends the open tail: the model moved on)."""
        buffers = self.buffers
        if buffers and not buffers[-1].ended:
            self._close(buffers[-1])
        offset = self._pushed.get((chunk.item_id, chunk.content_index), 0)
        buffer = ItemBuffer(chunk.item_id, chunk.content_index, offset, now)
        buffer.append(chunk.data, now)
        buffers.append(buffer)
        return buffer

    def _close(self, buffer: ItemBuffer) -> None:
        buffer.ended = True
        self._pushed[buffer.key] = buffer.offset + buffer.size

    def end(self, key: ItemKey) -> bool:
        """Mark the item's open buffer ended; False when it has none (all its bytes went out)."""
        buffers = self.buffers
        if buffers and not buffers[-1].ended and buffers[-1].key == key:  # only the tail is open
            self._close(buffers[-1])
            return True
        return False

    def pushed(self, key: ItemKey) -> int:
        buffers = self.buffers
        if buffers and not buffers[-1].ended and buffers[-1].key == key:
            return buffers[-1].end_offset
        return self._pushed.get(key, 0)

    def drop_all(self) -> int:
        """Barge-in: forget every buffered byte (item offsets continue). Returns bytes dropped."""
        buffers = self.buffers
        if buffers and not buffers[-1].ended:
            self._close(buffers[-1])
        dropped = sum(buffer.size for buffer in buffers)
        buffers.clear()
        return dropped

    def clear(self) -> None:
        self.buffers.clear()
        self._pushed.clear()

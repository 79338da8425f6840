"""The inbound buffer: caller frames become model chunks with nothing lost, nothing duplicated,
silence exactly where Twilio's timestamps have holes, and a warm-up released in one piece."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.inbound import InboundBuffer

FRAME_BYTES = 160


def frame(i: int, size: int = FRAME_BYTES) -> bytes:
    return bytes([i % 256]) * size


def run(buffer: InboundBuffer, frames: list[tuple[bytes, int]]) -> tuple[list[bytes], bytes]:
    pieces = [piece for payload, ts in frames for piece in buffer.push(payload, ts)]
    return pieces, buffer.flush()


def test_warmup_released_as_one_piece_then_chunks_of_50_ms() -> None:
    buffer = InboundBuffer()
    released = [buffer.push(frame(i), i * 20) for i in range(10)]
    # 150 ms of warm-up needs 8 frames (7 hold 140 ms).
    assert all(r == [] for r in released[:7])
    assert [len(p) for p in released[7]] == [1200]
    assert [len(p) for p in released[8]] == []
    assert [len(p) for p in released[9]] == [400]
    assert len(buffer.flush()) == 10 * FRAME_BYTES - 1600


def test_no_warmup_means_plain_chunks() -> None:
    buffer = InboundBuffer(chunk_ms=20, warmup_chunks=0)
    assert buffer.push(frame(1), 0) == [frame(1)]


def test_small_gap_is_filled_with_silence_and_large_gap_restarts() -> None:
    buffer = InboundBuffer(chunk_ms=20, warmup_chunks=0, max_gap_ms=200)
    buffer.push(frame(1), 0)
    assert buffer.push(frame(2), 60) == [b"\xff" * 160, b"\xff" * 160, frame(2)]
    assert buffer.push(frame(3), 60 + 20 + 500) == [frame(3)]
    stats = buffer.stats
    assert (stats.gaps_filled, stats.silence_bytes, stats.restarts) == (1, 320, 1)


def test_duplicates_dropped_and_overlaps_trimmed() -> None:
    buffer = InboundBuffer(chunk_ms=10, warmup_chunks=0)
    buffer.push(frame(1), 0)
    assert buffer.push(frame(1), 0) == []  # exact duplicate
    assert buffer.push(frame(2), 10) == [frame(2, 80)]  # half overlaps the first frame
    assert buffer.stats.duplicate_frames == 1
    assert buffer.stats.overlap_bytes_dropped == 160 + 80


@pytest.mark.parametrize("kwargs", [{"chunk_ms": 0}, {"warmup_chunks": -1}, {"max_gap_ms": -5}])
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="InboundBuffer"):
        InboundBuffer(**kwargs)  # type: ignore[arg-type]


frames_with_gaps = st.lists(st.tuples(st.integers(1, 400), st.integers(0, 400)), max_size=60)


@given(frames_with_gaps, st.integers(1, 100), st.integers(0, 4), st.integers(0, 300))
def test_forward_timeline_conserves_every_byte(
    spec: list[tuple[int, int]], chunk_ms: int, warmup: int, max_gap_ms: int
) -> None:
    """Output == payloads in order, exactly the gap's silence between them (none past the cap)."""
    buffer = InboundBuffer(chunk_ms=chunk_ms, warmup_chunks=warmup, max_gap_ms=max_gap_ms)
    frames, expected, t_ms = [], bytearray(), 1000
    for i, (size_ms, gap_ms) in enumerate(spec):
        if i > 0:
            t_ms += gap_ms
            if gap_ms <= max_gap_ms:
                expected += b"\xff" * (gap_ms * 8)
        payload = frame(i, size_ms * 8)
        frames.append((payload, t_ms))
        expected += payload
        t_ms += size_ms
    pieces, rest = run(buffer, frames)
    assert b"".join(pieces) + rest == bytes(expected)
    chunk = chunk_ms * 8
    body = pieces[1:] if warmup and pieces else pieces
    assert all(len(p) == chunk for p in body)
    if warmup and pieces:
        assert len(pieces[0]) == chunk * warmup


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(-60, 60)), max_size=60))
def test_any_timestamps_keep_each_timeline_slot_once(spec: list[tuple[int, int]]) -> None:
    """Duplicates and overlaps never add bytes: output length is the timeline's length."""
    buffer = InboundBuffer(chunk_ms=5, warmup_chunks=1, max_gap_ms=100)
    frames, t_ms = [], 0
    for i, (size_ms, jump_ms) in enumerate(spec):
        t_ms = max(0, t_ms + jump_ms)
        frames.append((frame(i, size_ms * 8), t_ms))
        t_ms += size_ms
    pieces, rest = run(buffer, frames)
    total = len(b"".join(pieces) + rest)
    s = buffer.stats
    assert total == s.payload_bytes + s.silence_bytes - s.overlap_bytes_dropped
    assert s.frames == len(frames)


@pytest.mark.parametrize(("options", "said"), [
    ({"chunk_ms": float("nan")}, r"chunk_ms must be a finite number of ms"),
    ({"chunk_ms": float("inf")}, r"chunk_ms must be a finite number of ms"),
    ({"chunk_ms": "50"}, r"chunk_ms must be a finite number of ms"),
    ({"warmup_chunks": 2.5}, r"warmup_chunks must be a whole number >= 0, got 2.5"),
    ({"max_gap_ms": float("inf")}, r"max_gap_ms must be a finite number >= 0, got inf"),
])  # fmt: skip
def test_inbound_buffer_refuses_settings_by_name(options: dict[str, object], said: str) -> None:
    """NaN and inf failed deep inside (int(nan), OverflowError); 2.5 warm-up chunks failed at
    the first frame."""
    with pytest.raises(ValueError, match=f"InboundBuffer: {said}"):
        InboundBuffer(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("timestamp", [0.5, -5])
def test_inbound_buffer_refuses_a_timestamp_twilio_never_sends(timestamp: float) -> None:
    with pytest.raises(ValueError, match=r"timestamp_ms must be a whole number of ms >= 0"):
        InboundBuffer().push(b"\xff" * 160, timestamp)  # type: ignore[arg-type]

"""ItemBuffer keeps an item's bytes as the chunks that arrived; whatever the chunk and take
sizes, it must hand out exactly the bytes a flat buffer would, with the right offsets and the
arrival time of the oldest byte still buffered (hypothesis, against a flat reference)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from labkit.outbound.base import AudioChunk
from labkit.outbound.itemqueue import ItemBuffer, ItemQueue

steps = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.binary(min_size=0, max_size=400)),
        st.tuples(st.just("take"), st.integers(1, 700)),
    ),
    max_size=60,
)


@given(start=st.integers(0, 10_000), steps=steps)
def test_takes_return_the_bytes_a_flat_buffer_would(
    start: int, steps: list[tuple[str, object]]
) -> None:
    buffer = ItemBuffer("item", 0, start, now=0.0)
    flat = b""  # reference: the buffered bytes
    arrivals: list[tuple[int, float]] = []  # (item offset just past a chunk, its arrival)
    offset = start
    for now, (op, arg) in enumerate(steps):
        if op == "append":
            assert isinstance(arg, bytes)
            buffer.append(arg, float(now))
            flat += arg
            if arg:
                arrivals.append((offset + len(flat), float(now)))
        else:
            assert isinstance(arg, int)
            size = min(arg, len(flat))
            if not size:
                continue
            got_offset, payload = buffer.take(size)
            assert (got_offset, payload) == (offset, flat[:size])
            assert type(payload) is bytes
            flat, offset = flat[size:], offset + size
            arrivals = [(end, t) for end, t in arrivals if end > offset]
        assert buffer.size == len(flat)
        assert buffer.data == flat
        assert buffer.offset == offset
        assert buffer.end_offset == offset + len(flat)
        assert buffer.oldest_arrival_ms == (arrivals[0][1] if flat else None)


def test_a_chunk_taken_whole_is_not_copied() -> None:
    chunk = bytes(range(200))
    buffer = ItemBuffer("item", 0, 0, now=0.0)
    buffer.append(chunk, 1.0)
    offset, payload = buffer.take(200)
    assert offset == 0
    assert payload is chunk
    assert buffer.size == 0
    assert buffer.oldest_arrival_ms is None


queue_steps = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.sampled_from(["a", "b"]), st.integers(0, 1),
                  st.integers(0, 300)),
        st.tuples(st.just("end"), st.sampled_from(["a", "b"]), st.integers(0, 1), st.just(0)),
        st.tuples(st.just("drop"), st.just(""), st.just(0), st.just(0)),
        st.tuples(st.just("send_head"), st.just(""), st.just(0), st.just(0)),
    ),
    max_size=40,
)


@given(steps=queue_steps)
def test_queue_offsets_continue_each_items_pushed_bytes(
    steps: list[tuple[str, str, int, int]],
) -> None:
    # ItemQueue counts an open buffer's bytes only when it closes: offsets must still be
    # every item's running count, through ends, new items, drops and sent heads
    queue = ItemQueue()
    pushed: dict[tuple[str, int], int] = {}
    for now, (op, item_id, index, size) in enumerate(steps):
        key = (item_id, index)
        if op == "push":
            chunk = AudioChunk(item_id, index, bytes(size))
            buffer, _ = queue.push(chunk, float(now))
            pushed[key] = pushed.get(key, 0) + size
            assert buffer.key == key and buffer.end_offset == pushed[key]
        elif op == "end":
            queue.end(key)
        elif op == "drop":
            queue.drop_all()
        elif queue.buffers:
            head = queue.buffers[0]
            head.take(head.size)
            if head.ended:
                queue.buffers.popleft()
        for buffer in queue.buffers:
            assert buffer.ended or buffer is queue.buffers[-1]
        for seen in pushed:
            assert queue.pushed(seen) == pushed[seen]

"""Bulk FIFO playout equals FIFO playout message by message, bit for bit, on random inputs."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.sim.batch_playout import play_fifo
from labkit.sim.playout import BYTES_PER_MS, FRAME_BYTES
from labkit.sim.sender import CLEAR, MARK, MEDIA

Echo = tuple[int, float, bool]


Played = tuple[list[float], list[int], list[int], list[Echo], list[tuple[float, float, int]],
               list[tuple[float, float]]]
Schedule = tuple[list[int], list[int], list[float], list[float]]


def fifo_one_by_one(
    kinds: list[int], sizes: list[int], sent_ms: list[float], arrived_ms: list[float],
    pad_to_frame: bool,
) -> Played:  # fmt: skip
    """FifoPlayout's float operations in their order, one message at a time (the reference)."""
    n = len(kinds)
    start, played, cleared = [math.nan] * n, [0] * n, [0] * n
    media_rows: list[int] = []
    pending: list[tuple[int, float]] = []
    echoes: list[Echo] = []
    last_clear, tail = -1, -math.inf
    fills: list[tuple[float, float]] = []
    for row in range(n):
        kind, now = kinds[row], arrived_ms[row]
        if kind == MEDIA:
            begin = now if now > tail else tail
            start[row], played[row] = begin, sizes[row]
            media_rows.append(row)
            tail = begin + sizes[row] / BYTES_PER_MS
            pad = (-sizes[row] % FRAME_BYTES) / BYTES_PER_MS if pad_to_frame else 0.0
            if pad:
                if tail + pad > tail:  # not lost to rounding far from zero
                    fills.append((tail, tail + pad))
                tail += pad
        elif kind == MARK:
            pending.append((row, now if now > tail else tail))
        elif kind == CLEAR:
            first = now if sent_ms[row] == now else math.nextafter(now, -math.inf)
            echoes += [(r, t, False) if t <= first else (r, now, True) for r, t in pending]
            pending = []
            for media in reversed(media_rows):
                if start[media] + played[media] / BYTES_PER_MS <= now:
                    break
                kept = min(max(int((now - start[media]) * BYTES_PER_MS), 0), played[media])
                cleared[media], played[media] = sizes[media] - kept, kept
            last_clear, tail = row, min(tail, now)
            fills = [(b, min(e, now)) for b, e in fills if b < now]
    echoes += [(r, t, False) for r, t in pending]
    segments = [(start[r], start[r] + played[r] / BYTES_PER_MS, played[r]) for r in media_rows
                if played[r] > 0 or (sizes[r] == 0 and r > last_clear)]  # fmt: skip
    return start, played, cleared, echoes, segments, fills


def assert_same_playout(kinds: list[int], sizes: list[int], sent_ms: list[float],
                        arrived_ms: list[float], pad_to_frame: bool) -> None:  # fmt: skip
    payloads = [bytes(size) for size in sizes]
    bulk = play_fifo(np.array(kinds, dtype=np.int64), np.array(sizes, dtype=np.int64),
                     np.array(sent_ms), np.array(arrived_ms), payloads, pad_to_frame)  # fmt: skip
    start, played, cleared, echoes, segments, fills = fifo_one_by_one(
        kinds, sizes, sent_ms, arrived_ms, pad_to_frame
    )
    np.testing.assert_array_equal(bulk.start_ms, np.array(start))  # NaN equals NaN here
    assert bulk.played_bytes.tolist() == played
    assert bulk.cleared_bytes.tolist() == cleared
    assert bulk.discarded_bytes.tolist() == [0] * len(kinds)
    got = list(zip(bulk.echo_rows.tolist(), bulk.echo_ms.tolist(), bulk.echo_by_clear.tolist(),
                   strict=True))  # fmt: skip
    assert got == echoes
    played_segments, played_fills = bulk.render()
    assert [(s, e, len(p)) for s, e, p in played_segments] == segments
    assert played_fills == fills


def random_schedule(rng: np.random.Generator, n: int, start_ms: float, clear_share: float,
                    ideal: bool) -> Schedule:  # fmt: skip
    kinds = rng.choice([MEDIA, MARK, CLEAR], n, p=[0.75 - clear_share, 0.25, clear_share])
    sizes = np.where(kinds == MEDIA, rng.choice([0, 80, 160, 800, 1234, 4000], n), 0)
    sizes = np.where(rng.random(n) < 0.3, rng.integers(0, 2000, n), sizes) * (kinds != CLEAR)
    gaps = np.where(rng.random(n) < 0.5, 0.0, rng.exponential(rng.choice([1.0, 20.0, 200.0]), n))
    sent = start_ms + np.cumsum(gaps)
    if rng.random() < 0.3:  # round times make ties common
        sent = np.round(sent / 10) * 10
    delays = 0.0 if ideal else rng.lognormal(math.log(40), 0.6, n)
    arrived = np.maximum.accumulate(sent + delays)
    return kinds.tolist(), sizes.tolist(), sent.tolist(), arrived.tolist()


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 400),
    start_ms=st.sampled_from([0.0, 1e-9, 0.3, 1.0, 511.99, 1023.9999999, 3e4, -50.0, -0.3,
                              2.0**48 - 3000.3, 2.0**50 + 0.25]),
    clear_share=st.sampled_from([0.0, 0.0, 0.02, 0.2]),
    ideal=st.booleans(),
    pad_to_frame=st.booleans(),
)
def test_bulk_fifo_equals_one_by_one(seed: int, n: int, start_ms: float, clear_share: float,
                                     ideal: bool, pad_to_frame: bool) -> None:  # fmt: skip
    rng = np.random.default_rng(seed)
    kinds, sizes, sent, arrived = random_schedule(rng, n, start_ms, clear_share, ideal)
    assert_same_playout(kinds, sizes, sent, arrived, pad_to_frame)


def test_busy_periods_crossing_many_powers_of_two_round_as_the_model() -> None:
    # a backlog from a fraction of a ms through 8 s: one busy period crosses 13 powers of two,
    # where adding in order and adding at once round differently
    rng = np.random.default_rng(3)
    for first_ms in (0.1, 0.3 + 1e-12, math.pi / 7, 1 / 3):
        n = 1000
        arrived = (first_ms + np.sort(rng.uniform(0, 4000, n))).tolist()
        sizes = rng.integers(1, 200, n).tolist()
        assert_same_playout([MEDIA] * n, sizes, arrived, arrived, False)
        assert_same_playout([MEDIA] * n, sizes, arrived, arrived, True)


def test_arrivals_on_the_queue_end_and_near_it() -> None:
    # messages arriving exactly when, or an ulp before or after, the queue runs dry
    kinds, sizes, arrived = [], [], []
    t = 1000.0 / 3
    for k in range(300):
        kinds.append(MEDIA)
        sizes.append(160)
        arrived.append(t)
        t += 20.0
        t = [t, math.nextafter(t, 0), math.nextafter(t, math.inf)][k % 3]
    assert_same_playout(kinds, sizes, arrived, arrived, False)


def test_a_message_arriving_on_a_queue_end_the_closed_form_misses() -> None:
    # the closed form puts the end of this backlog an ulp early: the message arriving on the
    # true end must still queue behind it (the first guess of idle rows gets corrected)
    rng = np.random.default_rng(0)
    early: list[int] = []
    while not early:  # a backlog from below 1 ms whose closed-form end is early (1 in 5 is)
        first_ms, sizes = rng.uniform(0.01, 1.0), rng.integers(1, 400, 300)
        steps = sizes / BYTES_PER_MS
        in_order = np.add.accumulate(np.concatenate(([first_ms], steps)))[1:]
        early = np.flatnonzero(in_order > first_ms + np.cumsum(steps)).tolist()
    late = early[0]
    arrived = [first_ms] * (late + 1) + [float(in_order[late])] * (len(sizes) - late - 1)
    assert_same_playout([MEDIA] * len(sizes), sizes.tolist(), arrived, arrived, False)

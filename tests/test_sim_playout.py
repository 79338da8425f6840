"""Playout models: the incremental models agree with the closed forms of DOMAIN.md section 4."""

from __future__ import annotations

import itertools
import math
import re
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.sim.playout import PLAYOUT_NAMES, FixedPlayout, make_playout

BYTES_PER_MS = 8
sizes_st = st.lists(st.integers(1, 2000), min_size=1, max_size=40)


def arrivals_for(sizes: list[int], gaps: list[float]) -> np.ndarray:
    return np.cumsum(np.asarray(gaps[: len(sizes)], dtype=np.float64))


@settings(max_examples=60, deadline=None)
@given(sizes=sizes_st, gaps=st.lists(st.floats(0, 300), min_size=40, max_size=40))
def test_fifo_incremental_matches_vectorised_recursion(sizes: list[int], gaps: list[float]) -> None:
    arrivals = arrivals_for(sizes, gaps)
    durations = np.asarray(sizes, dtype=np.float64) / BYTES_PER_MS
    cumulative_before = np.r_[0.0, np.cumsum(durations)[:-1]]
    expected = cumulative_before + np.maximum.accumulate(arrivals - cumulative_before)
    model = make_playout("fifo")
    for a, n in zip(arrivals, sizes, strict=True):
        model.advance(a)
        model.receive_media(b"\x00" * n, a)
    starts = np.array([p.start_ms for p in model.plays])
    np.testing.assert_allclose(starts, expected, atol=1e-9)
    assert [seg[2] for seg in model.segments] == [b"\x00" * n for n in sizes]


def test_mark_echo_at_once_when_empty_and_after_audio_otherwise() -> None:
    model = make_playout("fifo")
    model.receive_mark("early", 5.0)
    assert model.advance(5.0) == [("early", 5.0)]
    model.receive_media(b"\x01" * 160, 10.0)  # plays 10..30
    model.receive_mark("after", 12.0)
    assert model.next_event_ms() == 30.0
    assert model.advance(29.9) == []
    assert model.advance(30.0) == [("after", 30.0)]
    assert model.next_event_ms() is None


def test_clear_echoes_pending_marks_and_drops_unplayed_audio() -> None:
    model = make_playout("fifo")
    model.receive_media(b"\x01" * 800, 0.0)  # 0..100 ms
    model.receive_mark("m1", 0.0)
    model.receive_media(b"\x02" * 800, 0.0)  # 100..200 ms
    model.receive_mark("m2", 0.0)
    assert model.advance(40.0) == []
    assert model.receive_clear(40.0) == ["m1", "m2"]
    assert model.played_bytes == 40 * BYTES_PER_MS
    assert model.cleared_bytes == 1600 - 40 * BYTES_PER_MS
    assert model.segments == [(0.0, 40.0, b"\x01" * 320)]
    model.receive_media(b"\x03" * 80, 50.0)  # queue empty after the clear: plays at once
    assert model.plays[-1].start_ms == 50.0


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(PLAYOUT_NAMES),
    sizes=sizes_st,
    gaps=st.lists(st.floats(0, 200), min_size=40, max_size=40),
    clear_at=st.lists(st.integers(0, 39), max_size=3),
)
def test_played_cleared_discarded_add_up_to_received(
    name: str, sizes: list[int], gaps: list[float], clear_at: list[int]
) -> None:
    model = make_playout(name)
    arrivals = arrivals_for(sizes, gaps)
    echoed: list[str] = []
    for i, (a, n) in enumerate(zip(arrivals, sizes, strict=True)):
        echoed += [m for m, _ in model.advance(a)]
        model.receive_media(b"\x00" * n, a)
        model.receive_mark(f"m{i}", a)
        if i in clear_at:
            echoed += model.receive_clear(a)
    echoed += [m for m, _ in model.advance(math.inf)]
    assert model.played_bytes + model.cleared_bytes + model.discarded_bytes == sum(sizes)
    assert sorted(echoed) == sorted(f"m{i}" for i in range(len(sizes)))  # every mark, once
    played = sum(len(seg[2]) for seg in model.segments)
    assert played == model.played_bytes
    ends = [seg[1] for seg in model.segments]
    starts = [seg[0] for seg in model.segments]
    assert all(s >= e - 1e-9 for s, e in zip(starts[1:], ends[:-1], strict=False))  # no overlap


def late_count(delay_ms: float, arrivals: np.ndarray, sizes: list[int]) -> int:
    model = FixedPlayout(delay_ms=delay_ms, talkspurt_gap_ms=1e9)  # one talkspurt
    for a, n in zip(arrivals, sizes, strict=True):
        model.receive_media(b"\x00" * n, float(a))
    return sum(1 for p in model.plays if p.discarded_bytes)


@settings(max_examples=60, deadline=None)
@given(sizes=sizes_st, gaps=st.lists(st.floats(0, 400), min_size=40, max_size=40))
def test_fixed_late_count_falls_with_delay_and_vanishes_at_oracle(
    sizes: list[int], gaps: list[float]
) -> None:
    arrivals = arrivals_for(sizes, gaps)
    offsets = np.r_[0.0, np.cumsum(sizes)[:-1]] / BYTES_PER_MS
    d_star = float(np.max(arrivals - offsets) - (arrivals[0] - offsets[0]))
    delays = sorted({0.0, d_star / 3, d_star / 2, d_star, d_star + 50.0})
    counts = [late_count(d, arrivals, sizes) for d in delays]
    assert all(b <= a for a, b in itertools.pairwise(counts))
    assert late_count(d_star, arrivals, sizes) == 0
    if d_star > 1e-6:
        assert late_count(d_star - 1e-3, arrivals, sizes) > 0


def test_prefetch_waits_for_depth_then_plays_everything_queued() -> None:
    model = make_playout("prefetch", depth_ms=60.0)
    model.receive_media(b"\x00" * 160, 0.0)  # 20 ms queued: wait
    model.receive_mark("m", 0.0)
    assert model.plays[0].start_ms != model.plays[0].start_ms  # NaN: not yet scheduled
    model.receive_media(b"\x00" * 160, 10.0)
    model.receive_media(b"\x00" * 160, 20.0)  # 60 ms queued: start now
    assert [p.start_ms for p in model.plays] == [20.0, 40.0, 60.0]
    assert model.advance(40.0) == [("m", 40.0)]


def test_prefetch_is_not_told_where_an_answer_ends_so_a_short_tail_waits_max_wait() -> None:
    model = make_playout("prefetch", depth_ms=500.0, max_wait_ms=120.0)
    model.receive_media(b"\x00" * 160, 0.0)
    assert math.isnan(model.plays[0].start_ms)
    assert model.next_event_ms() == 120.0
    model.advance(120.0)
    assert model.plays[0].start_ms == 120.0


def test_pad_every_message_inserts_silence_to_whole_frames_as_fills() -> None:
    model = make_playout("pad_every_message")
    model.receive_media(b"\x00" * 100, 0.0)  # 12.5 ms of audio + 7.5 ms of padding
    model.receive_media(b"\x00" * 160, 0.0)
    assert model.plays[1].start_ms == 20.0
    assert model.fills == [(12.5, 20.0)]


def test_frame_clock_plays_full_frames_on_ticks_and_pads_only_when_dry() -> None:
    model = make_playout("frame_clock")
    model.receive_media(b"\x01" * 40, 3.0)  # a tiny delta: waits for the tick at 20
    model.receive_media(b"\x02" * 200, 10.0)  # 240 queued by the tick: a full frame plays
    model.advance(20.0)
    assert model.segments == [(20.0, 40.0, b"\x01" * 40 + b"\x02" * 120)]
    model.advance(40.0)  # 80 bytes left, nothing more: the queue is dry, pad the frame
    assert model.segments[-1] == (20.0, 50.0, b"\x01" * 40 + b"\x02" * 200)
    assert model.fills == [(50.0, 60.0)]
    assert [p.start_ms for p in model.plays] == [20.0, 25.0]


@settings(max_examples=60, deadline=None)
@given(sizes=sizes_st, gaps=st.lists(st.floats(0, 300), min_size=40, max_size=40),
       peeks=st.lists(st.booleans(), min_size=40, max_size=40))  # fmt: skip
def test_frame_clock_segments_hold_the_bytes_played_in_order_however_often_read(
    sizes: list[int], gaps: list[float], peeks: list[bool]
) -> None:
    model = make_playout("frame_clock")
    sent = b""
    for index, (size, now) in enumerate(zip(sizes, arrivals_for(sizes, gaps), strict=False)):
        payload = bytes((index + k) % 251 for k in range(size))
        model.receive_media(payload, float(now))
        sent += payload
        if peeks[index]:  # reading mid-call must not change what is read at the end
            assert b"".join(seg[2] for seg in model.segments) == sent[: model.played_bytes]
    model.advance(math.inf)
    segments = model.segments
    assert b"".join(seg[2] for seg in segments) == sent
    assert all(len(data) == round((end - start) * BYTES_PER_MS) for start, end, data in segments)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(segments))  # touching ones are joined


def test_frame_clock_skip_holds_a_partial_frame_one_tick_then_pads() -> None:
    model = make_playout("frame_clock_skip")
    model.receive_media(b"\x01" * 80, 1.0)
    model.advance(20.0)  # 80 < 160: the tick is skipped, nothing is sent
    assert model.segments == []
    model.receive_media(b"\x02" * 80, 25.0)
    model.advance(40.0)  # a full frame of both
    assert model.segments == [(40.0, 60.0, b"\x01" * 80 + b"\x02" * 80)]
    model.receive_media(b"\x03" * 40, 61.0)
    model.advance(100.0)  # skipped at 80, padded at 100
    assert model.segments[-1] == (100.0, 105.0, b"\x03" * 40)
    assert model.fills == [(105.0, 120.0)]


def test_frame_clock_skip_splits_a_message_into_pieces() -> None:
    model = make_playout("frame_clock_skip", max_skipped_ticks=1)
    model.receive_media(b"\x01" * 400, 0.0)  # frames at 0 and 20; 80 bytes left at 40
    model.advance(40.0)  # skipped
    model.receive_media(b"\x02" * 160, 50.0)
    model.advance(60.0)  # 80 of the first message + 80 of the second
    first = model.plays[0]
    assert first.pieces == [(0.0, 320), (60.0, 80)]
    assert first.end_ms == 70.0 and first.played_bytes == 400


def test_frame_clock_marks_echo_when_their_bytes_have_played_and_at_once_on_clear() -> None:
    model = make_playout("frame_clock")
    model.receive_mark("empty", 5.0)
    assert model.advance(5.0) == [("empty", 5.0)]
    model.receive_media(b"\x01" * 200, 5.0)
    model.receive_mark("after", 6.0)
    assert model.advance(30.0) == []  # 160 of 200 played by 40
    assert model.advance(45.0) == [("after", 45.0)]  # tick at 40: 40 bytes (5 ms)
    model.receive_media(b"\x01" * 800, 50.0)
    model.receive_mark("cleared", 50.0)
    assert model.receive_clear(70.0) == ["cleared"]
    assert model.cleared_bytes == 800 - 160  # the frame playing at 60 finishes, the rest drops


def test_frame_clock_phase_shifts_the_ticks() -> None:
    model = make_playout("frame_clock", phase_ms=7.0)
    model.receive_media(b"\x01" * 160, 1.0)
    model.advance(7.0)
    assert model.plays[0].start_ms == 7.0


def test_unknown_playout_or_parameter_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown playout 'twilio'"):
        make_playout("twilio")
    with pytest.raises(ValueError, match="depth"):
        make_playout("fifo", depth=3)


@pytest.mark.parametrize(("name", "params", "said"), [
    ("prefetch", {"depth_ms": math.nan}, "depth_ms must be a finite number >= 0"),
    ("prefetch", {"max_wait_ms": math.inf}, "max_wait_ms one > 0, got depth_ms=60.0, "
                                            "max_wait_ms=inf"),
    ("fixed", {"delay_ms": math.nan}, "delay_ms must be a finite number >= 0"),
    ("fixed", {"talkspurt_gap_ms": math.nan}, "talkspurt_gap_ms one > 0, got 100.0 and nan"),
    ("frame_clock_skip", {"max_skipped_ticks": 1.5}, "a whole max_skipped_ticks >= 0"),
    ("frame_clock", {"max_skipped_ticks": math.nan}, "a whole max_skipped_ticks >= 0"),
    ("frame_clock", {"phase_ms": math.nan}, "0 <= phase_ms < 20.0"),
])  # fmt: skip
def test_a_parameter_that_is_not_a_finite_number_in_range_is_refused(
    name: str, params: dict[str, float], said: str
) -> None:
    """NaN compares false with everything, so "refuse if below 0" let it through into the
    model's schedule; a fraction of a tick was silently truncated."""
    with pytest.raises(ValueError, match=re.escape(said)):
        make_playout(name, **params)
    assert make_playout("frame_clock_skip", max_skipped_ticks=2.0).max_skipped_ticks == 2


@settings(max_examples=80, deadline=None)
@given(
    name=st.sampled_from(["frame_clock", "frame_clock_skip"]),
    sizes=sizes_st,
    gaps=st.lists(st.floats(0, 120), min_size=40, max_size=40),
    clear_at=st.lists(st.integers(0, 39), max_size=2),
    phase=st.sampled_from([0.0, 7.3]),
)
def test_frame_clock_plays_runs_of_full_frames_as_frame_by_frame(
    name: str, sizes: list[int], gaps: list[float], clear_at: list[int], phase: float
) -> None:
    def run(one_frame_at_a_time: bool) -> tuple[list[object], ...]:
        model = make_playout(name, phase_ms=phase)
        if one_frame_at_a_time:  # the clock's rule taken literally: one tick per step
            whole = model._ticks_before  # type: ignore[attr-defined]
            model._ticks_before = lambda *args: min(1, whole(*args))  # type: ignore[attr-defined]
        echoes: list[object] = []
        for i, (a, n) in enumerate(zip(arrivals_for(sizes, gaps), sizes, strict=True)):
            echoes += model.advance(float(a))
            model.receive_media(b"\x00" * n, float(a))
            model.receive_mark(f"m{i}", float(a))
            if i in clear_at:
                echoes += [(n, "cleared") for n in model.receive_clear(float(a))]
        echoes += model.advance(math.inf)
        plays = [(p.played_bytes, p.cleared_bytes, p.pieces) for p in model.plays]
        segments = [(round(s, 6), round(e, 6), len(b)) for s, e, b in model.segments]
        fills = [(round(s, 6), round(e, 6)) for s, e in model.fills]
        return plays, segments, fills, [(n, round(t, 6) if isinstance(t, float) else t)
                                        for n, t in echoes]  # fmt: skip

    blocks, frames = run(False), run(True)
    assert blocks[0] == frames[0] or _close_plays(blocks[0], frames[0])
    assert blocks[1:] == frames[1:]


def _close_plays(a: list[object], b: list[object]) -> bool:
    """Plays equal but for the last bits of piece start times (a block adds 20 k to one tick's
    time where a frame takes its own tick's)."""
    for (pa, ca, xa), (pb, cb, xb) in zip(a, b, strict=True):  # type: ignore[misc]
        if (pa, ca) != (pb, cb) or (xa is None) != (xb is None):
            return False
        if xa is not None and not all(
            abs(sa - sb) < 1e-6 and na == nb for (sa, na), (sb, nb) in zip(xa, xb, strict=True)
        ):
            return False
    return True


@pytest.mark.parametrize("name", ["frame_clock", "frame_clock_skip"])
def test_a_frame_clock_plays_audio_queued_after_the_last_mark(name: str) -> None:
    """A call may end with audio after its last mark (an answer cut off before its audio_done,
    marks thinned out). The model's ticks run only when a driver calls it, so it must name
    a time to be called while audio is queued, or that audio never plays."""
    model = make_playout(name)
    model.receive_media(b"\x01" * 200, 0.0)  # a frame at 0, 40 bytes for the tick at 20 (or 40)
    due = model.next_event_ms()
    assert due == (25.0 if name == "frame_clock" else 45.0)
    assert model.advance(due) == []
    assert model.played_bytes == 200 and model.next_event_ms() is None
    assert b"".join(segment[2] for segment in model.segments) == b"\x01" * 200


def test_a_partial_frame_waits_out_a_huge_max_skipped_ticks_in_one_step() -> None:
    """Skipped ticks passed one Python step each: waiting out 10**12 of them never ended."""
    model = make_playout("frame_clock_skip", max_skipped_ticks=10**12)
    model.receive_media(b"\x01" * 80, 0.0)
    outcome: list[float] = []
    worker = threading.Thread(target=lambda: outcome.append(_play_out(model)), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the skipped ticks are still being stepped through"
    assert outcome == [10**12 * 20.0]  # the partial frame plays at the tick after its waits
    assert model.fills == [(10**12 * 20.0 + 10.0, 10**12 * 20.0 + 20.0)]


def _play_out(model: object) -> float:
    model.advance(math.inf)  # type: ignore[attr-defined]
    return float(model.plays[0].start_ms)  # type: ignore[attr-defined]


def test_fifo_takes_no_parameter_so_a_string_cannot_make_it_pad() -> None:
    """``playout_params={"pad_to_frame": "no"}`` turned fifo into pad_every_message (a truthy
    string): 22 s of padding concealed on a trace fifo plays clean."""
    for name in ("fifo", "pad_every_message"):
        with pytest.raises(ValueError, match=f"playout '{name}' takes no parameter 'pad_to_frame'"):
            make_playout(name, pad_to_frame="no")

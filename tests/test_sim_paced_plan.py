"""paced's flat plan (labkit/sim/paced_plan.py) sends exactly what the strategy object sends."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.outbound import make_strategy
from labkit.sim.links import make_link
from labkit.sim.paced_plan import PacedPlan, plannable
from labkit.sim.sender import ItemSlices, SentMessages, send_all
from labkit.sim.simulator import PreparedTrace, prepare
from labkit.traces import Trace, audio_event, item_event, make_header, read, shipped

COLUMNS = ("kind", "item_id", "content_index", "offset", "size", "generation", "sent_ms", "name",
           "payloads")  # fmt: skip

gap_st = st.one_of(st.sampled_from([0.0, 5.0, 20.0, 100.0]), st.floats(0, 150))
size_st = st.one_of(st.sampled_from([0, 1, 160, 320, 800]), st.integers(0, 2000))
# (item index, gap, size) deltas, then how the item ends; items may interleave and repeat
event_st = st.one_of(
    st.tuples(st.just("audio"), st.integers(0, 3), gap_st, size_st),
    st.tuples(
        st.sampled_from(["audio_done", "audio_interrupted"]), st.integers(0, 3), gap_st, st.just(0)
    ),
)


def make_trace(events: list[tuple[str, int, float, int]]) -> Trace:
    out, t = [], 0.0
    for kind, item, gap, size in events:
        t += gap
        if kind == "audio":
            out.append(audio_event(t, "resp", f"item{item}", 0, bytes([item + 1]) * size))
        else:
            out.append(item_event(kind, t, f"item{item}", 0))
    return Trace(make_header("synthetic", "test"), out)


def by_strategy_object(trace: PreparedTrace, **options: object) -> SentMessages:
    # online: the sender drives the strategy object itself (the plan applies only offline)
    return send_all(trace, make_strategy("paced", **options), make_link("ideal"), online=True)  # type: ignore[arg-type]


def by_plan(trace: PreparedTrace, **options: object) -> SentMessages:
    strategy = make_strategy("paced", **options)  # type: ignore[arg-type]
    assert plannable(strategy)
    return send_all(trace, strategy, make_link("ideal"), online=False)


def plain(column: Sequence[object] | np.ndarray) -> list[object]:
    """A column as a list of Python values (the plan gives numpy arrays, the sender lists)."""
    values: list[object] = column.tolist() if isinstance(column, np.ndarray) else list(column)
    return values


def assert_same_messages(plan: SentMessages, real: SentMessages) -> None:
    for column in COLUMNS:
        planned, sent = plain(getattr(plan, column)), plain(getattr(real, column))
        assert planned == sent, column
        assert [type(value) for value in planned] == [type(value) for value in sent], column
    assert len(plan.payloads) == len(real.payloads)


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(event_st, min_size=1, max_size=40),
    threshold_ms=st.sampled_from([0.0, 10.0, 20.0, 60.0, 137.5, 200.0]),
    frame_ms=st.sampled_from([20.0, 10.0, 60.0, 0.125]),
    mark_every_ms=st.sampled_from([None, 20.0, 100.0, 250.0]),
    align_frames=st.booleans(),
)
def test_the_plan_sends_what_the_strategy_sends(
    events: list[tuple[str, int, float, int]], threshold_ms: float, frame_ms: float,
    mark_every_ms: float | None, align_frames: bool,
) -> None:  # fmt: skip
    trace = prepare(make_trace(events))
    options = dict(threshold_ms=threshold_ms, frame_ms=frame_ms, mark_every_ms=mark_every_ms,
                   align_frames=align_frames)  # fmt: skip
    assert_same_messages(by_plan(trace, **options), by_strategy_object(trace, **options))


@pytest.mark.parametrize("path", shipped(), ids=lambda path: path.name)
def test_the_plan_sends_what_the_strategy_sends_on_shipped_traces(path: object) -> None:
    trace = prepare(read(path))  # type: ignore[arg-type]
    for lead_ms in (0.0, 20.0, 60.0, 200.0):
        assert_same_messages(by_plan(trace, threshold_ms=lead_ms),
                             by_strategy_object(trace, threshold_ms=lead_ms))  # fmt: skip


# Streamed items: deltas at a steady cadence (now and then a pause or a burst), so that most
# frames go out in long runs of timers with trace events inside them, many of them exactly at
# a frame's deadline (round cadences and sizes) and some just off it
cadence_st = st.sampled_from([5.0, 10.0, 20.0, 40.0, 60.0, 20.000000001, 33.3, 0.1])
stream_st = st.lists(
    st.tuples(
        cadence_st,
        st.sampled_from([160, 320, 800, 1600, 37, 999]),  # usual delta size
        st.integers(1, 120),  # deltas
        st.sampled_from(["audio_done", "audio_interrupted"]),
        st.sampled_from([0.0, 20.0, 100.0, 2500.0]),  # pause after the item
    ),
    min_size=1,
    max_size=3,
)


def make_stream(items: list[tuple[float, int, int, str, float]], start_ms: float,
                irregular: int) -> Trace:  # fmt: skip
    """Items streamed at their cadence; every ``irregular``-th delta comes late and short."""
    out, t = [], start_ms
    for item, (cadence_ms, size, deltas, ending, pause_ms) in enumerate(items):
        for k in range(deltas):
            late = k % irregular == irregular - 1
            t += cadence_ms * (7.5 if late else 1.0)
            data = bytes([item + 1]) * (size // 3 if late else size)
            out.append(audio_event(t, "resp", f"item{item}", 0, data))
        out.append(item_event(ending, t, f"item{item}", 0))
        t += pause_ms
    return Trace(make_header("synthetic", "test"), out)


@settings(max_examples=150, deadline=None)
@given(
    items=stream_st,
    start_ms=st.sampled_from([0.0, 3.7, 123456.789, 2.0**40]),  # the last: no closed form
    irregular=st.integers(2, 50),
    threshold_ms=st.sampled_from([0.0, 20.0, 60.0, 137.5, 1000.0]),
    frame_ms=st.sampled_from([20.0, 10.0, 7.5, 0.125]),
    mark_every_ms=st.sampled_from([None, 20.0, 33.3, 100.0, 0.1]),
)
def test_the_plan_sends_what_the_strategy_sends_on_streamed_items(
    items: list[tuple[float, int, int, str, float]], start_ms: float, irregular: int,
    threshold_ms: float, frame_ms: float, mark_every_ms: float | None,
) -> None:  # fmt: skip
    trace = prepare(make_stream(items, start_ms, irregular))
    options = dict(threshold_ms=threshold_ms, frame_ms=frame_ms, mark_every_ms=mark_every_ms)
    assert_same_messages(by_plan(trace, **options), by_strategy_object(trace, **options))


def test_most_frames_of_a_streamed_call_go_out_in_runs() -> None:
    """The closed form is the plan's hot path: on the longest shipped trace it sends most
    frames (a regression to one service call per frame would still be correct, but slow)."""
    trace = prepare(max((read(path) for path in shipped()), key=lambda trace: trace.audio_ms))
    plan = PacedPlan(make_strategy("paced", 60.0))  # type: ignore[arg-type]
    columns = plan.run(trace)
    frames_in_runs = sum(run[1] for run in plan.runs)
    assert frames_in_runs > 0.9 * int(np.count_nonzero(columns.kind == 0))
    assert columns.sent_ms.dtype == np.float64 and columns.item_id.dtype == object


def test_payloads_are_cut_only_when_read() -> None:
    events = [("audio", 0, 0.0, 800), ("audio", 1, 5.0, 320), ("audio_done", 0, 0.0, 0),
              ("audio_done", 1, 90.0, 0)]  # fmt: skip
    trace = prepare(make_trace(events))
    sent = by_plan(trace, threshold_ms=20.0)
    payloads = sent.payloads
    assert isinstance(payloads, ItemSlices) and payloads._cut is None
    assert payloads[0] == trace.item_audio[("item0", 0)][:160]
    assert payloads[-1] == b""  # the last item's final mark
    assert payloads[1:3] == list(payloads)[1:3]
    assert list(payloads) == by_strategy_object(trace, threshold_ms=20.0).payloads


def test_only_a_fresh_paced_strategy_is_planned() -> None:
    used = make_strategy("paced", 20.0)
    used.interrupt(0.0)
    assert not plannable(used)
    assert not plannable(make_strategy("rechunk", 20.0))

    class Custom(type(make_strategy("paced", 20.0))):  # type: ignore[misc]
        pass

    assert not plannable(Custom(20.0))

"""paced's flat plan (labkit/sim/paced_plan.py) sends exactly what the strategy object sends."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.outbound import make_strategy
from labkit.sim.links import make_link
from labkit.sim.paced_plan import plannable
from labkit.sim.sender import SentMessages, send_all
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


def assert_same_messages(plan: SentMessages, real: SentMessages) -> None:
    for column in COLUMNS:
        assert getattr(plan, column) == getattr(real, column), column
    assert all(type(payload) is bytes for payload in plan.payloads)


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


def test_only_a_fresh_paced_strategy_is_planned() -> None:
    used = make_strategy("paced", 20.0)
    used.interrupt(0.0)
    assert not plannable(used)
    assert not plannable(make_strategy("rechunk", 20.0))

    class Custom(type(make_strategy("paced", 20.0))):  # type: ignore[misc]
        pass

    assert not plannable(Custom(20.0))

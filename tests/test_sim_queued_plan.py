"""rechunk's and preroll's plans (labkit/sim/queued_plan.py) send what the strategy objects send."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sim_paced_plan import assert_same_messages, event_st, make_trace

from labkit.outbound import AudioChunk, make_strategy
from labkit.sim import fastpath, queued_plan
from labkit.sim.links import make_link
from labkit.sim.sender import ItemSlices, SentMessages, send_all
from labkit.sim.simulator import PreparedTrace, prepare
from labkit.traces import read, shipped

PLANNED = ("rechunk", "preroll")


def by_strategy_object(trace: PreparedTrace, name: str, **options: object) -> SentMessages:
    # online: the sender drives the strategy object itself (the plan applies only offline)
    strategy = make_strategy(name, **options)  # type: ignore[arg-type]
    return send_all(trace, strategy, make_link("ideal"), online=True)


def by_plan(trace: PreparedTrace, name: str, **options: object) -> SentMessages:
    strategy = make_strategy(name, **options)  # type: ignore[arg-type]
    assert queued_plan.plannable(strategy)
    sent = fastpath.send(trace, strategy, make_link("ideal"))
    assert isinstance(sent.payloads, ItemSlices)  # the plan's road, not the sender's
    return sent


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(event_st, min_size=1, max_size=40),
    name=st.sampled_from(PLANNED),
    threshold_ms=st.sampled_from([0.0, 10.0, 20.0, 60.0, 137.5, 200.0]),
    flush_interval_ms=st.sampled_from([0.0, 20.0, 40.0, 1000.0]),
    mark_every_ms=st.sampled_from([None, 20.0, 100.0, 250.0]),
    align_frames=st.booleans(),
    honor_generations=st.booleans(),
)
def test_the_plan_sends_what_the_strategy_sends(
    events: list[tuple[str, int, float, int]], name: str, threshold_ms: float,
    flush_interval_ms: float, mark_every_ms: float | None, align_frames: bool,
    honor_generations: bool,
) -> None:  # fmt: skip
    trace = prepare(make_trace(events))
    options: dict[str, object] = dict(threshold_ms=threshold_ms, mark_every_ms=mark_every_ms,
                                      align_frames=align_frames,
                                      honor_generations=honor_generations)  # fmt: skip
    if name == "rechunk":
        options["flush_interval_ms"] = flush_interval_ms
    assert_same_messages(by_plan(trace, name, **options),
                         by_strategy_object(trace, name, **options))  # fmt: skip


@pytest.mark.parametrize("path", shipped(), ids=lambda path: path.name)
def test_the_plan_sends_what_the_strategy_sends_on_shipped_traces(path: object) -> None:
    trace = prepare(read(path))  # type: ignore[arg-type]
    for name in PLANNED:
        for threshold_ms in (0.0, 20.0, 60.0, 200.0):
            assert_same_messages(by_plan(trace, name, threshold_ms=threshold_ms),
                                 by_strategy_object(trace, name, threshold_ms=threshold_ms))


def test_used_strategies_subclasses_and_late_timers_drive_the_object() -> None:
    trace = prepare(read(shipped("barge_in")))
    used = make_strategy("rechunk", 50.0)
    used.push(AudioChunk("item", 0, b"\x7f" * 80), 0.0)
    assert not queued_plan.plannable(used)
    assert not queued_plan.plannable(make_strategy("adaptive", 50.0))  # its own plan
    assert not queued_plan.plannable(make_strategy("forward", 50.0))

    class Tweaked(type(make_strategy("preroll", 50.0))):  # type: ignore[misc]
        pass

    assert not queued_plan.plannable(Tweaked(50.0))
    late = fastpath.send(trace, make_strategy("preroll", 50.0),
                         make_link("ideal", 0, lateness_ms=2.0))
    assert not isinstance(late.payloads, ItemSlices)

"""adaptive's plan (labkit/sim/adaptive_plan.py) gives the event loop's run, bit for bit."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sim_fastpath import assert_same_run
from test_sim_paced_plan import make_trace

from labkit.outbound import make_strategy
from labkit.outbound.adaptive import AdaptiveStrategy
from labkit.sim import LINK_NAMES, adaptive_plan, simulate
from labkit.sim.links import make_link
from labkit.sim.playout import make_playout
from labkit.sim.simulator import PreparedTrace, prepare, simulate_event_driven
from labkit.traces import Trace, audio_event, item_event, make_header, read, shipped

FIFO_PLAYOUTS = ("fifo", "frame_padding")

gap_st = st.one_of(st.sampled_from([0.0, 10.0, 20.0, 100.0, 400.0]), st.floats(0, 300))
size_st = st.one_of(st.sampled_from([0, 1, 160, 320, 800]), st.integers(0, 2000))
# (item index, gap, size) deltas and item ends; items may interleave, repeat and be interrupted
event_st = st.one_of(
    st.tuples(st.just("audio"), st.integers(0, 5), gap_st, size_st),
    st.tuples(st.just("audio_done"), st.integers(0, 5), gap_st, st.just(0)),
    st.tuples(st.just("audio_interrupted"), st.integers(0, 5), gap_st, st.just(0)),
)


DELTA_GAPS_MS = (10.0, 80.0, 30.0, 120.0, 45.0, 5.0, 95.0)  # around 50 ms of audio per delta


def conversation(turns: int, delta_bytes: int, pause_ms: float) -> Trace:
    """Items one after another (each with its audio_done), as a model answers turn by turn;
    each turn's deltas come at irregular gaps, so each is late by a different amount."""
    out, t = [], 0.0
    for turn in range(turns):
        for delta in range(12):
            out.append(audio_event(t, f"r{turn}", f"item{turn}", 0, b"\x7f" * delta_bytes))
            t += DELTA_GAPS_MS[(turn + delta * turn) % len(DELTA_GAPS_MS)]
        out.append(item_event("audio_done", t, f"item{turn}", 0))
        t += pause_ms
    return Trace(make_header("synthetic", "test"), out)


def assert_plan_equals_event_loop(trace: PreparedTrace, threshold: float, link: str,
                                  playout: str, seed: int, params: dict[str, float],
                                  **options: Any) -> AdaptiveStrategy:  # fmt: skip
    planned = make_strategy("adaptive", threshold, **options)
    assert isinstance(planned, AdaptiveStrategy)
    assert adaptive_plan.applies(trace, planned, make_link(link, seed, **params),
                                 make_playout(playout))  # fmt: skip
    args = (trace, planned, threshold, link, playout, seed, params)
    assert_same_run(simulate(*args),
                    simulate_event_driven(trace, "adaptive", threshold, link, playout, seed,
                                          params, **options))  # fmt: skip
    return planned


@settings(max_examples=250, deadline=None)
@given(
    events=st.lists(event_st, min_size=1, max_size=40),
    threshold=st.sampled_from([0.0, 20.0, 60.0, 150.0]),
    link=st.sampled_from(LINK_NAMES),
    playout=st.sampled_from(FIFO_PLAYOUTS),
    seed=st.integers(0, 50),
    per_message=st.sampled_from([0.0, 0.2]),
    mark_every=st.sampled_from([None, 40.0, 100.0]),
    honor=st.booleans(),
    align=st.booleans(),
    history=st.sampled_from([1, 3, 64]),
    percentile=st.sampled_from([50.0, 95.0, 100.0]),
    floor=st.sampled_from([0.0, 20.0]),
)
def test_plan_equals_event_loop_on_random_traces(
    events: list[tuple[str, int, float, int]], threshold: float, link: str, playout: str,
    seed: int, per_message: float, mark_every: float | None, honor: bool, align: bool,
    history: int, percentile: float, floor: float,
) -> None:  # fmt: skip
    assert_plan_equals_event_loop(
        prepare(make_trace(events)), threshold, link, playout, seed,
        {"per_message_ms": per_message}, mark_every_ms=mark_every, honor_generations=honor,
        align_frames=align, history=history, percentile=percentile, floor_ms=floor,
    )  # fmt: skip


@pytest.mark.parametrize("link", ["jitter", "correlated", "stalls"])
def test_plan_equals_event_loop_on_turns_that_teach_the_hold(link: str) -> None:
    # twelve turns with jittery deltas: the learner's holds change from turn to turn, so a
    # sample taken on different echoes, or an echo handed over late, would show
    trace = prepare(conversation(12, 400, 700.0))
    for seed in range(6):
        planned = assert_plan_equals_event_loop(trace, 20.0, link, "fifo", seed, {})
        assert len(planned.samples_ms) >= 10  # the learner got the echoes of nearly every turn
        assert len(set(planned.samples_ms)) > 1


def test_plan_equals_event_loop_on_shipped_traces() -> None:
    for name in ("barge_in", "multi_turn", "long_conversation"):
        trace = prepare(read(shipped(name)))
        for playout in FIFO_PLAYOUTS:
            for threshold in (20.0, 100.0):
                assert_plan_equals_event_loop(trace, threshold, "jitter", playout, 3, {})


def test_other_models_lateness_and_used_strategies_take_the_event_loop() -> None:
    trace = prepare(read(shipped("barge_in")))
    fresh = make_strategy("adaptive", 60.0)
    jitter = make_link("jitter", 0)
    assert adaptive_plan.applies(trace, fresh, jitter, make_playout("fifo"))
    assert not adaptive_plan.applies(trace, fresh, jitter, make_playout("prefetch"))
    assert not adaptive_plan.applies(trace, fresh, jitter, make_playout("fixed"))
    assert not adaptive_plan.applies(trace, fresh, make_link("jitter", 0, lateness_ms=2.0),
                                     make_playout("fifo"))  # fmt: skip
    assert not adaptive_plan.applies(trace, make_strategy("rechunk", 60.0), jitter,
                                     make_playout("fifo"))  # fmt: skip
    used = make_strategy("adaptive", 60.0)
    simulate(trace, used)
    assert not adaptive_plan.applies(trace, used, jitter, make_playout("fifo"))


def test_runs_the_plan_cannot_take_still_match_the_event_loop() -> None:
    trace = prepare(read(shipped("multi_turn")))
    for playout in ("prefetch", "fixed"):
        assert_same_run(simulate(trace, "adaptive", 60.0, "jitter", playout, 2),
                        simulate_event_driven(trace, "adaptive", 60.0, "jitter", playout, 2))
    late = {"lateness_ms": 3.0}
    assert_same_run(simulate(trace, "adaptive", 60.0, "jitter", "fifo", 2, late),
                    simulate_event_driven(trace, "adaptive", 60.0, "jitter", "fifo", 2, late))

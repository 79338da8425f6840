"""The event loop: handing a passive-timer playout model each message at send time changes
nothing, and a strategy whose deadline never moves on is stopped."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sim_fastpath import SENDERS, assert_same_run, items_st, make_trace

from labkit.outbound.base import AudioChunk, Outbound
from labkit.outbound.forward import ForwardStrategy
from labkit.sim import LINK_NAMES, PLAYOUT_NAMES
from labkit.sim.playout import FifoPlayout, make_playout
from labkit.sim.simulator import SimResult, prepare, simulate_event_driven
from labkit.traces import read, shipped

PASSIVE = [name for name in PLAYOUT_NAMES if make_playout(name).passive_timers]


def in_arrival_order(*args: Any, **options: Any) -> SimResult:
    """The run with every message handed to the model at its arrival, in time order."""
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(FifoPlayout, "passive_timers", False)
        return simulate_event_driven(*args, **options)


def test_fifo_and_fixed_have_passive_timers_prefetch_not() -> None:
    assert PASSIVE == ["fifo", "pad_every_message", "fixed"]


@settings(max_examples=100, deadline=None)
@given(
    items=items_st,
    strategy=st.sampled_from(["adaptive", "forward", "paced"]),
    threshold=st.sampled_from([0.0, 20.0, 60.0]),
    link=st.sampled_from(LINK_NAMES),
    playout=st.sampled_from(PASSIVE),
    seed=st.integers(0, 50),
    per_message=st.sampled_from([0.0, 0.2]),
    mark_every=st.sampled_from([None, 40.0, 100.0]),
    sender=st.sampled_from(SENDERS),
)
def test_delivery_at_send_time_equals_delivery_at_arrival(
    items: list[tuple[list[tuple[float, int]], bool, float]], strategy: str, threshold: float,
    link: str, playout: str, seed: int, per_message: float, mark_every: float | None,
    sender: dict[str, float],
) -> None:  # fmt: skip
    trace = prepare(make_trace(items))
    params = {"per_message_ms": per_message, **sender}
    args = (trace, strategy, threshold, link, playout, seed, params)
    slow = in_arrival_order(*args, mark_every_ms=mark_every)
    assert_same_run(simulate_event_driven(*args, mark_every_ms=mark_every), slow)


@pytest.mark.parametrize("playout", PASSIVE)
def test_adaptive_on_shipped_traces_is_the_same_either_way(playout: str) -> None:
    for name in ("barge_in", "multi_turn", "stalls"):
        args = (prepare(read(shipped(name))), "adaptive", 60.0, "jitter", playout, 3)
        assert_same_run(simulate_event_driven(*args), in_arrival_order(*args))


class _StuckStrategy(ForwardStrategy):
    """Its deadline stays in the past: every poll leaves it where it was."""

    def next_deadline(self) -> float | None:
        return 0.0

    def poll(self, now: float) -> list[Outbound]:
        return []


def test_a_deadline_that_never_moves_on_stops_the_run() -> None:
    trace = make_trace([([(0.0, 160)], False, 0.0)])
    with pytest.raises(RuntimeError, match="did not terminate"):
        simulate_event_driven(trace, _StuckStrategy(0.0))


def test_a_custom_strategy_object_runs_through_the_event_loop() -> None:
    class Counting(ForwardStrategy):
        pushes = 0

        def push(self, chunk: AudioChunk, now: float) -> list[Outbound]:
            Counting.pushes += 1
            return super().push(chunk, now)

    trace = read(shipped("barge_in"))
    result = simulate_event_driven(trace, Counting(0.0), link="jitter", seed=1)
    reference = simulate_event_driven(trace, "forward", 0.0, link="jitter", seed=1)
    assert Counting.pushes == sum(1 for event in trace.events if event.type == "audio")
    assert_same_run(result, reference)

"""The sending loop: late timers, stalls that delay every call, and the cost of each send."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.sim import simulate
from labkit.sim.sender_loop import SenderLoop
from labkit.traces import Trace, audio_event, item_event, make_header


def loop(**params: float) -> SenderLoop:
    return SenderLoop(np.random.default_rng(4), **params)


def test_a_punctual_loop_runs_every_call_when_due_and_sends_at_once() -> None:
    punctual = loop()
    assert punctual.punctual
    assert [punctual.run_at(t) for t in (0.0, 5.0, 5.0, 90.0)] == [0.0, 5.0, 5.0, 90.0]
    assert [punctual.leave(7.0) for _ in range(3)] == [7.0, 7.0, 7.0]
    assert punctual.timer_due(10.0, not_before_ms=4.0) == 10.0
    assert punctual.timer_due(3.0, not_before_ms=4.0) == 4.0


def test_timers_fire_late_by_the_promised_mean() -> None:
    late = loop(lateness_ms=4.0)
    draws = np.array([late.timer_due(0.0, 0.0) for _ in range(5000)])
    assert draws.min() >= 0 and draws.mean() == pytest.approx(4.0, rel=0.1)


def test_a_call_due_during_a_stall_runs_when_it_ends() -> None:
    stalling = loop(stall_rate_per_s=2.0, stall_ms=30.0)
    pauses = stalling.pauses(60_000.0)
    assert 90 < len(pauses) < 150  # ~2 per second
    assert np.mean([end - start for start, end in pauses]) == pytest.approx(30.0, rel=0.25)
    for start, end in pauses[:20]:
        assert stalling.run_at(start + (end - start) / 2) == end
        assert stalling.run_at(end + 0.001) == end + 0.001


def test_pauses_depend_on_time_and_seed_only() -> None:
    a, b = loop(stall_rate_per_s=1.0, stall_ms=20.0), loop(stall_rate_per_s=1.0, stall_ms=20.0)
    [a.run_at(t) for t in np.arange(0.0, 30_000.0, 3.0)]
    [b.run_at(t) for t in np.arange(0.0, 30_000.0, 700.0)]
    assert a.pauses(30_000.0) == b.pauses(30_000.0)


def test_each_send_costs_the_loop_time_and_later_calls_wait() -> None:
    costly = loop(send_cost_ms=0.5)
    assert [costly.leave(10.0) for _ in range(4)] == [10.5, 11.0, 11.5, 12.0]
    assert costly.run_at(11.0) == 12.0  # busy sending until 12
    assert costly.run_at(13.0) == 13.0


@pytest.mark.parametrize("bad", [{"lateness_ms": -1.0}, {"stall_ms": float("nan")},
                                 {"send_cost_ms": float("inf")}])
def test_bad_parameters_name_themselves(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        loop(**bad)


def real_time_trace(items: int = 20, deltas: int = 100, delta_bytes: int = 40) -> Trace:
    """Answers delivered at exactly real time in tiny deltas: no cushion ever builds."""
    events, t = [], 0.0
    for k in range(items):
        for _ in range(deltas):
            events.append(audio_event(t, f"r{k}", f"item{k}", 0, b"\x01" * delta_bytes))
            t += delta_bytes / 8
        events.append(item_event("audio_done", t, f"item{k}", 0))
        t += 1000.0
    return Trace(make_header("synthetic", "real time, tiny deltas"), events)


def test_stalls_delay_every_send_not_only_timers() -> None:
    # forward has no timers at all: only stalls of the loop can delay what it sends
    trace = real_time_trace()
    calm = simulate(trace, "forward", link="ideal")
    stalled = simulate(trace, "forward", link="ideal",
                       link_params={"stall_rate_per_s": 3.0, "stall_ms": 40.0})
    waited = stalled.schedule["sent_ms"] - calm.schedule["sent_ms"]
    assert (waited >= 0).all() and waited.max() > 20.0
    assert stalled.metrics.concealment_events > calm.metrics.concealment_events == 0

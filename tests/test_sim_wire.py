"""The simulated schedule holds exactly the messages the Twilio codec would put on the wire."""

from __future__ import annotations

import pytest

from labkit.outbound import STRATEGY_NAMES
from labkit.sim import simulate
from labkit.sim.simulator import simulate_event_driven
from labkit.traces import read, shipped


@pytest.mark.parametrize("run", [simulate, simulate_event_driven], ids=["fast", "event"])
@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_no_empty_media_message_is_counted(run: object, strategy: str) -> None:
    trace = read(shipped("bursty"))
    result = run(trace, strategy, 60, link="jitter", seed=1)  # type: ignore[operator]
    media = result.schedule.query("kind == 'media'")
    assert (media["size"] > 0).all()
    assert result.metrics.media_messages == len(media)
    assert result.metrics.bytes == sum(trace.sizes(key).sum() for key in trace.items)


def test_forward_sends_one_media_message_per_model_delta() -> None:
    trace = read(shipped("tiny_deltas"))
    result = simulate(trace, "forward", 0, link="ideal")
    deltas = sum(len(trace.sizes(key)) for key in trace.items)
    assert result.metrics.media_messages == deltas


def test_measured_arrivals_alone_still_count_stale_audio_after_a_barge_in() -> None:
    from labkit.sim.metrics import measure

    trace = read(shipped("barge_in"))
    result = simulate(trace, "forward", 0, link="constant", seed=0)
    observed = result.schedule[["kind", "item_id", "content_index", "offset", "size",
                                "generation", "arrived_ms"]]  # fmt: skip
    measured = measure(observed, "fifo")
    assert measured.clear_messages == 1
    assert measured.stale_after_barge_in_ms == measured.stale_after_barge_in_ms  # not NaN
    assert 0 <= measured.stale_after_barge_in_ms <= result.metrics.stale_after_barge_in_ms

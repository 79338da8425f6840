"""labkit.views.barge_in: stale audio after clear, the tracker's view of credits, and the
original report's defects, measured on small hand-made traces."""

from __future__ import annotations

import pytest
from agents.realtime.model import RealtimePlaybackTracker
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.outbound import STRATEGY_NAMES
from labkit.sim import simulate
from labkit.traces import Trace, audio_event, item_event, make_header, turn_event
from labkit.views import barge_in

DELTA_BYTES = 320  # 40 ms of audio per delta
DELAY_MS = 30.0


def speech(deltas: int = 50, gap_ms: float = 40.0, barge_in_ms: float | None = None) -> Trace:
    """One item of ``deltas`` 40 ms deltas every ``gap_ms``; optionally interrupted."""
    events = [turn_event("turn_started", 0.0, "r")]
    for n in range(deltas):
        t_ms = 10.0 + n * gap_ms
        if barge_in_ms is not None and t_ms > barge_in_ms:
            break
        events.append(audio_event(t_ms, "r", "a", 0, bytes([n % 200]) * DELTA_BYTES))
    end_ms = 10.0 + deltas * gap_ms
    if barge_in_ms is None:
        events.append(item_event("audio_done", end_ms, "a", 0))
    else:
        events.append(item_event("audio_interrupted", barge_in_ms, "a", 0))
    events.append(turn_event("turn_ended", max(end_ms, barge_in_ms or 0.0) + 1, "r"))
    events.sort(key=lambda e: e.t_ms)
    return Trace(make_header("synthetic", "test speech"), events)


CONSTANT = {"delay_ms": DELAY_MS}


def test_stale_audio_is_the_link_delay_whatever_the_lead() -> None:
    sweep = barge_in.stale_sweep(speech(barge_in_ms=1000.0), ["paced", "preroll", "forward"],
                                 [0, 60, 120], link="constant", link_params=CONSTANT)
    assert len(sweep) == 9
    assert sweep["stale_ms"].to_numpy() == pytest.approx(DELAY_MS, abs=0.2)
    assert sweep["clear_transit_ms"].to_numpy() == pytest.approx(DELAY_MS)
    # nothing delays the clear on its way out: it reaches Twilio one trip after the barge-in
    assert sweep["clear_reach_ms"].to_numpy() == pytest.approx(DELAY_MS)
    assert (sweep["ahead_ms"] >= sweep["stale_ms"] - 0.2).all()


def test_a_stalled_sender_sends_the_clear_late_and_the_caller_hears_the_wait() -> None:
    """With the sending loop paused at the barge-in the clear leaves late: the caller hears its
    wait as well as its trip, and the bound is the time from the barge-in to its arrival."""
    stalls = {**CONSTANT, "stall_rate_per_s": 20.0, "stall_ms": 40.0}
    sweep = barge_in.stale_sweep(speech(barge_in_ms=1000.0), ["forward"], [0],
                                 link="constant", seeds=range(8), link_params=stalls)
    late = sweep["clear_reach_ms"] - sweep["clear_transit_ms"]
    assert (late >= 0).all() and (late > 1).any()
    bound = sweep[["clear_reach_ms", "ahead_ms"]].min(axis=1)
    assert (sweep["stale_ms"] <= bound + 0.2).all()
    assert (sweep["stale_ms"] > sweep["clear_transit_ms"] + 1).any()


def test_a_strategy_that_ignores_the_lead_runs_once_per_seed() -> None:
    """forward ignores threshold_ms: its one run per seed fills every lead's row, in order."""
    trace = speech(barge_in_ms=1000.0)
    sweep = barge_in.stale_sweep(trace, ["paced", "forward"], [0, 100], link="tcp",
                                 seeds=range(2), progress=False)
    assert list(sweep["strategy"]) == ["paced"] * 4 + ["forward"] * 4
    assert list(sweep["lead_ms"]) == [0, 0, 100, 100] * 2
    forward = sweep[sweep["strategy"] == "forward"].set_index(["lead_ms", "seed"])["stale_ms"]
    for seed in range(2):
        ran = simulate(trace, "forward", 100, link="tcp", seed=seed)
        assert forward[(0, seed)] == forward[(100, seed)] == ran.metrics.stale_after_barge_in_ms
    assert barge_in.stale_sweep(trace, [], [0]).empty


def test_stale_sweep_needs_a_barge_in() -> None:
    with pytest.raises(ValueError, match="no audio_interrupted"):
        barge_in.stale_sweep(speech(), ["forward"], [0])


def test_heard_and_ahead_split_what_was_sent_at_an_instant() -> None:
    trace = speech(barge_in_ms=1000.0)
    run = simulate(trace, "forward", 0, link="constant", link_params=CONSTANT)
    heard = barge_in.heard_ms(run.schedule, ("a", 0), 1000.0)
    ahead = barge_in.audio_ahead_ms(run.schedule, ("a", 0), 1000.0)
    sent_ms = sum(len(e.audio) for e in trace.events if e.type == "audio") / 8
    assert heard + ahead == pytest.approx(sent_ms)
    # played at real time from the first arrival
    assert heard == pytest.approx(1000.0 - 10.0 - DELAY_MS, abs=0.2)
    curve = barge_in.heard_curve(run.schedule, ("a", 0), [0.0, 1000.0, 5000.0])
    assert list(curve["heard_ms"]) == pytest.approx([0.0, heard, heard + DELAY_MS], abs=0.2)


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_with_the_rule_nothing_is_credited_after_the_clear(name: str) -> None:
    trace = speech(gap_ms=20.0, barge_in_ms=600.0)  # 2x real time: audio queues at Twilio
    for honor, after_clear in ((True, False), (False, True)):
        run = simulate(trace, name, 60, link="constant", link_params=CONSTANT,
                       honor_generations=honor)
        (row,) = barge_in.tracker_truncations(trace, run).to_dict("records")
        assert (row["credited_after_clear_ms"] > 0) is after_clear
        assert (row["credited_ms"] > row["heard_ms"]) is after_clear
        assert (run.metrics.credited_unplayed_bytes > 0) is after_clear
        assert row["truncated_at_ms"] <= row["heard_by_interrupt_ms"]


def test_truncation_reads_the_tracker_before_the_clears_echoes() -> None:
    trace = speech(gap_ms=20.0, barge_in_ms=600.0)
    cuts = [barge_in.tracker_truncations(trace, simulate(trace, "forward", 0, link="constant",
                                                         link_params=CONSTANT,
                                                         honor_generations=honor))
            for honor in (True, False)]
    assert cuts[0]["truncated_at_ms"].iloc[0] == cuts[1]["truncated_at_ms"].iloc[0]
    assert cuts[0]["phantom_ms"].iloc[0] == 0.0
    assert cuts[1]["phantom_ms"].iloc[0] > 0.0  # the reset tracker is told of dropped audio


credit = st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 1), st.integers(0, 4000))
step = st.one_of(credit, st.just("interrupt"))


@settings(max_examples=200, deadline=None)
@given(st.lists(step, max_size=30))
def test_tracker_model_follows_the_sdk_tracker(steps: list[object]) -> None:
    ours, sdk = barge_in.TrackerModel(), RealtimePlaybackTracker()
    sdk.set_audio_format("g711_ulaw")
    for s in steps:
        if s == "interrupt":
            ours.on_interrupted()
            sdk.on_interrupted()
        else:
            assert isinstance(s, tuple)
            item, index, size = s
            ours.on_play_bytes((item, index), size)
            sdk.on_play_bytes(item, index, bytes(size))
        state = sdk.get_state()
        assert state["current_item_id"] == (None if ours.item is None else ours.item[0])
        if ours.elapsed_ms is None:
            assert state["elapsed_ms"] is None
        else:
            assert state["elapsed_ms"] == pytest.approx(ours.elapsed_ms)


def test_the_recorder_keeps_leaked_marks_visible_after_close() -> None:
    fast = speech(gap_ms=10.0)  # 4x faster than real time
    run, recorder = barge_in.recorded_run(fast, "original_report", 50, variant="first")
    found = barge_in.defects(run, recorder)
    assert recorder.samples[-1]["call"] == "close"
    assert found["leaked_marks"] > 0
    assert found["credited_bytes"] < found["sent_bytes"]
    assert found["tail_cut_bytes"] == 0  # its code never clears on audio_done (its text did)
    assert found["sent_bytes"] == found["played_bytes"]


def test_the_original_flushes_audio_into_its_clear() -> None:
    trace = speech(gap_ms=10.0, barge_in_ms=203.0)  # a few deltas buffered, below 400 B
    run, recorder = barge_in.recorded_run(trace, "original_report", 100, variant="final",
                                          link="constant")
    found = barge_in.defects(run, recorder)
    assert found["flushed_at_barge_in_bytes"] > 0
    assert found["flushed_then_discarded_bytes"] == found["flushed_at_barge_in_bytes"]


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_our_strategies_have_none_of_the_defects(name: str) -> None:
    for trace in (speech(gap_ms=10.0), speech(gap_ms=10.0, barge_in_ms=203.0)):
        run, recorder = barge_in.recorded_run(trace, name, 100, link="constant")
        found = barge_in.defects(run, recorder)
        assert found["leaked_marks"] == 0
        assert found["tail_cut_bytes"] == 0
        assert found["flushed_at_barge_in_bytes"] == 0
        assert found["credited_unplayed_bytes"] == 0


def test_the_recorder_refuses_a_run_of_another_strategy() -> None:
    trace = speech()
    _, recorder = barge_in.recorded_run(trace, "forward", 0)
    other = simulate(trace, "paced", 0)
    with pytest.raises(ValueError, match="recorder saw"):
        barge_in.messages_with_calls(other, recorder)

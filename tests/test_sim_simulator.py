"""The simulator drives the real strategies; its numbers match closed forms computed here."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import labkit
from labkit.outbound import STRATEGY_NAMES, make_strategy
from labkit.sim import PLAYOUT_NAMES, measure, simulate
from labkit.sim.oracle import frontier, schedule_frontier
from labkit.sim.simulator import simulate_event_driven
from labkit.traces import Trace, audio_event, item_event, make_header, read, shipped

BYTES_PER_MS = 8


def make_trace(items: list[list[tuple[float, int]]], interrupt_last: bool = False) -> Trace:
    """Items one after another; each item is a list of (gap before this delta in ms, size)."""
    events, t = [], 0.0
    for k, deltas in enumerate(items):
        for gap, size in deltas:
            t += gap
            events.append(audio_event(t, f"resp{k}", f"item{k}", 0, bytes([k % 250]) * size))
        kind = "audio_interrupted" if interrupt_last and k == len(items) - 1 else "audio_done"
        events.append(item_event(kind, t, f"item{k}", 0))
    return Trace(make_header("synthetic", "test"), events)


def available_strategies() -> list[str]:
    names = []
    for name in STRATEGY_NAMES:
        try:
            make_strategy(name, 50.0)
        except ModuleNotFoundError:
            continue
        names.append(name)
    return names


items_st = st.lists(
    st.lists(st.tuples(st.floats(0, 150), st.integers(1, 1600)), min_size=1, max_size=25),
    min_size=1,
    max_size=3,
)


@settings(max_examples=40, deadline=None)
@given(items=items_st)
def test_forward_ideal_fifo_conceals_exactly_the_fifo_recursion(
    items: list[list[tuple[float, int]]],
) -> None:
    trace = make_trace(items)
    result = simulate(trace, "forward", link="ideal", playout="fifo")
    arrivals, sizes, codes = [], [], []
    for key in trace.items:
        arrivals.append(trace.arrivals_ms(key))
        sizes.append(trace.sizes(key))
        codes.append(np.full(len(trace.sizes(key)), len(codes)))
    a, d, c = np.concatenate(arrivals), np.concatenate(sizes) / BYTES_PER_MS, np.concatenate(codes)
    before = np.r_[0.0, np.cumsum(d)[:-1]]
    starts = before + np.maximum.accumulate(a - before)
    gaps = (starts[1:] - (starts[:-1] + d[:-1]))[c[1:] == c[:-1]]
    gaps = gaps[gaps > 1e-6]
    assert result.metrics.concealed_ms == pytest.approx(gaps.sum(), abs=1e-6)
    assert result.metrics.concealment_events == len(gaps)
    assert result.metrics.played_ms == pytest.approx(d.sum())


@pytest.mark.parametrize("playout", PLAYOUT_NAMES)
@pytest.mark.parametrize("strategy", available_strategies())
def test_played_cleared_discarded_add_up_to_sent(strategy: str, playout: str) -> None:
    trace = read(shipped("barge_in"))
    result = simulate(trace, strategy, 60, link="jitter", playout=playout, seed=1)
    m = result.metrics
    assert m.bytes > 0
    assert m.played_bytes + m.cleared_bytes + m.discarded_bytes == m.bytes
    schedule = result.schedule
    assert len(schedule) == m.messages
    media = schedule[schedule["kind"] == "media"]
    assert int(media["size"].sum()) == m.bytes
    # generations honoured: no cleared byte is credited; only audio a fixed schedule discarded
    # (its slot passed, so its mark echoed) can be credited without playing
    assert m.credited_unplayed_bytes <= m.discarded_bytes


def test_every_strategy_gets_echoes_and_credits_marks() -> None:
    trace = read(shipped("multi_turn"))
    for strategy in available_strategies():
        m = simulate(trace, strategy, 80, link="jitter", seed=2).metrics
        assert 0 < m.credited_bytes <= m.played_bytes, strategy


def test_same_seed_same_run_other_seed_other_run() -> None:
    trace = read(shipped("realtime_jitter"))
    first = simulate(trace, "forward", link="jitter", seed=5).metrics.as_row()
    assert first == simulate(trace, "forward", link="jitter", seed=5).metrics.as_row()
    assert first != simulate(trace, "forward", link="jitter", seed=6).metrics.as_row()


def test_independent_jitter_hurts_tiny_messages_more_than_correlated_jitter() -> None:
    # 10 s of 5 ms deltas delivered at exactly real time: no cushion at all.
    trace = make_trace([[(5.0, 40)] * 2000])
    params = {"mean_ms": 50.0, "p99_ms": 150.0}

    def concealed(link: str) -> float:
        runs = [simulate(trace, "forward", link=link, seed=s, link_params=params) for s in range(5)]
        return float(np.mean([r.metrics.concealed_ms for r in runs]))

    assert concealed("jitter") > 2 * concealed("correlated")


def test_stale_audio_after_barge_in_grows_with_link_delay() -> None:
    # item 0 plays 1 s; the caller barges in at 600 ms, while item 1 is still queued
    trace = make_trace([[(0.0, 8000)], [(500.0, 800), (100.0, 800)]], interrupt_last=True)
    ideal = simulate(trace, "forward", link="ideal").metrics
    slow = simulate(trace, "forward", link="constant", link_params={"delay_ms": 100}).metrics
    assert ideal.stale_after_barge_in_ms == pytest.approx(0.0, abs=0.2)
    assert slow.stale_after_barge_in_ms == pytest.approx(100.0, abs=0.2)


def test_crediting_cleared_marks_shows_as_credited_unplayed_bytes() -> None:
    trace = make_trace([[(0.0, 800)] + [(1.0, 800)] * 20], interrupt_last=True)
    params = {"delay_ms": 100.0}
    honest = simulate(trace, "forward", link="constant", link_params=params)
    buggy = simulate(trace, "forward", link="constant", link_params=params, honor_generations=False)
    assert honest.metrics.credited_unplayed_bytes == 0
    assert buggy.metrics.credited_unplayed_bytes > 0


def test_measure_of_observed_arrivals_matches_the_simulation() -> None:
    trace = read(shipped("stalls"))
    result = simulate(trace, "rechunk", 50, link="stalls", seed=3)
    observed = result.schedule[["kind", "item_id", "content_index", "offset", "size",
                                "generation", "arrived_ms"]]  # fmt: skip
    m = measure(observed, "fifo")
    assert m.concealed_ms == pytest.approx(result.metrics.concealed_ms)
    assert m.oracle_min_delay_ms == pytest.approx(result.metrics.oracle_min_delay_ms)
    assert math.isnan(m.sender_gap_p50_ms)


def test_rendered_audio_is_what_played_with_silence_between() -> None:
    trace = make_trace([[(100.0, 800), (500.0, 800)]])  # second delta arrives after a 400 ms gap
    result = simulate(trace, "forward", link="ideal")
    audio = result.render("silence").audio
    samples = audio.samples
    assert audio.duration_ms == pytest.approx(700.0)
    assert result.metrics.concealed_ms == pytest.approx(400.0)
    silent = samples[200 * BYTES_PER_MS : 600 * BYTES_PER_MS]
    assert np.all(silent == 0) and np.all(samples[: 100 * BYTES_PER_MS] == 0)
    concealed = result.audio.samples  # by default, as a phone line plays it: concealed
    assert np.any(concealed[200 * BYTES_PER_MS : 210 * BYTES_PER_MS] != 0)


def test_oracle_frontier_ends_at_d_star_and_matches_fifo_at_zero_preroll() -> None:
    trace = make_trace([[(0.0, 400), (80.0, 400), (200.0, 160), (10.0, 1600)]])
    result = simulate(trace, "forward", link="ideal")
    table = schedule_frontier(result.schedule)
    assert table["concealed_ms"].iloc[0] == pytest.approx(result.metrics.concealed_ms)
    assert table["preroll_ms"].iloc[-1] == pytest.approx(result.metrics.oracle_min_delay_ms)
    assert table["concealed_ms"].iloc[-1] == 0 and table["late_messages"].iloc[-1] == 0
    assert np.all(np.diff(table["concealed_ms"]) <= 0)
    with pytest.raises(ValueError, match="arrivals"):
        frontier([0.0, 1.0], [0.0])


def test_top_level_simulate_is_the_simulator() -> None:
    assert labkit.simulate is simulate


@pytest.mark.parametrize("playout", ["frame_clock", "frame_clock_skip"])
def test_a_call_that_ends_mid_answer_plays_what_twilio_holds_on_every_playout(
    playout: str,
) -> None:
    """The trace ends before the answer's audio_done (the caller hung up, a salvaged trace):
    forwarding sent 40 ms with no mark after it. Twilio still plays it, so the answer is heard
    and has a time to first audio, on both simulator paths. (The frame clocks played nothing:
    their ticks ran only when a mark was due.)"""
    trace = Trace(make_header("synthetic", "test"),
                  [audio_event(0.0, "resp0", "item0", 0, b"\x55" * 320)])  # fmt: skip
    for run in (simulate, simulate_event_driven):
        metrics = run(trace, "forward", 0, "ideal", playout).metrics
        assert (metrics.played_bytes, metrics.bytes) == (320, 320), run.__name__
        assert metrics.time_to_first_audio_ms == [0.0], run.__name__


@pytest.mark.parametrize("playout", PLAYOUT_NAMES)
@pytest.mark.parametrize("run", [simulate, simulate_event_driven])
def test_an_items_audio_after_its_clear_counts_from_its_own_start(playout: str, run: Any) -> None:
    """One second of an answer in a 50 ms burst, a barge-in at 100 ms, then more of the same
    answer from 200 ms (deltas already in flight). The clear emptied the caller's buffer: the
    100 ms of silence after it is the barge-in's, not concealment, and what plays after it is
    not "heard before real time" (a lag of -727 ms when counted from the answer's start)."""
    burst = [audio_event(float(k), "r", "a", 0, b"\x11" * 160) for k in range(50)]
    resumed = [audio_event(200.0 + k, "r", "a", 0, b"\x12" * 160) for k in range(50)]
    events = [*burst, item_event("audio_interrupted", 100.0, "a", 0), *resumed,
              item_event("audio_done", 300.0, "a", 0)]  # fmt: skip
    metrics = run(Trace(make_header("synthetic", "test"), events), "forward", 50, "ideal",
                  playout).metrics  # fmt: skip
    assert metrics.cleared_bytes > 0 and metrics.played_ms >= 1000
    assert metrics.concealment_events == 0
    assert 0 <= metrics.mean_lag_ms <= 100  # the fixed playout's 100 ms delay, at most
    assert metrics.oracle_min_delay_ms == 0  # each side's messages arrive ahead of need


def test_a_run_without_audio_has_no_jitter_or_least_delay() -> None:
    """Like its lag and time to first audio, not 0.00 ms (which reads as a perfect link)."""
    trace = Trace(make_header("synthetic", "no audio"), [item_event("audio_done", 0.0, "a", 0)])
    metrics = simulate(trace, "forward", link="ideal").metrics
    assert math.isnan(metrics.jitter_ms) and math.isnan(metrics.oracle_min_delay_ms)
    assert math.isnan(metrics.mean_lag_ms) and metrics.media_messages == 0

"""The fast path equals the event loop, bit for bit, for every echo-blind strategy."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from labkit.outbound import make_strategy
from labkit.sim import LINK_NAMES, PLAYOUT_NAMES, SimResult, fastpath, simulate
from labkit.sim.sender import SentMessages
from labkit.sim.simulator import prepare, simulate_event_driven
from labkit.traces import Trace, audio_event, item_event, make_header, read, shipped

ECHO_BLIND = ("forward", "rechunk", "paced", "preroll", "original_report")
# sending loops: punctual, late timers, stalls, a per-message cost, and all of them at once
SENDERS = [
    {"lateness_ms": 0.0, "stall_rate_per_s": 0.0, "send_cost_ms": 0.0},
    {"lateness_ms": 3.0},
    {"stall_rate_per_s": 5.0, "stall_ms": 40.0},
    {"send_cost_ms": 0.4},
    {"lateness_ms": 1.0, "stall_rate_per_s": 2.0, "stall_ms": 25.0, "send_cost_ms": 0.1},
]

# round gaps and sizes make ties (an echo at the instant of an interrupt, ...) common
gap_st = st.one_of(st.sampled_from([0.0, 10.0, 50.0, 100.0]), st.floats(0, 120))
size_st = st.one_of(st.sampled_from([0, 80, 160, 800]), st.integers(0, 1200))
items_st = st.lists(
    st.tuples(
        st.lists(st.tuples(gap_st, size_st), min_size=1, max_size=20),
        st.booleans(),  # interrupted
        st.sampled_from([0.0, 100.0, 250.5]),  # pause before the item
    ),
    min_size=1,
    max_size=4,
)


def make_trace(items: list[tuple[list[tuple[float, int]], bool, float]]) -> Trace:
    events, t = [], 0.0
    for k, (deltas, interrupted, pause) in enumerate(items):
        t += pause
        for gap, size in deltas:
            t += gap
            if size:  # 0: time passes, no delta (a trace holds no empty one: TRACE_FORMAT.md)
                events.append(audio_event(t, f"resp{k}", f"item{k}", 0, bytes([k + 1]) * size))
        kind = "audio_interrupted" if interrupted else "audio_done"
        events.append(item_event(kind, t, f"item{k}", 0))
    return Trace(make_header("synthetic", "test"), events)


def same_number(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def assert_same_run(fast: SimResult, slow: SimResult) -> None:
    fast_row, slow_row = fast.metrics.as_row(), slow.metrics.as_row()
    assert fast_row.keys() == slow_row.keys()
    differ = {k: (fast_row[k], slow_row[k]) for k in fast_row
              if not same_number(fast_row[k], slow_row[k])}  # fmt: skip
    assert not differ
    assert fast.metrics.time_to_first_audio_ms == slow.metrics.time_to_first_audio_ms
    pd.testing.assert_frame_equal(fast.schedule, slow.schedule, check_exact=True)
    assert fast.segments == slow.segments


@settings(max_examples=120, deadline=None)
@given(
    items=items_st,
    strategy=st.sampled_from(ECHO_BLIND),
    threshold=st.sampled_from([0.0, 20.0, 60.0, 150.0]),
    link=st.sampled_from(LINK_NAMES),
    playout=st.sampled_from(PLAYOUT_NAMES),
    seed=st.integers(0, 50),
    sender=st.sampled_from(SENDERS),
    per_message=st.sampled_from([0.0, 0.2]),
    mark_every=st.sampled_from([None, 40.0, 100.0]),
    honor=st.booleans(),
)
# found on Python 3.13: a clear sent the instant its media reached a frame clock on a tick
@example(items=[([(0.0, 80)], True, 0.0)], strategy="forward", threshold=0.0, link="ideal",
         playout="frame_clock", seed=0, sender=SENDERS[0], per_message=0.0, mark_every=None,
         honor=False)  # fmt: skip
def test_fast_path_equals_event_loop_on_random_traces(
    items: list[tuple[list[tuple[float, int]], bool, float]], strategy: str, threshold: float,
    link: str, playout: str, seed: int, sender: dict[str, float], per_message: float,
    mark_every: float | None, honor: bool,
) -> None:  # fmt: skip
    trace = prepare(make_trace(items))
    params = {"per_message_ms": per_message, **sender}
    options: dict[str, Any] = {"honor_generations": honor}
    if strategy != "original_report":  # its marks are the code's: one per delta
        options["mark_every_ms"] = mark_every
    assert fastpath.applies(trace, make_strategy(strategy, threshold, **options))
    args = (trace, strategy, threshold, link, playout, seed, params)
    assert_same_run(simulate(*args, **options), simulate_event_driven(*args, **options))


def test_fast_path_equals_event_loop_on_shipped_traces() -> None:
    for name in ("barge_in", "multi_turn", "stalls"):
        trace = prepare(read(shipped(name)))
        for strategy in ECHO_BLIND:
            for playout in PLAYOUT_NAMES:
                for link in ("jitter", "tcp"):
                    args = (trace, strategy, 60.0, link, playout, 7)
                    assert_same_run(simulate(*args), simulate_event_driven(*args))


def test_echo_learning_and_reused_strategies_take_the_event_loop() -> None:
    trace = prepare(read(shipped("barge_in")))
    assert not fastpath.applies(trace, make_strategy("adaptive", 60.0))
    used = make_strategy("forward", 60.0)
    simulate(trace, used)
    assert not fastpath.applies(trace, used)


def test_an_echo_caused_by_the_interrupts_own_clear_is_not_credited() -> None:
    # ideal link: the clear sent at the interrupt echoes the pending marks at that very instant
    items = [([(0.0, 800), (50.0, 800)], True, 0.0), ([(10.0, 800)], False, 0.0)]
    trace = prepare(make_trace(items))
    fast = simulate(trace, "forward", 0, "ideal", "fifo", 0, mark_every_ms=None)
    assert_same_run(fast, simulate_event_driven(trace, "forward", 0, "ideal", "fifo", 0,
                                                mark_every_ms=None))  # fmt: skip
    marks = fast.schedule[fast.schedule["kind"] == "mark"]
    assert marks["credited_bytes"].tolist() == [0, 0, 800]


def test_an_echo_reaching_the_app_at_the_instant_of_the_interrupt_is_credited() -> None:
    # the mark's audio ends at 100 ms, when the caller barges in: the event loop hands the
    # echo to the strategy before the interrupt of the same instant
    trace = prepare(make_trace([([(0.0, 800), (100.0, 0)], True, 0.0)]))
    fast = simulate(trace, "forward", 0, "ideal", "fifo", 0, mark_every_ms=None)
    assert_same_run(fast, simulate_event_driven(trace, "forward", 0, "ideal", "fifo", 0,
                                                mark_every_ms=None))  # fmt: skip
    assert fast.metrics.credited_bytes == 800


def test_fingerprints_tell_messages_apart_whatever_their_texts_hold() -> None:
    def sent_with(item_ids: list[str]) -> SentMessages:
        n = len(item_ids)
        return SentMessages([0] * n, item_ids, [0] * n, [0] * n, [1] * n, [0] * n, [0.0] * n,
                            [""] * n)  # fmt: skip

    lists = [["a", "b"], ["ab", ""], ["a\0b", ""], ["a", "\0b"], ["", ""], ["\0", ""]]
    prints = [fastpath.fingerprint(sent_with(item_ids), True) for item_ids in lists]
    assert len(set(prints)) == len(lists)
    assert fastpath.fingerprint(sent_with(["a", "b"]), True) == prints[0]

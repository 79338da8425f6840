"""Properties every outbound strategy keeps, over random chunk sizes, timings, ends and
barge-ins (hypothesis), driven on a virtual clock that polls at ``next_deadline()``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_outbound_harness import (
    CONFIGS,
    Run,
    build,
    check_all,
    check_closed,
    check_waits,
    config_id,
)

from labkit.outbound import Clear, Media

Op = tuple[Any, ...]

gaps_ms = st.one_of(st.just(0.0), st.floats(0, 60), st.floats(60, 400), st.just(2000.0))
sizes = st.one_of(st.integers(20, 60), st.integers(1, 700))
ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), gaps_ms, sizes, st.booleans()),
        st.tuples(st.just("end"), gaps_ms),
        st.tuples(st.just("interrupt"), gaps_ms),
        st.tuples(st.just("echo"), gaps_ms, st.integers(1, 4)),
    ),
    max_size=60,
)


def play(config: tuple[str, float, dict[str, Any]], script: list[Op]) -> Run:
    """Items follow each other; a push may start the next item before the last one ended
    (the model moved on) or use content part 1; a push after an interrupt may continue the
    interrupted item (deltas that were in flight)."""
    run = Run(build(config))
    item = 0
    for op in script:
        kind, gap = op[0], op[1]
        key = (f"item{item}", 0)
        if kind == "push":
            size, next_item = op[2], op[3]
            if next_item and key in run.offsets:
                item += 1
                key = (f"item{item}", item % 2)
            run.push(key, size, dt=gap)
        elif kind == "end":
            if key in run.offsets:
                run.end(key, dt=gap)
                item += 1
        elif kind == "interrupt":
            run.interrupt(dt=gap)
        else:
            run.echo_oldest(op[2], dt=gap)
    run.finish()
    return run


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=ops)
def test_every_strategy_keeps_its_contract(
    config: tuple[str, float, dict[str, Any]], script: list[Op]
) -> None:
    run = play(config, script)
    check_all(run)
    check_waits(run)
    check_closed(run)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
@settings(max_examples=25, deadline=None)
@given(script=ops)
def test_interrupt_sends_only_clear_and_nothing_old_follows(
    config: tuple[str, float, dict[str, Any]], script: list[Op]
) -> None:
    run = play(config, script)
    out = run.interrupt()
    assert len(out) == 1 and isinstance(out[0], Clear)
    assert run.strategy.next_deadline() is None, "a cleared strategy still has work"
    assert run.strategy.ledger.pending_count == 0


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_without_honoring_generations_cleared_marks_are_credited(
    config: tuple[str, float, dict[str, Any]],
) -> None:
    name, threshold, options = config
    run = Run(build((name, threshold, {**options, "honor_generations": False})))
    for _ in range(30):
        run.push(("a", 0), 160, dt=5.0)
    run.end(("a", 0))
    run.advance(run.now + 10_000)
    sent = sum(len(m.payload) for _, m in run.media)
    run.interrupt()  # Twilio echoes every pending mark: the SDK example credits them all
    assert sent > 0
    assert run.strategy.ledger.credited_bytes == sent


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_a_peer_that_never_echoes_cannot_grow_the_ledger(
    config: tuple[str, float, dict[str, Any]],
) -> None:
    strategy = build(config)
    strategy.ledger._max_pending_bytes = 4_000  # 500 ms instead of 10 minutes, to keep it quick
    now = 0.0
    for item in range(40):
        for _ in range(10):
            now += 10.0
            strategy.push(_chunk(f"i{item}", 160), now)
            while (deadline := strategy.next_deadline()) is not None and deadline <= now:
                strategy.poll(now)
        strategy.end(f"i{item}", 0, now)
        while (deadline := strategy.next_deadline()) is not None:
            now = max(now, deadline)
            strategy.poll(now)
    ledger = strategy.ledger
    assert ledger.pending_bytes <= 4_000 + 1_600
    assert ledger.dropped_marks > 0
    strategy.close()
    assert ledger.pending_count == 0


def _chunk(item_id: str, size: int) -> Any:
    from labkit.outbound import AudioChunk

    return AudioChunk(item_id, 0, bytes(size))


def test_media_carries_its_marks_in_wire_order() -> None:
    run = Run(build(("rechunk", 50, {"mark_every_ms": None})))
    for _ in range(10):
        run.push(("a", 0), 100, dt=10.0)
    run.end(("a", 0))
    run.finish()
    for _, message in run.media:
        assert isinstance(message, Media) and len(message.marks) == 1
        assert message.marks[0].end == message.end

"""Runs pause the cyclic collector and always leave it as they found it."""

from __future__ import annotations

import gc

import pytest

from labkit.sim import simulate
from labkit.sim.collector import collector_paused
from labkit.traces import read, shipped


def test_the_collector_is_paused_during_a_call_and_restored_after_it() -> None:
    seen = []
    paused_probe = collector_paused(lambda: seen.append(gc.isenabled()))
    assert gc.isenabled()
    paused_probe()
    assert seen == [False] and gc.isenabled()


def test_the_collector_is_restored_when_the_run_fails() -> None:
    @collector_paused
    def failing() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing()
    assert gc.isenabled()


def test_a_caller_that_disabled_the_collector_keeps_it_disabled() -> None:
    gc.disable()
    try:
        simulate(read(shipped("tiny_deltas")), "rechunk", 50)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_simulate_leaves_the_collector_on() -> None:
    simulate(read(shipped("tiny_deltas")), "adaptive", 50)
    assert gc.isenabled()

"""A sweep over a fleet of calls holds only the last few traces it prepared, in this process and
in each worker, and refuses a trace file that changed after it was checked."""

from __future__ import annotations

import shutil
import weakref
from pathlib import Path

import pandas as pd
import pytest

import labkit
from labkit.sim.sweep import pool_batches
from labkit.sim.sweep_runs import KEPT_TRACES, KeptTraces, SweepGrid, TraceRuns
from labkit.sim.sweep_traces import trace_sources
from labkit.traces import read, shipped

GRID = SweepGrid.of(["forward", "paced"], [40.0], ["tcp"], 2, ["fifo"])


def fleet(directory: Path, count: int) -> Path:
    """``count`` recorded calls: copies of two shipped traces under names of their own."""
    directory.mkdir()
    for number in range(count):
        source = shipped("tiny_deltas" if number % 2 else "barge_in")
        shutil.copy(source, directory / f"call_{number:03d}.jsonl.gz")
    return directory


def test_a_sweep_never_holds_every_trace_of_a_fleet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It read every trace into one list and prepared them all before the first run (in each
    worker: 200 copies of the 98 s call took 1.9 GB over three processes, 0.5 GB now)."""
    calls = fleet(tmp_path / "calls", KEPT_TRACES + 6)
    made: list[weakref.ref[TraceRuns]] = []
    prepare = TraceRuns.of.__func__  # type: ignore[attr-defined]

    def counted(cls: type[TraceRuns], name: str, trace: object) -> TraceRuns:
        state: TraceRuns = prepare(cls, name, trace)
        made.append(weakref.ref(state))
        return state

    monkeypatch.setattr(TraceRuns, "of", classmethod(counted))
    most = 0
    rows = []
    for batch in pool_batches(trace_sources([calls]), GRID, jobs=1):
        most = max(most, sum(ref() is not None for ref in made))
        rows.extend(batch)
    assert len(rows) == (KEPT_TRACES + 6) * GRID.runs_per_trace
    assert most <= KEPT_TRACES


def test_a_fleet_sweep_gives_the_rows_of_each_trace_alone(tmp_path: Path) -> None:
    calls = fleet(tmp_path / "calls", KEPT_TRACES + 2)
    args = {"strategies": ["forward", "paced", "adaptive"], "thresholds_ms": [20, 80],
            "links": ["tcp", "jitter"], "seeds": 2, "progress": False}  # fmt: skip
    together = labkit.sweep([calls], jobs=2, **args)
    one = labkit.sweep([shipped("barge_in")], jobs=1, **args)
    first = together[together["trace"] == "call_000"].drop(columns="trace")
    pd.testing.assert_frame_equal(first.reset_index(drop=True),
                                  one.drop(columns="trace"), check_exact=True)  # fmt: skip
    assert set(together["trace"]) == {f"call_{n:03d}" for n in range(KEPT_TRACES + 2)}


def test_a_trace_file_changed_after_its_check_is_refused(tmp_path: Path) -> None:
    """Rows are of the trace the sweep checked (and whose digest its manifest holds): a file
    rewritten while the sweep runs is refused by name, not swept as whatever it now holds."""
    calls = fleet(tmp_path / "calls", 3)
    batches = pool_batches(trace_sources([calls]), GRID, jobs=1)
    first = next(batches)
    assert {row["trace"] for row in first} == {"call_000"}
    changed = calls / "call_002.jsonl.gz"
    shutil.copy(shipped("bursty"), changed)
    with pytest.raises(ValueError, match=rf"^{changed}: the file changed while the sweep ran"):
        list(batches)


def test_kept_traces_keeps_the_last_few_and_forgets_on_request() -> None:
    prepared = TraceRuns.of("tiny", read(shipped("tiny_deltas")))
    kept = KeptTraces(size=2)
    made: list[str] = []

    def make(key: str) -> TraceRuns:
        made.append(key)
        return prepared

    for key in ("a", "b", "a", "c", "a", "b"):
        kept.get(key, lambda key=key: make(key))  # type: ignore[misc]
    assert made == ["a", "b", "c", "b"]  # "b" was the least recently used when "c" came
    assert kept.forget(lambda key: key == "a") == 1
    assert kept.forget(lambda key: key == "a") == 0

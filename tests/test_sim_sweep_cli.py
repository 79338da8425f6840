"""Sweeps and the simulate/sweep commands: tidy rows, same numbers as simulate, clear errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import labkit
from labkit.cli import main
from labkit.cli.sweep import parse_thresholds
from labkit.sim import simulate
from labkit.sim.summary import mean_interval, natural_range
from labkit.traces import read, shipped


def test_sweep_gives_one_row_per_run_matching_simulate() -> None:
    frame = labkit.sweep(["barge_in"], ["forward", "rechunk"], [40, 80], ["jitter"], seeds=2,
                         progress=False)  # fmt: skip
    assert len(frame) == 2 * 2 * 2
    assert {"trace", "strategy", "threshold_ms", "link", "playout", "seed", "concealed_ms"} <= set(
        frame.columns
    )
    row = frame[(frame.strategy == "rechunk") & (frame.threshold_ms == 80) & (frame.seed == 1)]
    direct = simulate(read(shipped("barge_in")), "rechunk", 80, link="jitter", seed=1).metrics
    assert row["concealed_ms"].item() == pytest.approx(direct.concealed_ms)
    assert row["messages"].item() == direct.messages


def test_one_name_or_threshold_given_alone_is_one_not_its_letters(tmp_path: Path) -> None:
    from labkit.views.explorer import your_traces

    alone = labkit.sweep("barge_in", "rechunk", np.int64(50), "tcp", seeds=2, playouts="fifo",
                         progress=False)  # fmt: skip
    listed = labkit.sweep(["barge_in"], ["rechunk"], [50.0], ["tcp"], seeds=2,
                          playouts=["fifo"], progress=False)  # fmt: skip
    pd.testing.assert_frame_equal(alone, listed, check_exact=True)
    path = tmp_path / "mine.jsonl.gz"
    path.write_bytes(shipped("barge_in").read_bytes())
    assert your_traces(str(path)) == your_traces([path]) == [("mine (yours)", str(path))]


@pytest.mark.parametrize(("given", "said"), [
    ({"strategy_options": {"rechunkk": {"flush_interval_ms": 0}}},
     "sweep: strategy_options: unknown outbound strategy 'rechunkk'"),
    ({"strategy_options": {"rechunk": 5}}, "strategy_options['rechunk'] must be a dict"),
    ({"link_params": [1]}, "sweep: link_params must be a dict, got [1]"),
    ({"thresholds_ms": ["abc"]}, "sweep: thresholds_ms must be numbers, got 'abc'"),
    ({"seeds": 2.5}, "seeds must be a count or the seeds themselves, got 2.5"),
    ({"seeds": -1}, "seeds: a count of seeds must be from 0 to 10,000, got -1"),
    ({"seeds": 10**9}, "seeds: a count of seeds must be from 0 to 10,000, got 1000000000"),
    ({"seeds": range(10**9)}, "seeds: at most 10,000 seeds"),
    ({"seeds": [0, -3]}, "seed must be a whole number >= 0, got -3"),
    ({"jobs": 1.5}, "sweep: jobs must be a whole number from 1 to 64, got 1.5"),
])  # fmt: skip
def test_sweep_arguments_of_the_wrong_kind_are_named(given: dict[str, Any], said: str) -> None:
    """A misspelt strategy's options applied to nothing, silently; the others failed inside
    Python (``could not convert string to float``, ``'float' object cannot be interpreted as
    an integer``) without naming the argument."""
    args: dict[str, Any] = {"traces": "tiny_deltas", "strategies": "rechunk",
                            "thresholds_ms": 50, "links": "ideal", "seeds": 1,
                            "progress": False, **given}  # fmt: skip
    with pytest.raises(ValueError, match=re.escape(said)):
        labkit.sweep(**args)


def test_a_numpy_count_of_seeds_is_a_count() -> None:
    frame = labkit.sweep("barge_in", "forward", 50, "ideal", seeds=np.int64(3), progress=False)
    assert frame["seed"].tolist() == [0, 1, 2]


def test_sweep_in_two_processes_equals_sweep_in_one() -> None:
    args = (["tiny_deltas"], ["forward", "preroll"], [30, 60, 90], ["correlated"])
    one = labkit.sweep(*args, seeds=1, jobs=1, progress=False)
    two = labkit.sweep(*args, seeds=1, jobs=2, progress=False)
    assert one.equals(two)


def _nothing() -> None:
    pass


def test_sweep_workers_are_never_forked_from_the_caller() -> None:
    """labkit/sim/processes.py: a fork of this (multi-threaded) process could deadlock; workers
    come from a fork server, so their parent is not this process."""
    import os
    import threading

    from labkit.sim.processes import worker_pool

    busy = threading.Event()
    thread = threading.Thread(target=busy.wait)  # a second thread, as in a Jupyter kernel
    thread.start()
    try:
        with worker_pool(2, _nothing, ()) as pool:
            parents = {pool.submit(os.getppid).result(timeout=60) for _ in range(4)}
    finally:
        busy.set()
        thread.join()
    assert os.getpid() not in parents


POOL_PROBE = """
import os

IMPORTED_IN_PID = os.getpid()


def set_up() -> None:
    pass


def where() -> tuple[int, int]:
    return IMPORTED_IN_PID, os.getpid()
"""


@pytest.mark.parametrize("program_preload", [None, []])
def test_sweep_workers_fork_with_their_code_loaded(
    tmp_path: Path, program_preload: list[str] | None
) -> None:
    """Each worker imported labkit anew (~0.9 s a pool); the fork server now imports the pool's
    code once and workers fork with it loaded, unless the program chose its own preload. In a
    new process: the fork server is one per process and this one's may have started already."""
    (tmp_path / "pool_probe.py").write_text(POOL_PROBE)
    chosen = "" if program_preload is None else f"mp.set_forkserver_preload({program_preload!r})"
    code = f"""
import json, multiprocessing as mp, os
import pool_probe
from labkit.sim.processes import worker_pool
{chosen}
with worker_pool(2, pool_probe.set_up, ()) as pool:
    imported_in, worker = pool.submit(pool_probe.where).result(timeout=60)
print(json.dumps([imported_in, worker, os.getpid()]))
"""
    # on PYTHONPATH, as labkit is installed: Python 3.11's fork server ignores the caller's
    # sys.path when it preloads
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True, env=env)  # fmt: skip
    imported_in, worker, caller = json.loads(done.stdout)
    if program_preload is None:
        assert imported_in not in (worker, caller)  # in the fork server, before the fork
    else:
        assert imported_in == worker  # the program's choice kept: each worker imports it


def test_simulate_command_prints_json_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "realtime_jitter", "--strategy", "rechunk", "--threshold-ms", "50",
                 "--link", "stalls", "--playout", "prefetch", "--seed", "3", "--json"])  # fmt: skip
    assert code == 0
    row = json.loads(capsys.readouterr().out)
    for key in ("messages", "audio_ms", "played_ms", "concealed_ms", "concealment_events",
                "oracle_min_delay_ms", "mean_added_latency_ms"):  # fmt: skip
        assert key in row
    assert row["audio_ms"] > 0


def test_simulate_json_is_strict_json_when_a_metric_is_not_a_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from labkit.traces import Trace, make_header, turn_event, write

    header = make_header("synthetic", "an answer with no audio", generator={"test": "json"})
    path = tmp_path / "silent.jsonl.gz"
    write(Trace(header, [turn_event("turn_started", 0, "r1"), turn_event("turn_ended", 10, "r1")]),
          path)  # fmt: skip
    assert main(["simulate", str(path), "--json"]) == 0
    text = capsys.readouterr().out
    row = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in {text}"))
    assert row["mean_time_to_first_audio_ms"] is None and row["messages"] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["simulate", "tiny_deltas", "--strategy", "bogus"], "unknown strategy 'bogus'"),
        (["simulate", "no_such_trace"], "no_such_trace"),
        (["sweep", "tiny_deltas", "--thresholds", "20:x:5", "--out", "unused"], "START:STOP:STEP"),
        (["sweep", "tiny_deltas", "--strategy", "forward,nope", "--out", "unused"], "'nope'"),
        (["simulate", "tiny_deltas", "--link", "wifi"],
         "unknown link 'wifi'; choose one of tcp, correlated, ideal, constant, jitter, stalls"),
        (["sweep", "tiny_deltas", "--playout", "fifo,twilio", "--out", "unused"],
         "unknown playout 'twilio'; choose one of fifo, frame_clock"),
        (["simulate", "tiny_deltas", "--strategy", "original_report", "--variant", "second"],
         "unknown variant 'second'; choose one of final, first"),
        (["simulate", "tiny_deltas", "--variant", "first"], "--variant applies to"),
        (["simulate", "tiny_deltas", "--link-param", "mean_ms"], "is not KEY=NUMBER"),
    ],
)
def test_bad_command_input_exits_2_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_sweep_command_writes_csv_summary_and_plots(tmp_path: Path) -> None:
    code = main(["sweep", "barge_in", "--strategy", "forward,preroll", "--thresholds", "20:60:20",
                 "--link", "tcp,jitter", "--seeds", "3", "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    runs = pd.read_csv(tmp_path / "sweep.csv")
    assert len(runs) == 2 * 3 * 2 * 3
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert len(summary) == 2 * 3 * 2
    assert (summary["n_seeds"] == 3).all()
    for metric in ("concealed_ms", "concealment_events", "mean_time_to_first_audio_ms"):
        for suffix in ("mean", "ci_low", "ci_high"):
            assert f"{metric}_{suffix}" in summary.columns
    row = summary.query("strategy == 'preroll' and threshold_ms == 40 and link == 'jitter'")
    seeds = runs.query("strategy == 'preroll' and threshold_ms == 40 and link == 'jitter'")
    expected = mean_interval(seeds["concealed_ms"].to_numpy(), natural_range("concealed_ms"))
    assert row["concealed_ms_mean"].item() == pytest.approx(expected.mean)
    assert row["concealed_ms_ci_low"].item() == pytest.approx(expected.low, nan_ok=True)
    assert len(list(tmp_path.glob("*.png"))) == 2  # gaps and onset gaps, a panel per link


def test_a_fleet_sweep_can_skip_its_plots_and_shows_them_coming(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two PNGs per trace took ~0.3 s a trace after the runs, silently: minutes for a fleet."""
    argv = ["sweep", "tiny_deltas", "barge_in", "--strategy", "forward", "--thresholds", "50"]
    assert main([*argv, "--out", str(tmp_path / "plotted")]) == 0
    said = capsys.readouterr()
    assert "plots: 100%" in said.err and " calls to " in said.out and "and 6 plots" in said.out
    assert main([*argv, "--out", str(tmp_path / "bare"), "--no-plots"]) == 0
    assert "and no plots (--plots none)\n" in capsys.readouterr().out
    assert not list((tmp_path / "bare").glob("*.png"))
    for name in ("sweep.csv", "summary.csv", "fleet.csv"):
        assert (tmp_path / "bare" / name).read_bytes() == (tmp_path / "plotted" / name).read_bytes()


def test_sweep_takes_the_original_report_and_its_variant(tmp_path: Path) -> None:
    code = main(["sweep", "tiny_deltas", "--strategy", "original_report", "--variant", "first",
                 "--thresholds", "50:50:1", "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    runs = pd.read_csv(tmp_path / "sweep.csv")
    direct = simulate(read(shipped("tiny_deltas")), "original_report", 50, variant="first")
    assert runs["mark_messages"].item() == direct.metrics.mark_messages


def test_mean_interval_is_students_t() -> None:
    interval = mean_interval([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * np.std([1.0, 2.0, 3.0, 4.0], ddof=1) / 2  # t(0.975, 3)
    assert interval.mean == 2.5
    assert interval.low == pytest.approx(2.5 - half) and interval.high == pytest.approx(2.5 + half)
    assert np.isnan(mean_interval([5.0]).low)
    assert mean_interval([2.0, 2.0]).low == 2.0


def test_thresholds_include_stop() -> None:
    assert parse_thresholds("20:200:1")[-1] == 200 and len(parse_thresholds("20:200:1")) == 181


def test_one_threshold_is_that_threshold_alone() -> None:
    assert parse_thresholds("50") == [50.0] and parse_thresholds("0") == [0.0]
    for bad in ("fifty", "-5", "1e12", "20:40", "nan"):
        with pytest.raises(ValueError, match="--thresholds"):
            parse_thresholds(bad)


def _same(a: object, b: object) -> bool:
    both_nan = isinstance(a, float) and isinstance(b, float) and a != a and b != b
    return both_nan or a == b


@pytest.mark.parametrize("link_params", [None, {"lateness_ms": 3.0, "per_message_ms": 0.2}])
def test_sweep_rows_reused_across_thresholds_equal_real_runs_exactly(
    link_params: dict[str, float] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # forward ignores the threshold (one run copied), and preroll sends the same messages for
    # nearby thresholds (metrics reused); on bursty, paced sends the same frames at other times
    # for each lead (must not be reused): every row must still be the run's own, bit for bit
    from labkit.sim import fastpath

    finished: list[int] = []
    real_finish = fastpath.finish

    def counted_finish(*args: Any) -> Any:
        finished.append(1)
        return real_finish(*args)

    monkeypatch.setattr(fastpath, "finish", counted_finish)
    traces = ["barge_in", "bursty"]
    strategies, thresholds = ["forward", "preroll", "paced", "adaptive"], [20, 21, 22, 60]
    frame = labkit.sweep(traces, strategies, thresholds, ["jitter", "stalls"], seeds=2,
                         playouts=["fifo", "prefetch"], link_params=link_params,
                         progress=False)  # fmt: skip
    assert len(frame) == 2 * 4 * 4 * 2 * 2 * 2
    fast_runs = 2 * 3 * 4 * 2 * 2 * 2
    assert len(finished) < fast_runs - 2 * 2 * 2 * 2 * 3  # forward alone saves 3 of 4 thresholds
    loaded = {name: read(shipped(name)) for name in traces}
    for row in frame.to_dict("records"):
        run = (row["strategy"], row["threshold_ms"], row["link"], row["playout"], row["seed"])
        direct = simulate(loaded[row["trace"]], *run, link_params=link_params).metrics.as_row()
        differ = {k: (row[k], v) for k, v in direct.items() if not _same(row[k], v)}
        assert not differ, (row["trace"], row["strategy"], row["threshold_ms"], differ)


def test_sweep_rejects_a_bad_threshold_even_for_a_strategy_that_ignores_it() -> None:
    with pytest.raises(ValueError, match="threshold_ms"):
        labkit.sweep(["barge_in"], ["forward"], [20, -5], progress=False)


SMALL = ["barge_in", "--strategy", "forward,preroll", "--thresholds", "20:60:40", "--seeds", "2"]


def test_sweep_csv_reads_back_as_the_rows_computed(tmp_path: Path) -> None:
    from labkit.sim.sweep_journal import read_runs

    assert main(["sweep", *SMALL, "--link", "tcp,jitter", "--jobs", "2",
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    computed = labkit.sweep(["barge_in"], ["forward", "preroll"], [20, 60], ["tcp", "jitter"],
                            seeds=2, progress=False)  # fmt: skip
    pd.testing.assert_frame_equal(read_runs(tmp_path / "sweep.csv"), computed, check_exact=True)


def test_a_rerun_with_the_same_arguments_resumes_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", *SMALL, "--out", str(tmp_path)]) == 0
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    capsys.readouterr()
    assert main(["sweep", *SMALL, "--jobs", "2", "--out", str(tmp_path)]) == 0
    assert f"resuming {tmp_path / 'sweep.csv'}: 8 of 8 runs are there" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_a_sweep_started_with_other_arguments_is_refused_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", *SMALL, "--out", str(tmp_path)]) == 0
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    other = [*SMALL, "--link-param", "mean_ms=80", "--variant", "first",
             "--strategy", "forward,original_report"]  # fmt: skip
    assert main(["sweep", *other, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "made with other arguments (link_params: {} there, {\"mean_ms\": 80.0} now; " in err
    assert "strategies: [\"forward\", \"preroll\"] there, [\"forward\", \"original_report\"]" in err
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_results_without_a_manifest_are_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sweep.csv").write_text("somebody's results\n")
    assert main(["sweep", *SMALL, "--out", str(tmp_path)]) == 2
    assert "sweep.csv exists with no sweep-manifest.json beside it" in capsys.readouterr().err
    assert (tmp_path / "sweep.csv").read_text() == "somebody's results\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sweep.csv"]


def _half_done_sweep(directory: Path, line: int, column: str, value: str) -> bytes:
    """A finished SMALL sweep cut to its first four runs, as an interrupt leaves it, with
    ``column`` of file line ``line`` set to ``value``; returns the file's bytes."""
    assert main(["sweep", *SMALL, "--out", str(directory)]) == 0
    (directory / "summary.csv").unlink()
    csv = directory / "sweep.csv"
    lines = csv.read_text().splitlines(keepends=True)[:5]
    cells = lines[line - 1].rstrip("\n").split(",")
    cells[lines[0].rstrip("\n").split(",").index(column)] = value
    lines[line - 1] = ",".join(cells) + "\n"
    csv.write_text("".join(lines))
    return csv.read_bytes()


@pytest.mark.parametrize(("line", "column", "value", "said"), [
    (3, "seed", "abc", 'line 3: seed "abc" is not one of this sweep\'s ("0, 1")'),
    (4, "seed", "", "line 4: seed (empty) is not one of this sweep's"),
    (2, "seed", "1.5", 'line 2: seed "1.5" is not one of this sweep\'s'),
    (3, "threshold_ms", "40.0", 'line 3: threshold_ms "40.0" is not one of this sweep\'s '
                                '("20.0, 60.0")'),
    (5, "strategy", "paced", 'line 5: strategy "paced" is not one of this sweep\'s'),
    (2, "trace", "tiny_deltas", 'line 2: trace "tiny_deltas" is not one of this sweep\'s '
                                '("barge_in")'),
    (4, "concealed_ms", "1.0ms", 'line 4: concealed_ms "1.0ms" is not a number'),
    (3, "seed", "0", "line 3: the run of line 2 again"),
])  # fmt: skip
def test_rows_that_are_not_this_sweeps_are_refused_by_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: int, column: str, value: str,
    said: str,
) -> None:  # fmt: skip
    kept = _half_done_sweep(tmp_path, line, column, value)
    capsys.readouterr()
    assert main(["sweep", *SMALL, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"labkit sweep: {tmp_path / 'sweep.csv'}, {said}" in err, err
    assert "Traceback" not in err
    assert (tmp_path / "sweep.csv").read_bytes() == kept  # nothing run, nothing lost
    assert not (tmp_path / "summary.csv").exists()


def test_an_empty_value_resumes_as_the_nan_it_was_written_for(tmp_path: Path) -> None:
    from labkit.sim.sweep_journal import read_runs

    _half_done_sweep(tmp_path, 3, "concealed_ms", "")
    assert main(["sweep", *SMALL, "--out", str(tmp_path)]) == 0
    runs = read_runs(tmp_path / "sweep.csv")
    assert len(runs) == 8 and runs["concealed_ms"].isna().sum() == 1


def test_two_traces_of_one_name_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for folder in ("monday", "tuesday"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "call.jsonl.gz").write_bytes(shipped("barge_in").read_bytes())
    assert main(["sweep", str(tmp_path / "monday"), str(tmp_path / "tuesday"),
                 "--out", str(tmp_path / "out")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "two traces are named 'call' (rows are keyed by name): " in err
    assert str(tmp_path / "tuesday" / "call.jsonl.gz") in err


def test_one_file_under_two_names_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "calls").mkdir()
    call = tmp_path / "calls" / "call.jsonl.gz"
    call.write_bytes(shipped("barge_in").read_bytes())
    (tmp_path / "calls" / "again.jsonl.gz").symlink_to(call)
    assert main(["sweep", str(tmp_path / "calls"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'calls' / 'again.jsonl.gz'} and {call} are one file (a link)" in err
    assert not (tmp_path / "out").exists()


def test_a_directory_of_traces_sweeps_each_in_processes(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    calls.mkdir()
    for name in ("tiny_deltas", "barge_in"):
        (calls / f"{name}.jsonl.gz").write_bytes(shipped(name).read_bytes())
    frame = labkit.sweep([calls], ["preroll"], [60], seeds=2, jobs=2, progress=False)
    named = labkit.sweep(["barge_in", "tiny_deltas"], ["preroll"], [60], seeds=2, progress=False)
    assert frame.equals(named)


def test_a_directory_entry_named_like_a_trace_that_is_not_one_is_named_not_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traces = tmp_path / "traces"
    traces.mkdir()
    (traces / "call.jsonl.gz").write_bytes(shipped("barge_in").read_bytes())
    (traces / "moved.jsonl.gz").symlink_to(tmp_path / "gone.jsonl.gz")
    os.mkfifo(traces / "pipe.jsonl")
    assert main(["sweep", str(traces), "--strategy", "forward", "--thresholds", "50:50:1",
                 "--out", str(tmp_path / "out")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert f"{traces / 'moved.jsonl.gz'}: a link to nothing" in err
    assert f"{traces / 'pipe.jsonl'}: not a regular file" in err
    assert not (tmp_path / "out").exists()


def test_a_value_given_twice_is_one_run(tmp_path: Path) -> None:
    frame = labkit.sweep(["barge_in"], ["forward", "forward"], [20, 20.0], seeds=[1, 1],
                         progress=False)  # fmt: skip
    assert len(frame) == 1
    assert main(["sweep", "barge_in", "--strategy", "preroll,preroll", "--thresholds", "20:20:5",
                 "--seeds", "2", "--out", str(tmp_path)]) == 0  # fmt: skip
    assert len(pd.read_csv(tmp_path / "sweep.csv")) == 2


@pytest.mark.parametrize("cut_bytes", [0, 7])
def test_an_interrupt_inside_a_write_is_counted_from_the_file(
    cut_bytes: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Ctrl-C after a batch is on disk but before the journal counts it (cut_bytes 0), or in
    the middle of its write (a cut last line): the message counts the whole rows on disk."""
    from labkit.sim import sweep_journal

    real_fsync, csv = sweep_journal.os.fsync, tmp_path / "sweep.csv"

    def interrupted_fsync(fd: int) -> None:
        real_fsync(fd)
        if csv.exists() and len(csv.read_text().splitlines()) > 3:
            with csv.open("rb+") as file:
                file.truncate(csv.stat().st_size - cut_bytes)
            raise KeyboardInterrupt

    monkeypatch.setattr(sweep_journal.os, "fsync", interrupted_fsync)
    assert main(["sweep", *SMALL, "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    kept = sweep_journal.read_runs(csv)
    assert 0 < len(kept) < 8
    assert f"interrupted; {len(kept)} of 8 runs are in {csv}" in err
    assert ("dropped a last line cut short" in err) == (cut_bytes > 0)
    monkeypatch.undo()
    assert main(["sweep", *SMALL, "--out", str(tmp_path)]) == 0
    assert f"resuming {csv}: {len(kept)} of 8 runs are there" in capsys.readouterr().err
    computed = labkit.sweep(["barge_in"], ["forward", "preroll"], [20, 60], seeds=2, progress=False)
    pd.testing.assert_frame_equal(sweep_journal.read_runs(csv), computed, check_exact=True)


def test_an_interrupt_with_the_file_unreadable_still_says_what_it_knows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from labkit.sim import sweep_journal

    real_fsync, real_reread = sweep_journal.os.fsync, sweep_journal.SweepJournal.reread
    rereads = []

    def interrupted_fsync(fd: int) -> None:
        real_fsync(fd)
        raise KeyboardInterrupt

    def reread_once(journal: sweep_journal.SweepJournal) -> None:
        rereads.append(journal)
        if len(rereads) > 1:  # the first is the journal's opening
            raise OSError("disk gone")
        real_reread(journal)

    monkeypatch.setattr(sweep_journal.os, "fsync", interrupted_fsync)
    monkeypatch.setattr(sweep_journal.SweepJournal, "reread", reread_once)
    assert main(["sweep", *SMALL, "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert f"could not read {tmp_path / 'sweep.csv'} back (disk gone); the count below may " in err
    assert "interrupted; 0 of 8 runs are in" in err


@pytest.mark.parametrize(("flags", "said"), [
    (["--seeds", "0"], ["--seeds must be >= 1, got 0"]),
    (["--strategy", ","], ["--strategy names nothing"]),
    (["--link", " ", "--playout", ""], ["--link names nothing", "--playout names nothing"]),
])  # fmt: skip
def test_an_empty_choice_is_named_once_by_its_flag(
        flags: list[str], said: list[str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert main(["sweep", "tiny_deltas", *flags, "--out", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == len(said)  # no second, vaguer message after the first
    assert all(part in line for part, line in zip(said, lines, strict=True))
    assert not (tmp_path / "out").exists()


def test_the_sweep_grid_names_what_is_empty() -> None:
    from labkit.sim.sweep_runs import SweepGrid

    with pytest.raises(ValueError, match=r"^sweep: no links, no seeds given"):
        SweepGrid.of(["forward"], [50.0], [], 0, ["fifo"])


def test_a_grid_too_large_to_mean_is_refused_before_it_is_built(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    with pytest.raises(ValueError, match=r"gives 1,000,000,001 thresholds; at most 10,000"):
        parse_thresholds("0:1e9:1")
    assert len(parse_thresholds("0:9999:1")) == 10_000
    assert main(["sweep", "tiny_deltas", "--seeds", "1000000000", "--out",
                 str(tmp_path / "out")]) == 2  # fmt: skip
    assert "--seeds must be at most 10,000, got 1,000,000,000" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_simulate_names_a_negative_seed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "tiny_deltas", "--seed", "-1"])
    assert "argument --seed: must be 0 or more, got -1" in capsys.readouterr().err


@pytest.mark.parametrize(("spec", "said"), [
    ("20:1e309:10", "START, STOP and STEP must be finite numbers"),
    ("nan:nan:nan", "START, STOP and STEP must be finite numbers"),
    ("20:20:1e309", "START, STOP and STEP must be finite numbers"),
    ("0:1e308:1e-300", "gives inf thresholds; at most 10,000"),
    ("0:700000:100000", "STOP is at most 600000 ms"),
])  # fmt: skip
def test_a_threshold_range_beyond_numbers_is_named_as_the_flag(spec: str, said: str) -> None:
    """``1e309`` overflowed inside int() (a traceback), NaN gave "cannot convert float NaN to
    integer", a step of inf made the threshold NaN after the sweep had started."""
    with pytest.raises(ValueError, match=re.escape(f"--thresholds {spec!r}")) as refused:
        parse_thresholds(spec)
    assert said in str(refused.value)


def test_too_many_jobs_and_a_nameless_trace_file_are_refused_before_any_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """--jobs 1000 started a worker of ~100 MB per chunk; a hidden ``.jsonl.gz`` in a directory
    swept as the trace "", which read back as no name, so the sweep could never resume."""
    out = tmp_path / "out"
    assert main(["sweep", "tiny_deltas", "--jobs", "1000", "--out", str(out)]) == 2
    assert "--jobs must be at most 64, got 1,000" in capsys.readouterr().err
    calls = tmp_path / "calls"
    calls.mkdir()
    for name in (".jsonl.gz", "b.jsonl.gz"):
        (calls / name).write_bytes(shipped("barge_in").read_bytes())
    assert main(["sweep", str(calls), "--strategy", "forward", "--thresholds", "20:20:1",
                 "--out", str(out)]) == 2  # fmt: skip
    said = capsys.readouterr().err
    assert f"{calls / '.jsonl.gz'}: a trace file needs a name before .jsonl or .jsonl.gz" in said
    assert not out.exists()


def test_ctrl_c_anywhere_in_a_command_is_one_line_and_exit_130(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """An interrupt outside a sweep's runs (its start, its summary, a server, a call) ended in a
    traceback; a sweep's workers printed theirs too."""
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("labkit.cli.simulate.run", interrupted)
    assert main(["simulate", "tiny_deltas"]) == 130
    assert capsys.readouterr().err == "labkit simulate: interrupted\n"
    from labkit.sim.processes import worker_pool

    with worker_pool(1, _nothing, ()) as pool:  # the caller handles Ctrl-C; workers ignore it
        assert pool.submit(_sigint_handler).result(timeout=60) == "ignored"


def _sigint_handler() -> str:
    import signal

    return "ignored" if signal.getsignal(signal.SIGINT) == signal.SIG_IGN else "handled"


def test_a_difference_within_rounding_noise_of_zero_is_no_difference() -> None:
    """Lesson 02 counted the report's code as leaving "more" silence in gaps on one setting
    where every seed's difference was ~1e-12 ms: the same gaps summed in another order."""
    from labkit.sim.summary import Interval, direction

    assert direction(Interval(2e-12, 1e-12, 3e-12, 20), "concealed_ms") == "no difference shown"
    assert direction(Interval(-5.0, -8.0, -2.0, 20), "concealed_ms") == "less"
    assert direction(Interval(5.0, 2.0, 8.0, 20), "concealed_ms") == "more"
    assert direction(Interval(0.0, -1.0, 1.0, 20), "concealed_ms") == "no difference shown"


def test_a_verdict_is_worded_for_what_its_metric_measures() -> None:
    """Silence (ms) is less or more; a count of gaps is fewer or more; a score lower or higher."""
    from labkit.sim.summary import Interval, direction

    below, above = Interval(-5.0, -8.0, -2.0, 20), Interval(5.0, 2.0, 8.0, 20)
    for metric in ("concealed_ms", "onset_concealed_ms", "gap_ms_per_audio_s"):
        assert (direction(below, metric), direction(above, metric)) == ("less", "more"), metric
    for metric in ("concealment_events", "onset_gaps_per_answer", "messages"):
        assert (direction(below, metric), direction(above, metric)) == ("fewer", "more"), metric
    assert (direction(below, "mos_lqo_plc"), direction(above, "mos_lqo_plc")) == (
        "lower", "higher")
    assert direction(Interval(0.0, -1.0, 1.0, 20), "onset_gaps_per_answer") == (
        "no difference shown")


def test_a_sweep_says_where_few_seeds_carry_the_gaps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a 50 ms rechunk of tiny_deltas_call over tcp has gaps in a few seeds (lesson 09)
    argv = ["sweep", "tiny_deltas_call", "--strategy", "forward,rechunk", "--thresholds", "50",
            "--link", "tcp", "--seeds", "20", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    summary = pd.read_csv(tmp_path / "summary.csv")
    carried = summary.set_index("strategy")["concealed_ms_seeds_above_0"]
    runs = pd.read_csv(tmp_path / "sweep.csv")
    assert carried["forward"] == (runs.query("strategy == 'forward'")["concealed_ms"] > 0).sum()
    thin = int(((carried > 0) & (carried < 10)).sum())
    said = capsys.readouterr().err
    assert thin >= 1 and f"in {thin} of 2 settings fewer than half the seeds have gaps" in said
    assert "run more --seeds" in said

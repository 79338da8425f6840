"""Fleet sweeps on Dask (labkit.sim.fleet): a real LocalCluster of worker processes on 127.0.0.1.

The same files as --jobs, rows kept when a sweep stops early and resumed, a mismatched directory
refused, directories of traces, traces sent to the workers (which are forbidden to read trace
files), and a scheduler that does not answer refused within seconds.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import distributed
import pandas as pd
import pytest
from test_sim_cli_fixes import far_trace

import labkit
from labkit.cli import main
from labkit.sim.fleet import TRACES_IN_FLIGHT_PER_THREAD, FleetError, dask_batches, dask_client
from labkit.sim.simulator import simulate
from labkit.sim.sweep import pool_batches
from labkit.sim.sweep_journal import MANIFEST_FILE, SweepJournal, read_runs, sweep_manifest
from labkit.sim.sweep_runs import SweepGrid, runs_frame
from labkit.sim.sweep_traces import trace_sources
from labkit.traces import read, shipped, write

TRACES = ["barge_in", "tiny_deltas"]
GRID_ARGS = ["--strategy", "forward,preroll,paced", "--thresholds", "20:100:40",
             "--link", "tcp,jitter", "--seeds", "2"]  # fmt: skip
GRID_RUNS = 2 * 3 * 3 * 2 * 2
WORKER_READ = "a Dask worker read a trace file"
TIMEOUT_S = 2.0
LOOPBACK_ANY_PORT = "127.0.0.1:0"  # the scheduler's HTTP server: never on another interface


def _forbid_reading_traces() -> None:
    """Run on each worker: every way labkit reads a trace file raises."""
    import labkit.sim.sweep_traces
    import labkit.traces
    import labkit.traces.reader

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(WORKER_READ)

    labkit.traces.reader.read = refuse
    labkit.traces.read = refuse
    labkit.sim.sweep_traces.read = refuse
    labkit.sim.sweep_traces.TraceSource.load = refuse  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """The address of a cluster of two worker processes that may not read trace files."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=LOOPBACK_ANY_PORT,
                                       silence_logs=logging.ERROR)  # fmt: skip
    with cluster, distributed.Client(cluster) as client:
        client.run(_forbid_reading_traces)
        yield str(cluster.scheduler_address)


def sweep_cli(*args: str) -> int:
    return main(["sweep", *args])


def test_the_workers_of_the_test_cluster_cannot_read_a_trace_file(scheduler: str) -> None:
    from labkit.sim.sweep_traces import load_trace

    with distributed.Client(scheduler) as client:
        future = client.submit(load_trace, str(shipped("tiny_deltas")))
        with pytest.raises(RuntimeError, match=WORKER_READ):
            future.result(timeout=30)


def test_a_local_cluster_writes_the_same_files_as_jobs(tmp_path: Path) -> None:
    assert sweep_cli(*TRACES, *GRID_ARGS, "--jobs", "2", "--out", str(tmp_path / "jobs")) == 0
    assert sweep_cli(*TRACES, *GRID_ARGS, "--dask", "--jobs", "1",
                     "--out", str(tmp_path / "dask")) == 0  # fmt: skip
    for name in ("sweep.csv", "summary.csv", "fleet.csv", MANIFEST_FILE):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "jobs" / name).read_bytes()
    assert len(pd.read_csv(tmp_path / "dask" / "sweep.csv")) == GRID_RUNS


def test_a_scheduler_address_gives_the_rows_of_one_process(scheduler: str, tmp_path: Path) -> None:
    args: dict[str, Any] = {
        "strategies": ["forward", "original_report", "adaptive"], "thresholds_ms": [40, 80],
        "links": ["tcp", "stalls"], "seeds": 2, "playouts": ["fifo", "prefetch"],
        "link_params": {"lateness_ms": 3.0}, "progress": False,
        "strategy_options": {"original_report": {"variant": "first"}},
    }  # fmt: skip
    here = labkit.sweep(TRACES, jobs=1, **args)
    there = labkit.sweep(TRACES, dask=scheduler, **args)
    assert len(there) == 2 * 3 * 2 * 2 * 2 * 2
    pd.testing.assert_frame_equal(there, here, check_exact=True)


def test_a_sweep_waits_on_its_own_client_not_on_the_default_one(scheduler: str) -> None:
    # Dask's as_completed watches futures on the default client's loop unless told otherwise:
    # with another client made later (a notebook's own) whose loop is busy, the sweep's rows
    # waited for that loop (with two idle clients open, they came in 1 s steps)
    sources = trace_sources(TRACES)
    grid = SweepGrid.of(["forward", "paced"], [40.0], ["tcp"], 2, ["fifo"])
    busy_for_s = 60.0
    with dask_client(scheduler) as mine, distributed.Client(scheduler) as other:
        assert distributed.default_client() is other
        release = threading.Event()
        other.loop.add_callback(release.wait, busy_for_s)  # holds the other client's loop
        try:
            started = time.monotonic()
            rows = [row for batch in dask_batches(mine, sources, grid) for row in batch]
            took_s = time.monotonic() - started
            assert not release.is_set()
        finally:
            release.set()
    assert len(rows) == len(sources) * grid.runs_per_trace
    assert took_s < busy_for_s / 2, f"the sweep waited on another client's loop ({took_s:.1f} s)"


def test_a_sweep_leaves_the_programs_default_dask_client_alone(scheduler: str) -> None:
    """A notebook's own client stays the default while labkit's sweep runs (its Dask work
    would otherwise go to labkit's cluster), and after it."""
    with distributed.Client(scheduler) as own:
        with dask_client(scheduler) as mine:
            assert distributed.default_client() is own
            assert list(dask_batches(mine, trace_sources(["tiny_deltas"]),
                                     SweepGrid.of("forward", 50, "tcp", 1, "fifo")))  # fmt: skip
            assert distributed.default_client() is own
        assert distributed.default_client() is own


def test_a_dask_sweep_sends_a_few_traces_at_a_time(scheduler: str, tmp_path: Path) -> None:
    """It read and scattered every trace before the first task: a fleet of calls held whole on
    the cluster, and no row until all were sent. Now a few per worker thread are in flight."""
    calls = tmp_path / "calls"
    calls.mkdir()
    for number in range(20):
        shutil.copy(shipped("tiny_deltas" if number % 2 else "barge_in"),
                    calls / f"call_{number:02d}.jsonl.gz")  # fmt: skip
    grid = SweepGrid.of(["forward", "paced"], [40.0], ["tcp"], 2, ["fifo"])
    sources = trace_sources([calls])
    most, rows = 0, []
    with dask_client(scheduler) as client:
        threads = sum(client.nthreads().values())
        for batch in dask_batches(client, sources, grid):
            traces = [key for key in client.who_has() if str(key).startswith("Trace-")]
            most = max(most, len(traces))
            rows.extend(batch)
    # a released trace may linger on its worker until the scheduler forgets it: twice the window
    window = TRACES_IN_FLIGHT_PER_THREAD * threads
    assert 0 < most <= 2 * window < len(sources)
    here = [row for batch in pool_batches(sources, grid) for row in batch]
    pd.testing.assert_frame_equal(runs_frame(rows), runs_frame(here), check_exact=True)


def test_mos_scores_come_back_from_the_workers(scheduler: str, tmp_path: Path) -> None:
    grid = ["tiny_deltas", "--strategy", "preroll", "--thresholds", "100:100:1", "--seeds", "2",
            "--mos"]  # fmt: skip
    assert sweep_cli(*grid, "--out", str(tmp_path / "jobs")) == 0
    assert sweep_cli(*grid, "--dask", scheduler, "--out", str(tmp_path / "dask")) == 0
    runs = pd.read_csv(tmp_path / "dask" / "sweep.csv")
    assert runs["mos_lqo"].between(1.0, 4.6).all()
    for name in ("sweep.csv", "summary.csv"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "jobs" / name).read_bytes()


def test_a_sweep_stopped_early_keeps_its_rows_and_resumes(
    scheduler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole, out = tmp_path / "whole", tmp_path / "cut"
    assert sweep_cli(*TRACES, *GRID_ARGS, "--out", str(whole)) == 0
    # stop after the first chunk's rows, as an interrupted run does, then cut the last line
    sources = trace_sources(TRACES)
    grid = SweepGrid.of(["forward", "preroll", "paced"], [20, 60, 100], ["tcp", "jitter"], 2,
                        ["fifo"])  # fmt: skip
    journal = SweepJournal.open(out, sweep_manifest(sources, grid))
    with dask_client(scheduler) as client:
        batches = dask_batches(client, sources, grid)
        journal.append(next(batches))
        batches.close()  # cancels the chunks still running
    journal.close()  # lets the command below write the directory
    kept = pd.read_csv(out / "sweep.csv")
    assert 0 < len(kept) < GRID_RUNS
    tampered = kept.index[-2]  # a kept row is never computed again: its value stays
    with (out / "sweep.csv").open("a") as file:
        file.write("tiny_deltas,paced,20.0,tcp,fifo,1,12")  # a row cut short by a crash
    text = (out / "sweep.csv").read_text().splitlines(keepends=True)
    marked = text[tampered + 1].split(",")
    column = list(kept.columns).index("concealed_ms")
    marked[column] = "123456.0"
    text[tampered + 1] = ",".join(marked)
    (out / "sweep.csv").write_text("".join(text))
    capsys.readouterr()

    assert sweep_cli(*TRACES, *GRID_ARGS, "--dask", scheduler, "--out", str(out)) == 0
    err = capsys.readouterr().err
    assert f"resuming {out / 'sweep.csv'}: {len(kept)} of {GRID_RUNS} runs" in err
    assert "dropped a last line cut short" in err
    resumed, expected = pd.read_csv(out / "sweep.csv"), pd.read_csv(whole / "sweep.csv")
    differ = resumed.compare(expected)
    assert list(differ.columns.get_level_values(0).unique()) == ["concealed_ms"]
    assert (differ[("concealed_ms", "self")] == 123456.0).all() and len(differ) == 1


def test_a_directory_made_with_other_arguments_is_refused_untouched(
    scheduler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sweep_cli("tiny_deltas", "--strategy", "forward", "--thresholds", "20:40:20",
                     "--seeds", "2", "--dask", scheduler, "--out", str(tmp_path)) == 0  # fmt: skip
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    capsys.readouterr()
    assert sweep_cli("tiny_deltas", "--strategy", "forward", "--thresholds", "20:40:20",
                     "--seeds", "3", "--dask", scheduler, "--out", str(tmp_path)) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "made with other arguments (seeds: [0, 1] there, [0, 1, 2] now)" in err
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_directories_of_traces_are_swept_in_name_order(scheduler: str, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    calls.mkdir()
    shutil.copy(shipped("tiny_deltas"), calls / "call-b.jsonl.gz")
    shutil.copy(shipped("barge_in"), calls / "call-a.jsonl.gz")
    (calls / "notes.txt").write_text("not a trace")
    more = tmp_path / "more"
    more.mkdir()
    shutil.copy(shipped("bursty"), more / "call-c.jsonl.gz")
    out = tmp_path / "out"
    assert sweep_cli(str(calls), str(more), "--strategy", "preroll", "--thresholds", "60:60:1",
                     "--dask", scheduler, "--out", str(out)) == 0  # fmt: skip
    runs = read_runs(out / "sweep.csv")
    assert list(runs["trace"]) == ["call-a", "call-b", "call-c"]
    direct = labkit.sweep([calls, more], ["preroll"], [60], progress=False)
    pd.testing.assert_frame_equal(runs, direct, check_exact=True)


def test_bad_trace_files_are_all_named_and_nothing_runs(
    scheduler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = tmp_path / "calls"
    calls.mkdir()
    shutil.copy(shipped("tiny_deltas"), calls / "good.jsonl.gz")
    whole = shipped("barge_in").read_bytes()
    (calls / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (calls / "text.jsonl").write_text('{"labkit_trace": 1}\nnot json\n')
    write(far_trace(1e12), calls / "far.jsonl")  # valid, beyond the tcp link's reach
    out = tmp_path / "out"
    assert sweep_cli(str(calls), "--strategy", "preroll", "--thresholds", "60:60:1",
                     "--dask", scheduler, "--out", str(out)) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "3 of 4 traces cannot be read or swept" in err
    assert str(calls / "cut.jsonl.gz") in err and str(calls / "text.jsonl") + ", line" in err
    assert f"{calls / 'far.jsonl'}: trace 'far': link path delay" in err
    assert not out.exists()


def test_an_empty_directory_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sweep_cli(str(tmp_path), "--dask", "--out", str(tmp_path / "out")) == 2
    assert "holds no *.jsonl or *.jsonl.gz trace" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("listening", [False, True], ids=["refused", "silent"])
def test_a_scheduler_that_does_not_answer_fails_within_seconds(
    listening: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) and never speaks
        silent.bind(("127.0.0.1", 0))
        if listening:
            silent.listen()
            port = silent.getsockname()[1]
        else:
            port = _free_port()
        address = f"tcp://127.0.0.1:{port}"
        started = time.monotonic()
        code = sweep_cli("tiny_deltas", "--dask", address, "--dask-timeout-s", str(TIMEOUT_S),
                         "--out", str(tmp_path / "out"))  # fmt: skip
        elapsed = time.monotonic() - started
    assert code == 2
    assert f"no Dask scheduler answered at {address} within 2 s" in capsys.readouterr().err
    assert elapsed < TIMEOUT_S + 8
    assert not (tmp_path / "out").exists()


def test_a_service_that_is_not_dask_is_refused_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    # speaks first, as SSH does: Dask reads its banner as a frame count (2.8 EiB to allocate)
    with socket.socket() as banner:
        banner.bind(("127.0.0.1", 0))
        banner.listen()
        address = f"tcp://127.0.0.1:{banner.getsockname()[1]}"

        def greet() -> None:
            with contextlib.suppress(OSError):
                while True:
                    peer, _ = banner.accept()
                    peer.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")

        threading.Thread(target=greet, daemon=True).start()
        code = sweep_cli("tiny_deltas", "--dask", address, "--dask-timeout-s", str(TIMEOUT_S),
                         "--out", str(tmp_path / "out"))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"labkit sweep: what answers at {address} is not a Dask scheduler" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_scheduler_without_workers_is_refused(tmp_path: Path) -> None:
    cluster = distributed.LocalCluster(n_workers=0, protocol="tcp", host="127.0.0.1",
                                       dashboard_address=LOOPBACK_ANY_PORT,
                                       silence_logs=logging.ERROR)  # fmt: skip
    refused = pytest.raises(FleetError, match="has no worker after 1 s; start some with")
    with cluster, refused, dask_client(cluster.scheduler_address, timeout_s=1.0):
        pass


def test_workers_without_labkit_are_refused_by_name(scheduler: str) -> None:
    def hide_labkit(hidden: bool) -> None:  # on each worker: labkit's metadata missing or back
        import importlib.metadata

        real = getattr(importlib.metadata, "_real_version", importlib.metadata.version)
        importlib.metadata._real_version = real  # type: ignore[attr-defined]

        def version(name: str) -> str:
            if name == "labkit":
                raise importlib.metadata.PackageNotFoundError(name)
            return str(real(name))

        importlib.metadata.version = version if hidden else real

    _refused_while_workers_are(scheduler, hide_labkit, r"every Dask worker needs labkit \S+ "
                               r"installed \(tcp://127.0.0.1:\d+: no labkit; ")


def test_workers_running_other_labkit_code_are_refused(scheduler: str) -> None:
    def edit_labkit(edited: bool) -> None:  # on each worker: labkit's source as if edited, or back
        import labkit.sim.sweep_journal as journal

        real = getattr(journal, "_real_code_digest", journal.code_digest)
        journal._real_code_digest = real  # type: ignore[attr-defined]
        journal.code_digest = (lambda: "e" * 64) if edited else real  # type: ignore[assignment]

    _refused_while_workers_are(scheduler, edit_labkit, r"every Dask worker needs the same labkit "
                               r"code and versions of numpy, scipy, pesq as here "
                               r"\(\w{12}\); tcp://127.0.0.1:\d+, ")


def _refused_while_workers_are(scheduler: str, changed: Any, match: str) -> None:
    """``dask_client`` refuses the cluster (FleetError matching ``match``) while each worker is
    ``changed(True)``; ``changed(False)`` puts them back."""
    with distributed.Client(scheduler) as client:
        client.run(changed, True)
        refused = pytest.raises(FleetError, match=match)
        try:
            with refused, dask_client(scheduler, timeout_s=TIMEOUT_S):
                pass
        finally:
            client.run(changed, False)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tiny_deltas", "--dask", "tcp://127.0.0.1:8786", "--jobs", "2"],
         "--jobs sets the workers of a local cluster"),
        (["--dask", "tiny_deltas", "barge_in"],
         "--dask 'tiny_deltas' is not a Dask scheduler address (tcp://HOST:PORT) (put --dask"),
        (["tiny_deltas", "--dask", "--dask-timeout-s", "0"], "--dask-timeout-s must be > 0"),
        (["tiny_deltas", "--dask", "inproc://x:1"],
         "'inproc://x:1': labkit reaches a Dask scheduler over tcp:// or tls://"),
        (["tiny_deltas", "--dask", "tcp://127.0.0.1:99999"],
         "'tcp://127.0.0.1:99999': a port is 1 to 65535"),
    ],
)
def test_bad_dask_arguments_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sweep_cli(*argv, "--out", str(tmp_path / "out")) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_interrupted_sweep_keeps_whole_rows_of_real_runs(scheduler: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "labkit", "sweep", "long_conversation", "--thresholds",
            "20:200:2", "--seeds", "10", "--dask", scheduler, "--out", str(out)]  # fmt: skip
    sweep = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not _rows_in(out / "sweep.csv") and time.monotonic() < deadline:
            time.sleep(0.05)
        sweep.send_signal(signal.SIGINT)
        _, err = sweep.communicate(timeout=60)
    finally:
        sweep.kill()
    assert sweep.returncode == 130, err
    kept = read_runs(out / "sweep.csv")
    assert 0 < len(kept) < 5 * 91 * 10
    assert f"interrupted; {len(kept)} of 4550 runs are in" in err
    trace = read(shipped("long_conversation"))
    for row in kept.sample(3, random_state=0).to_dict("records"):
        run = (row["strategy"], row["threshold_ms"], row["link"], row["playout"], row["seed"])
        direct = simulate(trace, *run).metrics.as_row()
        assert pd.Series({key: row[key] for key in direct}).equals(pd.Series(direct)), run


def _rows_in(path: Path) -> bool:
    return path.exists() and path.read_bytes().count(b"\n") > 1

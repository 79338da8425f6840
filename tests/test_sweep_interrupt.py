"""Ctrl-C stops a sweep at once, whatever runs it: no waiting for chunks whose rows no one reads,
and no worker tracebacks, even while a local Dask cluster starts (labkit/sim/processes.py,
labkit/sim/local_cluster.py, labkit/cli/__init__.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

STARTED_S = 8.0  # the workers are busy with their first chunks by then
STOPPED_WITHIN_S = 15.0  # a chunk of these runs takes far longer


def _interrupt(engine: list[str], out: Path,
               when_cluster_starts: bool = False) -> tuple[int, str, float]:  # fmt: skip
    """Ctrl-C a sweep STARTED_S after it starts, or as soon as its local Dask cluster's first
    worker process appears (still importing Dask); its return code, stderr and how long it took
    to stop. Every process it started, the cluster's session too, must end."""
    argv = [sys.executable, "-m", "labkit", "sweep", "long_conversation", "--strategy", "paced",
            "--thresholds", "20:200:10", "--seeds", "20", "--mos", *engine, "--out", str(out)]
    sweep = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # fmt: skip
    cluster = None
    try:
        if when_cluster_starts:
            _descendant_running(sweep.pid, b"spawn_main")  # a worker, spawned by Python
        else:
            time.sleep(STARTED_S)
        if "--dask" in engine:
            cluster = _descendant_running(sweep.pid, b"labkit.sim.local_cluster")
        interrupted = time.monotonic()
        os.killpg(sweep.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
        _, err = sweep.communicate(timeout=120)
        took = time.monotonic() - interrupted
        for group in (sweep.pid, cluster):
            if group is not None:
                _wait_for_group_to_end(group)
    finally:
        for group in (sweep.pid, cluster):
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.killpg(group, signal.SIGKILL)  # type: ignore[arg-type]
        sweep.kill()
    return sweep.returncode, err, took


def _descendant_running(root: int, command: bytes) -> int:
    """The pid of a process descended from ``root`` whose command line holds ``command``, once
    one runs."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        parents, commands = {}, {}
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                pid = int(entry.name)
                parents[pid] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                commands[pid] = (entry / "cmdline").read_bytes()
        for pid, line in commands.items():
            ancestor = parents.get(pid)
            while command in line and ancestor not in (None, 0, 1):
                if ancestor == root:
                    return pid
                ancestor = parents.get(ancestor)  # type: ignore[arg-type]
        time.sleep(0.02)
    raise AssertionError(f"no process under {root} ran {command!r} within 30 s")


def _wait_for_group_to_end(group: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError("worker processes outlived the sweep")


@pytest.mark.parametrize("engine", [["--jobs", "2"], ["--dask", "--jobs", "2"]],
                         ids=["jobs", "dask"])  # fmt: skip
def test_ctrl_c_stops_a_sweep_at_once_with_one_line(engine: list[str], tmp_path: Path) -> None:
    code, err, took = _interrupt(engine, tmp_path / "out")
    assert code == 130, err
    assert took < STOPPED_WITHIN_S, f"stopped {took:.1f} s after Ctrl-C"
    assert "Traceback" not in err, err
    assert "labkit sweep: interrupted; " in err.splitlines()[-1]


def test_ctrl_c_while_a_local_dask_cluster_starts_is_one_line(tmp_path: Path) -> None:
    """Its workers, still importing Dask, never see the Ctrl-C: the cluster runs in a session
    of its own, and the sweep kills it (it cannot be closed before it has started)."""
    code, err, took = _interrupt(["--dask", "--jobs", "2"], tmp_path / "out",
                                 when_cluster_starts=True)  # fmt: skip
    assert code == 130, err
    assert took < STOPPED_WITHIN_S, f"stopped {took:.1f} s after Ctrl-C"
    assert "Traceback" not in err and "Error" not in err, err
    assert "interrupted" in err.splitlines()[-1]


def test_a_killed_sweep_leaves_no_local_cluster_behind(tmp_path: Path) -> None:
    """The cluster's process reads its stdin until the sweep's end of it closes, which a kill
    closes too: it then closes the cluster and its workers."""
    argv = [sys.executable, "-m", "labkit", "sweep", "long_conversation", "--strategy", "paced",
            "--thresholds", "20:200:10", "--dask", "--jobs", "2", "--out", str(tmp_path)]
    sweep = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)  # fmt: skip
    cluster = None
    try:
        _descendant_running(sweep.pid, b"spawn_main")  # the cluster is starting its workers
        cluster = _descendant_running(sweep.pid, b"labkit.sim.local_cluster")
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait(timeout=10)
        _wait_for_group_to_end(cluster)
    finally:
        for group in (sweep.pid, cluster):
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.killpg(group, signal.SIGKILL)  # type: ignore[arg-type]


def test_ctrl_c_while_the_commands_load_is_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    import labkit.cli

    def interrupted_import() -> None:  # the commands' modules take a second or two to import
        raise KeyboardInterrupt

    monkeypatch.setattr(labkit.cli, "build_parser", interrupted_import)
    assert labkit.cli.main(["sweep", "tiny_deltas"]) == 130
    assert capsys.readouterr().err == "labkit: interrupted\n"


def test_a_ctrl_c_dropped_inside_a_destructor_is_still_remembered(
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Python drops an exception raised in ``__del__`` (Dask's futures release themselves
    there): the sweep's loop must still learn of the Ctrl-C."""
    from labkit.cli.sweep import ctrl_c_remembered

    class ReleasedOnCollection:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)  # the Ctrl-C lands while this runs
            time.sleep(0.01)  # Python runs the handler here, and drops its KeyboardInterrupt

    dropped: list[type[BaseException] | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda raised: dropped.append(raised.exc_type))
    with ctrl_c_remembered() as interrupted:
        assert not interrupted()
        ReleasedOnCollection()  # collected at once
        assert interrupted()
    assert dropped == [KeyboardInterrupt]  # Python dropped it, as it drops Dask's
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with ctrl_c_remembered() as interrupted, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)  # anywhere else it interrupts as usual
        time.sleep(1)

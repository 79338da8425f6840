"""Ctrl-C stops a sweep at once, whatever runs it: no waiting for chunks whose rows no one reads,
and no worker tracebacks (labkit/sim/processes.py, labkit/cli/__init__.py)."""

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


def _interrupt(engine: list[str], out: Path) -> tuple[int, str, float]:
    argv = [sys.executable, "-m", "labkit", "sweep", "long_conversation", "--strategy", "paced",
            "--thresholds", "20:200:10", "--seeds", "20", "--mos", *engine, "--out", str(out)]
    sweep = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # fmt: skip
    try:
        time.sleep(STARTED_S)
        interrupted = time.monotonic()
        os.killpg(sweep.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
        _, err = sweep.communicate(timeout=120)
        took = time.monotonic() - interrupted
        _wait_for_group_to_end(sweep.pid)
    finally:
        sweep.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sweep.pid, signal.SIGKILL)
    return sweep.returncode, err, took


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


def test_ctrl_c_while_the_commands_load_is_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    import labkit.cli

    def interrupted_import() -> None:  # the commands' modules take a second or two to import
        raise KeyboardInterrupt

    monkeypatch.setattr(labkit.cli, "build_parser", interrupted_import)
    assert labkit.cli.main(["sweep", "tiny_deltas"]) == 130
    assert capsys.readouterr().err == "labkit: interrupted\n"

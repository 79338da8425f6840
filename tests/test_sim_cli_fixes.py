"""simulate, sweep and synth: a far-off event refused at once, playout parameters named, one-line
refusals, one threshold rule, defaults shown in --help, synth's defaults from any directory."""

from __future__ import annotations

import argparse
import importlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import pytest

import labkit
import labkit.cli.lessons
from labkit.cli import build_parser, main
from labkit.cli.refusal import Refusal
from labkit.sim import simulate
from labkit.sim.links import StallLink
from labkit.sim.params import MAX_DRAWN_POINTS
from labkit.sim.sender_loop import SenderLoop
from labkit.sim.simulator import simulate_event_driven
from labkit.sim.sweep_runs import SweepGrid
from labkit.traces import Trace, shipped, write
from labkit.traces.event import audio_event, item_event, make_header, turn_event

REPO = Path(labkit.cli.lessons.__file__).resolve().parents[2]
SUBPROCESS_TIMEOUT_S = 60  # the refusal takes a second; the defect spun for hours


def far_trace(last_ms: float) -> Trace:
    """A valid trace: an answer at 0 ms, and its next delta and end at ``last_ms``."""
    events = [turn_event("turn_started", 0, "r1"),
              audio_event(0, "r1", "i1", 0, b"\x7f" * 800),
              audio_event(last_ms, "r1", "i1", 0, b"\x7f" * 800),
              item_event("audio_done", last_ms, "i1", 0),
              turn_event("turn_ended", last_ms, "r1")]  # fmt: skip
    return Trace(make_header("synthetic", "far"), events)


@pytest.fixture
def no_stepping(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail at once if a run steps through the sender's pauses or the path's freezes: a trace
    beyond reach must be refused before either starts (it stepped for hours)."""

    def stepped(*_: Any) -> NoReturn:
        raise AssertionError("the run started stepping instead of refusing")

    monkeypatch.setattr(SenderLoop, "_after_stalls", stepped)
    monkeypatch.setattr(StallLink, "_delay_ms", stepped)


# --- 1. a trace with a far-off event is refused before any event is handled ---


@pytest.mark.usefixtures("no_stepping")
@pytest.mark.parametrize("last_ms", [1e12, 1e300])
@pytest.mark.parametrize(("link", "params", "said"), [
    ("tcp", None, "link path delay: tau_ms=500 samples the path every 31.25 ms"),
    ("stalls", {"rate_per_s": 0.2}, "link 'stalls': rate_per_s=0.2 freezes the path"),
    ("ideal", {"stall_rate_per_s": 1.0, "stall_ms": 5.0}, "sender loop: stall_rate_per_s=1"),
])  # fmt: skip
def test_a_trace_beyond_the_worlds_reach_is_refused_before_any_event(
    last_ms: float, link: str, params: dict[str, float] | None, said: str
) -> None:
    trace = far_trace(last_ms)
    for run in (simulate, simulate_event_driven):
        with pytest.raises(ValueError, match=rf"^the trace: {said}.* takes more than 4,000,000"):
            run(trace, "paced", 50, link, link_params=params)


def test_a_far_but_reachable_trace_still_runs() -> None:
    """The rule refuses only what would draw more than MAX_DRAWN_POINTS (1e9 ms on ideal)."""
    assert simulate(far_trace(1e9), "paced", 50, "ideal").metrics.played_bytes == 1600
    assert MAX_DRAWN_POINTS == 4_000_000


@pytest.mark.usefixtures("no_stepping")
def test_simulate_refuses_a_far_event_naming_the_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "far.jsonl"
    write(far_trace(1e300), path)
    assert main(["simulate", str(path), "--no-mos"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("labkit simulate: trace 'far': link path delay: tau_ms=500")
    assert err.count("\n") == 1


def test_simulate_refuses_a_far_event_in_a_second(tmp_path: Path) -> None:
    """End to end, in its own process: the defect ran for minutes (1e12) or for ever (1e300)."""
    path = tmp_path / "far.jsonl"
    write(far_trace(1e12), path)
    done = subprocess.run([sys.executable, "-m", "labkit", "simulate", str(path), "--no-mos"],
                          capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)  # fmt: skip
    assert done.returncode == 2
    assert "takes more than 4,000,000 points" in done.stderr


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_sweep_names_every_far_trace_before_any_run(
    jobs: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sweep refused a far-off trace at its first run: after the runs of the traces before
    it (hours, in a fleet), with a journal that then refused the sweep without that trace. Now
    every trace is checked against every link before any run, and nothing is written."""
    calls = tmp_path / "calls"
    calls.mkdir()
    write(far_trace(1e12), calls / "far.jsonl")
    shutil.copy(shipped("tiny_deltas"), calls / "good.jsonl.gz")
    write(far_trace(1e9), calls / "reachable.jsonl")  # reachable on ideal, not on tcp
    out = tmp_path / "out"
    argv = ["sweep", str(calls), "--strategy", "forward", "--thresholds", "50", "--seeds", "1",
            "--link", "ideal,tcp", "--jobs", str(jobs), "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "labkit sweep: 2 of 3 traces cannot be swept:\n" in err
    assert f"  {calls / 'far.jsonl'}: trace 'far': link path delay: tau_ms=500" in err
    assert f"  {calls / 'reachable.jsonl'}: trace 'reachable': link path delay" in err
    assert not out.exists()
    with pytest.raises(ValueError, match=r"^1 of 2 traces cannot be swept:\n  trace 'far'"):
        labkit.sweep([shipped("tiny_deltas"), far_trace(1e12)], "forward", 50, progress=False)
    runs = labkit.sweep([shipped("tiny_deltas"), far_trace(1e9)], "forward", 50, "ideal",
                        progress=False)  # fmt: skip
    assert len(runs) == 2  # within reach of every link asked for: it runs


# --- 2. a playout parameter the playout does not take: named, before any run ---


def test_simulate_names_the_playouts_a_parameter_belongs_to(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep_module = importlib.import_module("labkit.sim.sweep")  # labkit.sim.sweep is a function
    monkeypatch.setattr(sweep_module, "load_trace", lambda *_: pytest.fail("read the trace"))
    assert main(["simulate", "tiny_deltas", "--playout-param", "depth_ms=80"]) == 2
    assert capsys.readouterr().err == (
        "labkit simulate: playout 'fifo' takes no parameter 'depth_ms'; it takes none "
        "(depth_ms is a parameter of prefetch)\n"
    )
    assert main(["simulate", "tiny_deltas", "--playout", "prefetch", "--playout-param",
                 "phase=3"]) == 2  # fmt: skip
    assert "it takes depth_ms, max_wait_ms (no playout takes phase)" in capsys.readouterr().err


def test_the_help_example_of_a_playout_parameter_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "tiny_deltas", "--playout", "prefetch", "--playout-param",
                 "depth_ms=80", "--json", "--no-mos"]) == 0  # fmt: skip
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    assert "e.g. depth_ms=80 with --playout prefetch" in " ".join(capsys.readouterr().out.split())


def test_sweep_refuses_a_playout_parameter_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["sweep", "tiny_deltas", "--playout", "prefetch,fifo", "--playout-param",
            "depth_ms=80", "--seeds", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == ("labkit sweep: playout 'fifo' takes no parameter 'depth_ms'; it takes none "
                   "(depth_ms is a parameter of prefetch)\n")  # no progress bar before it
    assert not out.exists()
    with pytest.raises(ValueError, match="link 'tcp' takes no parameter 'mean'"):
        SweepGrid.of("forward", 50, "tcp", 1, "fifo", link_params={"mean": 80.0})


# --- 3. --dask before the traces ---


@pytest.mark.parametrize(("address", "said"), [
    ("tiny_deltas", "'tiny_deltas' is not a Dask scheduler address; put --dask after the "
                    "traces, or give an address (tcp://host:8786)"),
    ("tcp://10.0.0.1:8786", "the following arguments are required: TRACE_OR_DIR"),
])  # fmt: skip
def test_sweep_says_when_dask_took_the_trace_as_its_address(
    address: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sw11"
    assert main(["sweep", "--dask", address, "--seeds", "1", "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"labkit sweep: {said}\n"
    assert not out.exists()


# --- 4. synth's defaults: the checkout's data/, or a hint ---


def test_synth_defaults_to_the_checkouts_data_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["synth", "traces"])
    assert args.audio == REPO / "data" / "audio"
    assert args.out == REPO / "data" / "traces"
    assert build_parser().parse_args(["synth", "speech"]).out == REPO / "data" / "audio"


def test_synth_outside_a_checkout_says_where_to_run_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(labkit.cli.lessons, "REPO_DIR", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Refusal) as refusal:
        main(["synth", "traces"])
    assert refusal.value.code == 2
    assert capsys.readouterr().err == (
        f"labkit synth traces: data/audio/phrases.json: no phrase index under {tmp_path}; run "
        "from the repository root or pass --audio/--out\n"
    )
    assert not (tmp_path / "data").exists()


# --- 5. one threshold rule for simulate and sweep ---


@pytest.mark.parametrize("value", ["1e12", "600000.5", "-1", "nan", "inf"])
def test_simulate_takes_thresholds_by_the_sweeps_rule(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["simulate", "tiny_deltas", "--threshold-ms", value])
    assert refused.value.code == 2
    assert capsys.readouterr().err.startswith(
        "labkit simulate: error: argument --threshold-ms: threshold_ms must be a finite number of "
        "ms from 0 to "
        "600000 (ten minutes of buffer, Twilio's own limit)"
    )
    assert build_parser().parse_args(["simulate", "t", "--threshold-ms", "600000"]).threshold_ms


# --- 6. a flag's bad value is one line ---


def test_a_flags_bad_value_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "f"
    a_file.write_text("mine")
    for argv, said in [
        (["simulate", "tiny_deltas", "--seed", "-1"],
         "labkit simulate: error: argument --seed: must be 0 or more, got -1"),
        (["simulate", "tiny_deltas", "--threshold-ms", "x"],
         "labkit simulate: error: argument --threshold-ms: not a number of ms: 'x'"),
        (["sweep", "tiny_deltas", "--out", str(a_file)],
         f"labkit sweep: error: argument --out: {a_file} is not a directory"),
        (["sweep", "tiny_deltas", "--seeds", "x", "--out", str(tmp_path / "o")],
         "labkit sweep: error: argument --seeds: invalid int value: 'x'"),
        (["synth", "traces", "--out", str(a_file)],
         f"labkit synth traces: error: argument --out: {a_file} is not a directory"),
        (["synth", "speech", "--out", str(a_file)],
         f"labkit synth speech: error: argument --out: {a_file} is not a directory"),
    ]:  # fmt: skip
        with pytest.raises(SystemExit) as refused:
            main(argv)
        assert refused.value.code == 2
        assert capsys.readouterr().err == said + "\n", argv
    assert a_file.read_text() == "mine"


# --- 7. every default is in --help ---


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:  # argparse lists subcommands nowhere else
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


@pytest.mark.parametrize("command", ["simulate", "sweep", "synth speech", "synth traces"])
def test_every_flag_with_a_default_shows_it_in_help(command: str) -> None:
    parser = build_parser()
    for word in command.split():
        parser = _subcommands(parser)[word]
    for action in parser._actions:
        if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS):
            assert "default" in (action.help or ""), (command, action.option_strings)
    text = " ".join(parser.format_help().split())
    expected = {"simulate": ["(default 50)", "(default forward)", "(default tcp)"],
                "sweep": ["default 20:200:10", "default 1)", "(default 5)"],
                "synth speech": [f"(default {REPO / 'data' / 'audio'})"],
                "synth traces": [f"(default {REPO / 'data' / 'traces'})"]}  # fmt: skip
    for said in expected[command]:
        assert said in text, (command, said)


"""Sweeps and the simulate/sweep commands: tidy rows, same numbers as simulate, clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import labkit
from labkit.cli import main
from labkit.cli.sweep import parse_thresholds
from labkit.sim import simulate
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


def test_sweep_in_two_processes_equals_sweep_in_one() -> None:
    args = (["tiny_deltas"], ["forward", "preroll"], [30, 60, 90], ["correlated"])
    one = labkit.sweep(*args, seeds=1, jobs=1, progress=False)
    two = labkit.sweep(*args, seeds=1, jobs=2, progress=False)
    assert one.equals(two)


def test_simulate_command_prints_json_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "realtime_jitter", "--strategy", "rechunk", "--threshold-ms", "50",
                 "--link", "stalls", "--playout", "prefetch", "--seed", "3", "--json"])  # fmt: skip
    assert code == 0
    row = json.loads(capsys.readouterr().out)
    for key in ("messages", "audio_ms", "played_ms", "concealed_ms", "concealment_events",
                "oracle_min_delay_ms", "mean_added_latency_ms"):  # fmt: skip
        assert key in row
    assert row["audio_ms"] > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["simulate", "tiny_deltas", "--strategy", "bogus"], "unknown strategy 'bogus'"),
        (["simulate", "no_such_trace"], "no_such_trace"),
        (["sweep", "tiny_deltas", "--thresholds", "20:x:5", "--out", "unused"], "START:STOP:STEP"),
        (["sweep", "tiny_deltas", "--strategy", "forward,nope", "--out", "unused"], "'nope'"),
    ],
)
def test_bad_command_input_exits_2_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_sweep_command_writes_csv_and_plots(tmp_path: Path) -> None:
    code = main(["sweep", "barge_in", "--strategy", "forward,preroll", "--thresholds", "20:60:20",
                 "--link", "jitter", "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    assert (tmp_path / "sweep.csv").read_text().count("\n") == 1 + 2 * 3
    assert len(list(tmp_path.glob("*.png"))) == 3


def test_thresholds_include_stop() -> None:
    assert parse_thresholds("20:200:1")[-1] == 200 and len(parse_thresholds("20:200:1")) == 181


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

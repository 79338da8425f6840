"""A fleet of calls pooled: each call's rates over its seeds, then means and intervals over calls,
and each strategy against forwarding call by call (labkit/sim/fleet_summary.py, `labkit sweep`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import labkit
from labkit.cli import main
from labkit.sim.fleet_summary import describe_best, fewest_gaps, per_call, summarize_fleet

SETTING = {"threshold_ms": 60.0, "link": "tcp", "playout": "fifo"}
T_975 = {2: float(stats.t.ppf(0.975, 2)), 3: float(stats.t.ppf(0.975, 3))}


def _run(trace: str, strategy: str, seed: int, *, audio_min: float, gaps: float,
         onset: float = 0.0) -> dict[str, object]:  # fmt: skip
    """A sweep row with what the fleet reads: ``gaps`` ms of silence per s of audio, ``onset``
    word-start gaps per answer."""
    return {"trace": trace, "strategy": strategy, **SETTING, "seed": seed,
            "audio_ms": audio_min * 60_000.0, "gap_ms_per_audio_s": gaps,
            "onset_gaps_per_answer": onset, "mean_time_to_first_audio_ms": 200.0}  # fmt: skip


def _fleet_runs() -> pd.DataFrame:
    """Three calls of 1, 2 and 4 minutes, two seeds each; preroll halves forwarding's gaps in
    every call."""
    rows = []
    for trace, minutes, gaps in (("a", 1.0, (1.0, 3.0)), ("b", 2.0, (0.0, 0.0)),
                                 ("c", 4.0, (2.0, 3.0))):  # fmt: skip
        for seed, rate in enumerate(gaps):
            rows.append(_run(trace, "forward", seed, audio_min=minutes, gaps=rate,
                             onset=0.5 if rate else 0.0))  # fmt: skip
            rows.append(_run(trace, "preroll", seed, audio_min=minutes, gaps=rate / 2,
                             onset=0.25 if rate else 0.0))  # fmt: skip
    return pd.DataFrame(rows)


def test_a_runs_rates_are_its_gaps_per_second_of_audio_and_per_answer() -> None:
    runs = labkit.sweep(["tiny_deltas_call", "barge_in"], "rechunk", 50, seeds=2, progress=False)
    assert runs["gap_ms_per_audio_s"].to_numpy() == pytest.approx(
        (runs["concealed_ms"] / (runs["audio_ms"] / 1000)).to_numpy())
    assert runs["onset_gaps_per_answer"].to_numpy() == pytest.approx(
        (runs["onset_concealment_events"] / runs["items"]).to_numpy())
    assert (runs["gap_ms_per_audio_s"] > 0).any()


def test_each_call_is_its_rates_averaged_over_its_seeds() -> None:
    calls = per_call(_fleet_runs()).set_index(["trace", "strategy"])
    assert calls.loc[("a", "forward"), "gap_ms_per_audio_s"] == 2.0
    assert calls.loc[("c", "preroll"), "gap_ms_per_audio_s"] == 1.25
    assert calls.loc[("c", "preroll"), "onset_gaps_per_answer"] == 0.25
    assert calls.loc[("c", "forward"), "audio_min"] == 4.0
    assert calls.loc[("b", "forward"), "n_seeds"] == 2


def test_the_fleet_is_the_mean_over_calls_with_a_t_interval_over_calls() -> None:
    fleet = summarize_fleet(_fleet_runs()).set_index("strategy")
    per_call_gaps = np.array([2.0, 0.0, 2.5])  # forwarding's three calls
    half = T_975[2] * per_call_gaps.std(ddof=1) / math.sqrt(3)
    row = fleet.loc["forward"]
    assert row["n_calls"] == 3 and row["seeds_per_call"] == 2 and row["audio_min"] == 7.0
    assert row["gap_ms_per_audio_s_mean"] == pytest.approx(1.5)
    assert row["gap_ms_per_audio_s_ci_high"] == pytest.approx(1.5 + half)
    assert row["gap_ms_per_audio_s_ci_low"] == 0.0  # 1.5 - half < 0: cut to what it can be
    assert row["gap_ms_per_audio_s_median"] == 2.0
    assert row["gap_ms_per_audio_s_p90"] == pytest.approx(2.4)  # 2 + 0.8 * 0.5
    assert row["gap_ms_per_audio_s_calls_above_0"] == 2
    assert row["mean_time_to_first_audio_ms_mean"] == 200.0
    assert row["worst_call"] == "c"


def test_a_strategy_is_compared_with_forwarding_call_by_call() -> None:
    fleet = summarize_fleet(_fleet_runs()).set_index("strategy")
    differences = np.array([-1.0, 0.0, -1.25])
    half = T_975[2] * differences.std(ddof=1) / math.sqrt(3)
    row = fleet.loc["preroll"]
    assert row["gap_ms_per_audio_s_vs_forward_mean"] == pytest.approx(-0.75)
    assert row["gap_ms_per_audio_s_vs_forward_ci_low"] == pytest.approx(-0.75 - half)
    assert row["gap_ms_per_audio_s_vs_forward_ci_high"] == pytest.approx(-0.75 + half)
    assert row["gap_ms_per_audio_s_vs_forward_verdict"] == "no difference shown"  # b: no gaps
    assert row["onset_gaps_per_answer_vs_forward_verdict"] == "no difference shown"
    assert fleet.loc["forward", "gap_ms_per_audio_s_vs_forward_verdict"] == ""
    assert math.isnan(fleet.loc["forward", "gap_ms_per_audio_s_vs_forward_mean"])


def test_a_difference_every_call_shows_is_named_in_the_rates_words() -> None:
    """Four calls with gaps, each 0.4-0.6 ms per s fewer: the calls' own rates differ so much
    that the two strategies' intervals overlap, but the paired interval lies below zero."""
    rows = []
    for trace, gaps, less in (("a", 1.0, 0.5), ("b", 6.0, 0.6), ("c", 0.8, 0.4), ("d", 3.0, 0.5)):
        rows.append(_run(trace, "forward", 0, audio_min=1.0, gaps=gaps, onset=0.5))
        rows.append(_run(trace, "preroll", 0, audio_min=1.0, gaps=gaps - less, onset=0.25))
    fleet = summarize_fleet(pd.DataFrame(rows)).set_index("strategy")
    assert fleet.loc["preroll", "gap_ms_per_audio_s_ci_high"] > (
        fleet.loc["forward", "gap_ms_per_audio_s_ci_low"])  # overlapping
    assert fleet.loc["preroll", "gap_ms_per_audio_s_vs_forward_verdict"] == "less"
    assert fleet.loc["preroll", "onset_gaps_per_answer_vs_forward_verdict"] == "fewer"


def test_a_call_with_nothing_to_divide_by_is_left_out_of_that_rate_only() -> None:
    runs = _fleet_runs()
    runs.loc[runs["trace"] == "b", "onset_gaps_per_answer"] = math.nan  # no answer in call b
    fleet = summarize_fleet(runs).set_index("strategy")
    forward = fleet.loc["forward"]
    assert forward["n_calls"] == 3
    assert forward["gap_ms_per_audio_s_mean"] == pytest.approx(1.5)  # b still counts
    assert forward["onset_gaps_per_answer_mean"] == pytest.approx(0.5)  # a and c
    assert forward["onset_gaps_per_answer_calls_above_0"] == 2


def test_without_forwarding_there_is_nothing_to_compare_with() -> None:
    runs = _fleet_runs()
    fleet = summarize_fleet(runs[runs["strategy"] == "preroll"])
    assert not [column for column in fleet.columns if "_vs_" in column]
    assert summarize_fleet(runs, baseline="preroll").filter(like="_vs_preroll_").shape[1] == 8


def test_a_misspelt_or_missing_column_is_named() -> None:
    with pytest.raises(ValueError, match="summarize_fleet: no column 'audio_ms' in the runs"):
        summarize_fleet(_fleet_runs().drop(columns="audio_ms"))


def test_the_sweep_command_pools_two_or_more_calls_into_fleet_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sweep", "tiny_deltas_call", "bursty", "stalls", "--strategy", "forward,preroll",
            "--thresholds", "40:120:80", "--seeds", "3", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    said = capsys.readouterr().out
    runs = pd.read_csv(tmp_path / "sweep.csv")
    written = pd.read_csv(tmp_path / "fleet.csv")
    pd.testing.assert_frame_equal(written, pd.read_csv(
        pd.io.common.StringIO(summarize_fleet(runs).to_csv(index=False))))  # fmt: skip
    assert len(written) == 2 * 2 and (written["n_calls"] == 3).all()
    # by hand: each call's silence per minute of its audio, averaged over seeds, then over calls
    preroll = runs.query("strategy == 'preroll' and threshold_ms == 120")
    by_call = (preroll["concealed_ms"] / preroll["audio_ms"] * 1000).groupby(preroll["trace"])
    row = written.query("strategy == 'preroll' and threshold_ms == 120")
    assert row["gap_ms_per_audio_s_mean"].item() == pytest.approx(by_call.mean().mean())
    assert ", 4 settings pooled over 3 calls to " in said
    assert said.count("\nfleet tcp/fifo: least silence in gaps with ") == 1
    assert (tmp_path / "fleet_gap_ms_per_audio_s_fifo.png").stat().st_size > 10_000
    assert (tmp_path / "fleet_onset_gaps_per_answer_fifo.png").exists()
    before = (tmp_path / "fleet.csv").read_bytes()
    assert main(argv) == 0  # a rerun resumes: nothing to run, the same fleet.csv
    assert (tmp_path / "fleet.csv").read_bytes() == before


def test_one_call_has_no_fleet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "barge_in", "--strategy", "forward", "--thresholds", "50",
                 "--out", str(tmp_path), "--no-plots"]) == 0  # fmt: skip
    assert not (tmp_path / "fleet.csv").exists()
    said = capsys.readouterr().out
    assert "pooled" not in said and "\nfleet " not in said


def test_a_fleet_csv_with_no_manifest_is_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "fleet.csv").write_text("somebody's fleet\n")
    assert main(["sweep", "barge_in", "tiny_deltas", "--strategy", "forward", "--thresholds",
                 "50", "--out", str(tmp_path)]) == 2  # fmt: skip
    assert "fleet.csv exists with no sweep-manifest.json beside it" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fleet.csv"]
    assert (tmp_path / "fleet.csv").read_text() == "somebody's fleet\n"


def test_the_closing_line_says_what_the_threshold_is_to_the_best_strategy() -> None:
    runs = _fleet_runs()
    fleet = summarize_fleet(runs)
    best = fewest_gaps(fleet)
    assert len(best) == 1 and best["strategy"].item() == "preroll"
    assert describe_best(best.iloc[0]) == (
        "tcp/fifo: least silence in gaps with preroll at 60 ms (pre-roll held per answer): 0.75 "
        "[0.00, 2.39] ms per s of audio over 3 calls, 2 with gaps; vs forward: no difference "
        "shown (-0.75 ms per s)")  # fmt: skip
    quiet = runs.assign(gap_ms_per_audio_s=runs["gap_ms_per_audio_s"].where(
        runs["strategy"] == "preroll", 0.0))  # forwarding now has no gaps at all
    line = describe_best(fewest_gaps(summarize_fleet(quiet)).iloc[0])
    assert line.startswith("tcp/fifo: least silence in gaps with forward (it ignores the "
                           "threshold): 0.00 [0.00, 0.00] ms per s of audio over 3 calls, 0 with "
                           "gaps")  # fmt: skip
    assert "vs forward" not in line


def test_a_fleet_whose_gaps_few_calls_carry_is_said_to_need_more_calls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Of four calls only long_conversation has gaps with forwarding on tcp at these seeds: the
    mean over calls rests on one call, as lesson 09's thin seeds do."""
    argv = ["sweep", "bursty", "large_deltas", "long_conversation", "multi_turn", "--strategy",
            "forward", "--thresholds", "50", "--seeds", "2", "--no-plots", "--out", str(tmp_path)]
    assert main(argv) == 0
    fleet = pd.read_csv(tmp_path / "fleet.csv")
    assert fleet["gap_ms_per_audio_s_calls_above_0"].item() == 1 and fleet["n_calls"].item() == 4
    said = capsys.readouterr().err
    assert ("in 1 of 1 settings of fleet.csv fewer than half the calls have gaps "
            "(gap_ms_per_audio_s_calls_above_0); there the interval over calls is too "
            "short") in said  # fmt: skip


def test_the_closing_line_names_strategies_as_low_and_skips_a_world_without_values() -> None:
    runs = _fleet_runs().assign(gap_ms_per_audio_s=0.0)  # no call has gaps, whatever the strategy
    best = fewest_gaps(summarize_fleet(runs))
    assert describe_best(best.iloc[0]) == (
        "tcp/fifo: least silence in gaps with forward (it ignores the threshold): 0.00 [0.00, "
        "0.00] ms per s of audio over 3 calls, 0 with gaps; as low: preroll")  # fmt: skip
    nothing = runs.assign(gap_ms_per_audio_s=math.nan)  # no call has audio: nothing to rank
    assert fewest_gaps(summarize_fleet(nothing)).empty


def test_a_fleet_can_draw_its_own_figures_without_one_per_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A thousand calls would draw two thousand per-call PNGs first; --plots fleet draws two."""
    argv = ["sweep", "barge_in", "tiny_deltas", "--strategy", "forward,rechunk", "--thresholds",
            "50", "--link", "tcp", "--playout", "fifo,frame_clock"]  # fmt: skip
    assert main([*argv, "--plots", "fleet", "--out", str(tmp_path / "fleet")]) == 0
    assert sorted(path.name for path in (tmp_path / "fleet").glob("*.png")) == [
        f"fleet_{rate}_{playout}.png" for rate in ("gap_ms_per_audio_s", "onset_gaps_per_answer")
        for playout in ("fifo", "frame_clock")]  # fmt: skip
    assert "and 4 plots\n" in capsys.readouterr().out
    assert main([*argv[:2], *argv[3:], "--plots", "fleet", "--out", str(tmp_path / "one")]) == 0
    assert "and no plots (--plots fleet, and one trace: no calls to pool)" in (
        capsys.readouterr().out)
    assert not list((tmp_path / "one").glob("*.png"))
    with pytest.raises(SystemExit) as refused:
        main([*argv, "--plots", "none", "--no-plots", "--out", str(tmp_path / "x")])
    assert refused.value.code == 2
    assert "argument --no-plots: not allowed with argument --plots" in capsys.readouterr().err


def test_a_strategy_with_no_call_in_common_with_forwarding_gets_no_verdict() -> None:
    """Word-start gaps per answer known for preroll only in call a, for forwarding only in b:
    nothing pairs, so no difference and no verdict (and no error after a finished sweep)."""
    runs = _fleet_runs()
    unknown = ((runs["strategy"] == "preroll") & (runs["trace"] != "a")) | (
        (runs["strategy"] == "forward") & (runs["trace"] != "b"))
    runs.loc[unknown, "onset_gaps_per_answer"] = math.nan
    preroll = summarize_fleet(runs).set_index("strategy").loc["preroll"]
    assert preroll["onset_gaps_per_answer_vs_forward_verdict"] == ""
    assert math.isnan(preroll["onset_gaps_per_answer_vs_forward_mean"])
    assert preroll["gap_ms_per_audio_s_vs_forward_mean"] == pytest.approx(-0.75)  # still paired

"""Intervals over seeds: cut to what a metric can be, never a difference (sim/summary.py)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from labkit.sim.compare import intervals
from labkit.sim.summary import (
    MOS_LQO_RANGE,
    mean_interval,
    natural_range,
    paired_difference,
    summarize,
)

RARE_GAPS_MS = [0.0] * 18 + [5.0, 3.0]  # gaps in 2 of 20 seeds: the t interval reaches below 0


def runs(metric: str, values: list[float], strategy: str = "forward") -> pd.DataFrame:
    return pd.DataFrame({"trace": "t", "strategy": strategy, "threshold_ms": 50.0, "link": "tcp",
                         "playout": "fifo", "seed": range(len(values)), metric: values})


def test_a_silence_in_gaps_never_reads_below_zero_and_keeps_its_upper_bound() -> None:
    uncut = mean_interval(RARE_GAPS_MS)
    assert uncut.low < 0  # what the t interval says
    row = summarize(runs("concealed_ms", RARE_GAPS_MS)).iloc[0]
    assert row["concealed_ms_ci_low"] == 0.0
    assert row["concealed_ms_ci_high"] == pytest.approx(uncut.high)
    assert row["concealed_ms_mean"] == pytest.approx(0.4)


def test_counts_and_the_comparison_tables_are_cut_too() -> None:
    row = summarize(runs("concealment_events", [0.0] * 19 + [2.0])).iloc[0]
    assert row["concealment_events_ci_low"] == 0.0
    table = intervals(runs("concealed_ms", RARE_GAPS_MS), "concealed_ms")
    assert table["ci_low"].iloc[0] == 0.0


def test_a_mos_never_reads_above_p862_1s_ceiling() -> None:
    assert MOS_LQO_RANGE[1] == pytest.approx(4.549, abs=1e-3)
    near_ceiling = [4.549, 4.5, 4.549, 4.549]
    assert mean_interval(near_ceiling).high > MOS_LQO_RANGE[1]
    assert summarize(runs("mos_lqo", near_ceiling)).iloc[0]["mos_lqo_ci_high"] == MOS_LQO_RANGE[1]


def test_a_difference_a_lag_and_a_column_of_your_own_are_never_cut() -> None:
    paired = pd.concat([runs("concealed_ms", RARE_GAPS_MS, "a"),
                        runs("concealed_ms", [0.0] * 20, "b")])
    difference = paired_difference(paired, "concealed_ms", "strategy", "a", "b")
    assert difference.low < 0
    for metric in ("mean_lag_ms", "added_delay_ms", "my_metric"):
        assert natural_range(metric) == (-math.inf, math.inf)
        assert summarize(runs(metric, RARE_GAPS_MS), metrics=[metric]).iloc[0][
            f"{metric}_ci_low"] < 0


def test_nan_and_equal_seeds_are_as_before() -> None:
    assert math.isnan(mean_interval([1.0], natural_range("concealed_ms")).low)
    assert math.isnan(mean_interval([1.0, math.nan], natural_range("concealed_ms")).high)
    same = mean_interval([2.0, 2.0, 2.0], natural_range("concealed_ms"))
    assert (same.low, same.high) == (2.0, 2.0)


def test_a_count_or_an_amount_says_how_many_seeds_carry_its_mean() -> None:
    row = summarize(runs("concealed_ms", [0.0] * 18 + [3.0, 40.0])).iloc[0]
    assert row["concealed_ms_seeds_above_0"] == 2
    scored = summarize(runs("mos_lqo", [4.0] * 20), metrics=["mos_lqo"]).iloc[0]
    assert "mos_lqo_seeds_above_0" not in scored  # a score is above zero in every seed

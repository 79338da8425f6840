"""labkit.sim.calibration: the measured coverage of the summary's intervals and verdicts."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from labkit.plots import coverage_vs_seeds_above_0
from labkit.sim.calibration import coverage, coverage_table, subsets, verdict_shares
from labkit.sim.summary import NON_NEGATIVE


def test_normal_values_are_covered_about_95_percent_of_the_time() -> None:
    found = coverage(np.random.default_rng(7).normal(3.0, 1.0, 400), 20, draws=4000)
    assert 0.93 <= found.covered <= 0.97
    assert found.point_intervals == 0.0 and found.seeds_run == 400 and found.n_seeds == 20


def test_rare_long_values_are_covered_far_less_often_and_zero_width_as_often_as_no_hit() -> None:
    values = np.zeros(400)
    values[::20] = 40.0  # 5% of seeds carry all of the mean (2 ms)
    found = coverage(values, 20, NON_NEGATIVE, draws=4000)
    assert found.truth == pytest.approx(2.0) and found.seeds_above_0 == pytest.approx(0.05)
    assert found.covered < 0.75
    # no draw of twenty shows a hit with chance ~(1 - 0.05)^20 = 0.36 (hypergeometric: 0.35)
    assert 0.31 <= found.point_intervals <= 0.39


def test_the_draws_are_reproducible_and_distinct_seeds_of_those_run() -> None:
    rows = subsets(50, 20, draws=30, seed=4)
    assert rows.shape == (30, 20)
    assert all(len(set(row)) == 20 and row.max() < 50 for row in rows)
    assert (rows == subsets(50, 20, draws=30, seed=4)).all()
    assert not (rows == subsets(50, 20, draws=30, seed=5)).all()


@pytest.mark.parametrize(("seeds_run", "n_seeds", "draws", "message"), [
    (20, 20, 10, "below the 20 seeds run"), (100, 1, 10, "at least 2"),
    (100, 20, 0, "draws must be at least 1"),
])  # fmt: skip
def test_impossible_draws_are_refused(seeds_run: int, n_seeds: int, draws: int,
                                      message: str) -> None:  # fmt: skip
    with pytest.raises(ValueError, match=message):
        subsets(seeds_run, n_seeds, draws)


def test_values_that_are_not_one_finite_number_per_seed_are_refused() -> None:
    with pytest.raises(ValueError, match="one finite number per seed"):
        coverage([1.0, float("nan")] * 20, 5)


def test_a_small_real_difference_is_seldom_shown_by_twenty_seeds_and_never_reversed() -> None:
    rng = np.random.default_rng(3)
    differences = np.where(rng.random(400) < 0.1, -15.0, 0.0)  # less in 10% of seeds
    shares = verdict_shares(differences, "concealed_ms", 20)
    assert shares.all_seeds == "less" and shares.mean < 0
    assert set(shares.shares) == {"less", "no difference shown", "more"}
    assert sum(shares.shares.values()) == pytest.approx(1.0)
    assert shares.agree == shares.shares["less"] < 0.5
    assert shares.opposite == shares.shares["more"] == 0.0


def test_a_coverage_table_has_one_row_per_setting_and_plots() -> None:
    rng = np.random.default_rng(1)
    silence_ms = np.r_[rng.exponential(5, 100), np.zeros(100)]
    runs = pd.DataFrame({"strategy": ["a"] * 100 + ["b"] * 100, "seed": list(range(100)) * 2,
                         "concealed_ms": silence_ms})  # fmt: skip
    table = coverage_table(runs, "concealed_ms", ["strategy"], 10, draws=200)
    assert list(table.index) == ["a", "b"]
    assert table.loc["b", "covered"] == 1.0 and table.loc["b", "point_intervals"] == 1.0
    assert table.loc["a", "seeds_above_0"] == 1.0
    ax = coverage_vs_seeds_above_0({"silence": table})
    assert ax.get_xlabel().startswith("seeds with the metric above 0")
    assert "(%)" in ax.get_ylabel() and len(ax.collections) == 1
    with pytest.raises(ValueError, match="lacks the column"):
        coverage_vs_seeds_above_0({"bad": table.drop(columns="covered")})

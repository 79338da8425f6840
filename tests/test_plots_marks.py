"""Plots of marks and the playback tracker: units on axes, a line per input, bad input named."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from labkit import plots


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def samples() -> pd.DataFrame:
    return pd.DataFrame({
        "t_ms": [0.0, 500.0, 1000.0, 0.0, 500.0, 1000.0],
        "pending_count": [0, 5, 9, 0, 1, 0],
        "strategy": ["leaky"] * 3 + ["ours"] * 3,
    })


def test_ledger_over_time_draws_one_step_line_per_strategy_in_seconds() -> None:
    ax = plots.ledger_over_time(samples())
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["leaky", "ours"]
    x, y = lines[0].get_data()
    assert np.max(x) == pytest.approx(1.0)  # 1000 ms drawn at 1 s
    assert np.max(y) == 9
    assert "(s)" in ax.get_xlabel() and "(count)" in ax.get_ylabel()


def test_ledger_over_time_names_missing_columns() -> None:
    with pytest.raises(ValueError, match="credited_bytes"):
        plots.ledger_over_time(samples(), y="credited_bytes")


def test_tracker_claim_counts_only_the_item_asked_for() -> None:
    timeline = pd.DataFrame({
        "t_ms": [100.0, 200.0, 300.0],
        "item_id": ["a", "b", "a"],
        "elapsed_ms": [100.0, 50.0, 30.0],
    })
    heard = pd.DataFrame({"t_ms": [0.0, 300.0], "heard_ms": [0.0, 200.0]})
    ax = plots.tracker_claim_vs_heard({"no rule": timeline}, heard, "a", interrupt_ms=250.0)
    _, claim_line, barge = ax.get_lines()
    assert claim_line.get_label() == "tracker: no rule"
    claimed = np.asarray(claim_line.get_ydata(), dtype=float)
    assert claimed.tolist() == [100.0, 0.0, 30.0]  # item b's credit is not item a's
    assert float(np.asarray(barge.get_xdata(), dtype=float)[0]) == pytest.approx(0.25)
    assert "(ms)" in ax.get_ylabel() and "(s)" in ax.get_xlabel()


def test_tracker_claim_names_a_bad_timeline() -> None:
    heard = pd.DataFrame({"t_ms": [0.0], "heard_ms": [0.0]})
    with pytest.raises(ValueError, match="timeline 'x'"):
        plots.tracker_claim_vs_heard({"x": pd.DataFrame({"t_ms": [1.0]})}, heard, "a")

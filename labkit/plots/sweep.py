"""Plots of a threshold sweep (the tidy DataFrame of ``labkit.sweep``): one line per strategy.

Each takes ``ax=`` (a new figure when None) and returns it. See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes

from labkit.plots._axes import new_axes, require_columns

G114_MS = 150.0  # ITU-T G.114 one-way delay planning target


def _mean_by(frame: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    require_columns(frame, {x, y, "strategy"}, "sweep frame")
    means: pd.DataFrame = frame.groupby(["strategy", x], as_index=False)[[y]].mean()
    return means


def underruns_vs_threshold(
    frame: pd.DataFrame, ax: Axes | None = None, metric: str = "concealed_ms"
) -> Axes:
    """Concealed audio (underruns) against each strategy's threshold, mean over seeds."""
    ax = new_axes(ax)
    for strategy, rows in _mean_by(frame, "threshold_ms", metric).groupby("strategy"):
        ax.plot(rows["threshold_ms"], rows[metric], label=str(strategy))
    ax.set_xlabel("threshold (ms)")
    ax.set_ylabel("concealed audio per call (ms)" if metric == "concealed_ms" else metric)
    ax.set_title("Underruns vs threshold: the lowest curve stutters least")
    ax.legend(title="strategy")
    ax.grid(alpha=0.3)
    return ax


def gaps_vs_threshold(
    frame: pd.DataFrame, ax: Axes | None = None, metric: str = "arrival_gap_p99_ms"
) -> Axes:
    """Inter-packet gaps at Twilio (p99 by default) against threshold, mean over seeds."""
    ax = new_axes(ax)
    for strategy, rows in _mean_by(frame, "threshold_ms", metric).groupby("strategy"):
        ax.plot(rows["threshold_ms"], rows[metric], label=str(strategy))
    ax.set_xlabel("threshold (ms)")
    ax.set_ylabel(f"{metric.removesuffix('_ms').replace('_', ' ')} (ms)")
    ax.set_title("Inter-packet gaps vs threshold: bigger messages, longer gaps between them")
    ax.legend(title="strategy")
    ax.grid(alpha=0.3)
    return ax


def latency_vs_underruns(
    frame: pd.DataFrame,
    ax: Axes | None = None,
    latency: str = "mean_lag_ms",
    underruns: str = "concealed_ms",
) -> Axes:
    """Each (strategy, threshold): added latency against underruns, with G.114's 150 ms."""
    ax = new_axes(ax)
    means = frame.groupby(["strategy", "threshold_ms"], as_index=False)[[latency, underruns]].mean()
    for strategy, rows in means.groupby("strategy"):
        ax.plot(rows[underruns], rows[latency], marker=".", linestyle="-", label=str(strategy))
    ax.axhline(G114_MS, color="red", linestyle="--", label="G.114 150 ms")
    ax.set_xlabel("concealed audio per call (ms)" if underruns == "concealed_ms" else underruns)
    ax.set_ylabel("mean added latency per byte (ms)")
    ax.set_title("Latency vs underruns: best points sit low and left, below the G.114 line")
    ax.legend(title="strategy")
    ax.grid(alpha=0.3)
    return ax

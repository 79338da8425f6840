"""Plots of a sweep: one line per strategy (the mean over seeds) with its 95% confidence band.

Functions take the summary of ``labkit.sim.summary.summarize`` (or a sweep frame, summarised on
the way) and ``ax=`` (a new figure when None), and return the axes. Each strategy keeps one
colour everywhere (``STRATEGY_COLORS``); a strategy that ignores the threshold is drawn as a
dashed level, not a line through thresholds; the x axis ends where the data ends.
See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from labkit.outbound import threshold_meaning
from labkit.plots._axes import legend_if_labelled, new_axes, require_columns
from labkit.sim.summary import summarize

G114_MS = 150.0  # ITU-T G.114 one-way delay planning target
STRATEGY_COLORS = {
    "forward": "tab:gray",
    "rechunk": "tab:orange",
    "paced": "tab:purple",
    "preroll": "tab:green",
    "adaptive": "tab:blue",
    "original_report": "tab:red",
}
METRIC_LABELS = {
    "concealed_ms": "silence in gaps per call (ms)",
    "concealment_events": "gaps per call (count)",
    "onset_concealed_ms": "silence in gaps at word starts per call (ms)",
    "onset_concealment_events": "gaps at word starts per call (count)",
    "mean_time_to_first_audio_ms": "mean time to first audio (ms)",
    "mos_lqo": "MOS-LQO (P.862)",
    # per-call rates (Metrics), for calls of any length: a fleet's (labkit/sim/fleet_summary.py)
    "gap_ms_per_audio_s": "silence in gaps (ms per second of audio)",
    "onset_gaps_per_answer": "gaps at word starts per answer (count)",
}


def strategy_color(name: str) -> str:
    """The colour of strategy ``name`` in every plot (grey-blue for one not listed)."""
    return STRATEGY_COLORS.get(name, "tab:cyan")


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def as_summary(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``frame`` if it is a summary holding ``metric``'s mean and interval, else summarised."""
    if f"{metric}_mean" in frame.columns:
        return frame
    require_columns(frame, {metric, "strategy", "threshold_ms", "seed"}, "sweep frame")
    return summarize(frame, metrics=(metric,))


def metric_vs_threshold(
    frame: pd.DataFrame,
    metric: str = "concealed_ms",
    ax: Axes | None = None,
    *,
    strategies: Sequence[str] | None = None,
    title: str | None = None,
    legend: bool = True,
) -> Axes:
    """``metric`` (mean over seeds, 95% band) against each strategy's threshold."""
    summary = as_summary(frame, metric)
    _require_one_world(summary, ("trace", "link", "playout"), "metric_vs_threshold")
    names = strategies or sorted(summary["strategy"].unique(), key=_strategy_order)
    _require_rows(summary, "strategy", names, "metric_vs_threshold")
    ax = new_axes(ax)
    mean, low, high = f"{metric}_mean", f"{metric}_ci_low", f"{metric}_ci_high"
    x_max = float(summary["threshold_ms"].max())
    x_min = float(summary["threshold_ms"].min())
    for name in names:
        rows = summary[summary["strategy"] == name].sort_values("threshold_ms")
        if rows.empty:
            continue
        color = strategy_color(name)
        if _ignores_threshold(name):
            level = float(rows[mean].mean())
            ax.axhline(level, color=color, linestyle="--", linewidth=1.5,
                       label=f"{name} (ignores the threshold)")  # fmt: skip
            band = rows[[low, high]].mean()
            if np.isfinite(band.to_numpy()).all():
                ax.axhspan(float(band[low]), float(band[high]), color=color, alpha=0.12)
            continue
        ax.plot(rows["threshold_ms"], rows[mean], color=color, marker=".", label=name)
        ax.fill_between(rows["threshold_ms"], rows[low], rows[high], color=color, alpha=0.18,
                        linewidth=0)  # fmt: skip
    if x_max > x_min:  # one threshold: let matplotlib pad around it
        ax.set_xlim(x_min, x_max)
    ax.set_xlabel("threshold (ms): rechunk size, paced lead, preroll hold")
    ax.set_ylabel(metric_label(metric))
    if title:
        ax.set_title(title)
    if legend:
        legend_if_labelled(ax, fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def metric_by_link(
    frame: pd.DataFrame,
    metric: str = "concealed_ms",
    axes: Sequence[Axes] | None = None,
    *,
    links: Sequence[str] | None = None,
    suptitle: str | None = None,
) -> Sequence[Axes]:
    """One panel per link of ``metric_vs_threshold`` (shared y axis, one legend)."""
    import matplotlib.pyplot as plt

    summary = as_summary(frame, metric)
    require_columns(summary, {"link"}, "sweep frame")
    names = list(links or summary["link"].unique())
    _require_rows(summary, "link", names, "metric_by_link")
    if axes is None:
        fig, created = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.0),
                                    sharey=True, layout="constrained", squeeze=False)  # fmt: skip
        axes = list(created[0])
        if suptitle:
            fig.suptitle(suptitle)
    for index, (ax, link) in enumerate(zip(axes, names, strict=True)):
        metric_vs_threshold(summary[summary["link"] == link], metric, ax=ax,
                            title=f"link: {link}", legend=index == len(names) - 1)  # fmt: skip
    return axes


def latency_vs_underruns(
    frame: pd.DataFrame,
    ax: Axes | None = None,
    latency: str = "mean_lag_ms",
    underruns: str = "concealed_ms",
) -> Axes:
    """Each (strategy, threshold): mean latency against mean silence in gaps (over seeds and
    traces), with G.114's 150 ms. A line runs through a strategy's thresholds in order; an open
    circle marks its smallest, so a reader sees which way the threshold grows. One link and
    playout."""
    require_columns(frame, {latency, underruns, "strategy", "threshold_ms"}, "sweep frame")
    _require_one_world(frame, ("link", "playout"), "latency_vs_underruns")
    ax = new_axes(ax)
    means = frame.groupby(["strategy", "threshold_ms"], as_index=False)[[latency, underruns]].mean()
    for name, rows in means.groupby("strategy"):
        rows = rows.sort_values("threshold_ms")
        color = strategy_color(str(name))
        ax.plot(rows[underruns], rows[latency], marker=".", linestyle="-", label=str(name),
                color=color)  # fmt: skip
        ax.plot(rows[underruns].iloc[:1], rows[latency].iloc[:1], "o", markersize=8,
                markerfacecolor="none", color=color)  # fmt: skip
    smallest = means["threshold_ms"].min()
    ax.plot([], [], "o", markersize=8, markerfacecolor="none", color="0.3",
            label=f"smallest threshold ({smallest:g} ms)")  # fmt: skip
    ax.axhline(G114_MS, color="red", linestyle="--", label="G.114 150 ms")
    ax.set_xlabel(metric_label(underruns))
    ax.set_ylabel("mean lag behind real time (ms)")
    ax.set_title("Latency vs silence in gaps: best points sit low and left, below the G.114 line")
    # beside the axes: the G.114 line runs along the top, where a legend inside would sit
    legend_if_labelled(ax, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    return ax


def _strategy_order(name: str) -> int:
    order = list(STRATEGY_COLORS)
    return order.index(name) if name in order else len(order)


def _ignores_threshold(name: str) -> bool:
    """True for a known strategy whose class says it ignores ``threshold_ms``."""
    try:
        return threshold_meaning(name) is None
    except ValueError:  # not a labkit strategy (a user's own, summarised by name)
        return False


def _require_rows(summary: pd.DataFrame, column: str, names: Sequence[str], plot: str) -> None:
    """Every ``column`` value to draw has rows (an empty panel says nothing, not "zero")."""
    have = set(summary[column]) if column in summary.columns else set()
    missing = [name for name in names if name not in have]
    if not names or missing:
        raise ValueError(f"{plot}: no rows for {column} {', '.join(map(repr, missing)) or '(none)'}"
                         f"; the frame has {', '.join(sorted(map(str, have))) or 'no rows'}")


def _require_one_world(frame: pd.DataFrame, columns: Sequence[str], plot: str) -> None:
    """One line per strategy means one world: rows of two links (or traces, or playouts) would
    be drawn as one line zig-zagging between them."""
    for column in columns:
        if column in frame.columns and frame[column].nunique() > 1:
            values = ", ".join(sorted(map(str, frame[column].unique())))
            raise ValueError(f"{plot}: the rows hold {frame[column].nunique()} {column}s "
                             f"({values}); pick one (metric_by_link draws a panel per link)")

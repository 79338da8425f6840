"""Plots that compare strategies, settings and worlds: gap distributions, the oracle frontier,
measured versus simulated metrics, stale audio after a barge-in.

See notebooks/02_threshold_sweep.ipynb, 04_live_call.ipynb and 05_barge_in_and_marks.ipynb.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from labkit.plots._axes import new_axes, require_columns

G114_BUDGET_MS = 150.0  # ITU-T G.114 one-way planning target


def gap_distribution(
    gaps_ms: Mapping[str, Sequence[float] | np.ndarray],
    ax: Axes | None = None,
    *,
    xlabel: str = "inter-packet gap (ms)",
    title: str | None = None,
) -> Axes:
    """One empirical CDF per label: the fraction of gaps at most x ms long.

    A CDF (rather than a histogram) lets a dozen settings share one axes and keeps every tail
    visible.
    """
    ax = new_axes(ax)
    for label, values in gaps_ms.items():
        ordered = np.sort(np.asarray(values, dtype=float))
        if ordered.size == 0:
            continue
        fraction = np.arange(1, ordered.size + 1) / ordered.size
        ax.step(ordered, fraction, where="post", label=f"{label} (n={ordered.size})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of gaps <= x")
    ax.set_ylim(0, 1.02)
    ax.set_title(title or "Gap distribution: curves further left mean tighter spacing")
    ax.legend(fontsize="small")
    return ax


def strategy_vs_frontier(
    frontier: pd.DataFrame,
    points: pd.DataFrame,
    ax: Axes | None = None,
    *,
    x: str = "preroll_ms",
    y: str = "concealed_ms",
    label: str = "strategy",
    title: str | None = None,
    legend: bool = True,
) -> Axes:
    """The oracle frontier (least pre-roll for each amount of concealment) as a line; strategies
    as dots, one colour each (a legend, not labels that would collide).

    Points on the line are as good as any buffer can be; points above or right of it pay for
    waiting they did not need, or conceal gaps a better schedule would have avoided.
    """
    from labkit.plots.sweep import strategy_color

    require_columns(frontier, {x, y}, "frontier")
    require_columns(points, {x, y}, "points")
    if label not in points.columns:
        raise ValueError(f"points lacks the label column {label!r}")
    ax = new_axes(ax)
    ordered = frontier.sort_values(x)
    ax.plot(ordered[x], ordered[y], color="black", label="oracle frontier")  # piecewise linear in P
    for name, rows in points.groupby(label, sort=False):
        ax.scatter(rows[x], rows[y], zorder=3, s=40, color=strategy_color(str(name)),
                   label=str(name), edgecolor="white")  # fmt: skip
    ax.set_xlabel("pre-roll / added delay (ms)")
    ax.set_ylabel("concealed audio (ms)")
    ax.set_title(
        title or "Each strategy against the oracle: the line is the best any buffer can do"
    )
    if legend:
        ax.legend(fontsize="small")
    return ax


def measured_vs_simulated(
    table: pd.DataFrame,
    ax: Axes | None = None,
    *,
    ylabel: str = "value (ms or count, per row label)",
    title: str | None = None,
) -> Axes:
    """Grouped bars: a group per metric (the index), a bar per column (measured, simulated)."""
    if table.empty:
        raise ValueError("measured_vs_simulated needs at least one metric row")
    ax = new_axes(ax)
    positions = np.arange(len(table.index))
    width = 0.8 / len(table.columns)
    for k, column in enumerate(table.columns):
        ax.bar(positions + k * width, table[column].to_numpy(dtype=float), width, label=str(column))
    ax.set_xticks(positions + width * (len(table.columns) - 1) / 2, [str(i) for i in table.index])
    ax.tick_params(axis="x", labelrotation=20)
    ax.set_xlabel("metric")
    ax.set_ylabel(ylabel)
    ax.set_title(
        title or "Measured on the loopback call vs simulated: equal bars mean the model holds"
    )
    ax.legend(fontsize="small")
    return ax


def stale_audio_vs_lead(
    curves: pd.DataFrame,
    ax: Axes | None = None,
    *,
    x: str = "lead_ms",
    y: str = "stale_ms",
    by: str | None = None,
    title: str | None = None,
) -> Axes:
    """Audio the caller hears after barging in, against the sender's lead; a line per ``by``."""
    from labkit.plots.sweep import strategy_color

    require_columns(curves, {x, y}, "curves")
    ax = new_axes(ax)
    groups = curves.groupby(by, sort=False) if by is not None else [("stale audio", curves)]
    # distinct markers, sizes and dashes: lines that coincide stay visible, one over another
    styles = [("o", 9, "-"), ("s", 6, "--"), ("^", 4, ":"), ("D", 3, "-.")]
    for k, (name, group) in enumerate(groups):
        ordered = group.sort_values(x)
        marker, size, dash = styles[k % len(styles)]
        ax.plot(ordered[x], ordered[y], marker=marker, markersize=size, linestyle=dash,
                color=strategy_color(str(name)), label=str(name))  # fmt: skip
    ax.set_xlabel("lead (ms)")
    ax.set_ylabel("stale audio heard after barge-in (ms)")
    ax.set_title(title or "Stale audio after a barge-in grows with the sender's lead")
    ax.legend(fontsize="small")
    return ax


def metric_vs_setting(
    table: pd.DataFrame,
    ax: Axes | None = None,
    *,
    x: str,
    y: str,
    by: str,
    xlabel: str,
    ylabel: str,
    vlines: Mapping[str, float] | None = None,
    hline: tuple[str, float] | None = None,
    order: str | None = None,
    title: str | None = None,
) -> Axes:
    """One line per ``by`` group of ``y`` against ``x``, with labelled reference lines.

    Used for underruns vs threshold with each trace's oracle D* as a vertical line, and for
    added latency vs underruns with the 150 ms G.114 line. Points are joined in ``order``
    (a column; default ``x``), e.g. by threshold when x is a trade-off metric.
    """
    require_columns(table, {x, y, by}, "table")
    ax = new_axes(ax)
    for name, group in table.groupby(by, sort=False):
        ordered = group.sort_values(order or x)
        ax.plot(ordered[x], ordered[y], marker=".", label=str(name))
    for name, value in (vlines or {}).items():
        ax.axvline(value, linestyle="--", color="0.4", linewidth=1)
        ax.annotate(
            name,
            (value, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=7,
        )
    if hline is not None:
        ax.axhline(hline[1], linestyle="--", color="tab:red", linewidth=1, label=hline[0])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def intervals_by_link(
    table: pd.DataFrame,
    axes: Sequence[Axes] | None = None,
    *,
    xlabel: str,
    title: str | None = None,
    colors: Mapping[str, str] | None = None,
) -> Sequence[Axes]:
    """One panel per link: each strategy's mean (a dot) and 95% interval (a bar), the table of
    ``labkit.sim.compare.intervals`` (index link, strategy; columns mean, ci_low, ci_high).
    A strategy's colour is its name's (the first word of its label) unless ``colors`` says."""
    import matplotlib.pyplot as plt

    from labkit.plots.sweep import strategy_color

    links = list(dict.fromkeys(table.index.get_level_values(0)))
    if axes is None:
        strategies = len(set(table.index.get_level_values(1)))
        fig, grid = plt.subplots(1, len(links), figsize=(5.5 * len(links), 0.45 * strategies + 1.6),
                                 sharey=True, layout="constrained", squeeze=False)  # fmt: skip
        axes = list(grid[0])
        if title:
            fig.suptitle(title)
    for ax, link in zip(axes, links, strict=True):
        rows = table.loc[link]
        labels = [str(label) for label in rows.index]
        y = np.arange(len(labels))[::-1]
        for k, label in enumerate(labels):
            color = (colors or {}).get(label) or strategy_color(label.split(" ")[0].split(",")[0])
            row = rows.loc[label]
            low = row["ci_low"] if np.isfinite(row["ci_low"]) else row["mean"]
            high = row["ci_high"] if np.isfinite(row["ci_high"]) else row["mean"]
            ax.plot([low, high], [y[k], y[k]], color=color, linewidth=3, alpha=0.5)
            ax.plot(row["mean"], y[k], "o", color=color)
        ax.set_yticks(y, labels)
        ax.set_title(f"link: {link}")
        ax.set_xlabel(xlabel)
        ax.axvline(0, color="0.6", linewidth=0.8)
        ax.grid(axis="x", alpha=0.3)
    return axes

"""Plots that compare strategies, settings and worlds: gap distributions, the oracle frontier,
measured versus simulated metrics, stale audio after a barge-in.

See notebooks/02_threshold_sweep.ipynb, 04_live_call.ipynb and 05_barge_in_and_marks.ipynb.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes

from labkit.plots._axes import legend_if_labelled, new_axes, require_columns

G114_BUDGET_MS = 150.0  # ITU-T G.114 one-way planning target


def gap_distribution(
    gaps_ms: Mapping[str, Sequence[float] | npt.NDArray[np.float64]],
    ax: Axes | None = None,
    *,
    xlabel: str = "time between consecutive messages (ms)",
    title: str | None = None,
) -> Axes:
    """One empirical CDF per label: the fraction of spacings at most x ms long.

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
    ax.set_ylabel("fraction of spacings <= x")
    ax.set_ylim(0, 1.02)
    ax.set_title(title or "Message spacing: curves further left mean tighter spacing")
    legend_if_labelled(ax, fontsize="small")
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
    """The oracle frontier (least pre-roll for each amount of silence in gaps) as a line; strategies
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
    ax.set_xlabel(_axis_label(x, "preroll_ms", "pre-roll / added delay (ms)"))
    ax.set_ylabel(_axis_label(y, "concealed_ms", "silence in gaps (ms)"))
    ax.set_title(
        title or "Each strategy against the oracle: the line is the best any buffer can do"
    )
    if legend:
        legend_if_labelled(ax, fontsize="small")
    return ax


def arrivals_vs_simulation(
    arrivals: pd.DataFrame,
    ax: Axes | None = None,
    *,
    title: str | None = None,
) -> Axes:
    """Each message of a call: how much later (or earlier) it arrived than the simulator said,
    against its place in the call's audio, with the median as a line. ``arrivals`` is
    ``CallResult.arrivals()`` (columns ``media_s``, ``difference_ms``). A flat band means the
    simulator predicts the call up to a constant offset; its width is the call's own jitter."""
    require_columns(arrivals, {"media_s", "difference_ms"}, "arrivals")
    matched = arrivals[arrivals["difference_ms"].notna()]
    if matched.empty:
        raise ValueError("arrivals_vs_simulation: no message matched a simulated one")
    ax = new_axes(ax)
    ax.plot(matched["media_s"], matched["difference_ms"], ".", markersize=4,
            color="tab:blue", label="one message")  # fmt: skip
    median = float(matched["difference_ms"].median())
    ax.axhline(median, color="0.3", linestyle="--", linewidth=1,
               label=f"median {median:.0f} ms")  # fmt: skip
    ax.set_xlabel("audio received before the message (s)")
    ax.set_ylabel("arrival, measured minus simulated (ms)")
    ax.set_title(title or "Each message's arrival on the call, against the simulator's")
    ax.grid(alpha=0.3)
    legend_if_labelled(ax, fontsize="small")
    return ax


def _axis_label(column: str, default_column: str, default_label: str) -> str:
    """The reader's label of the default column; another column is labelled by its own name
    (which carries its unit: ``mean_lag_ms``), never by the default's words."""
    return default_label if column == default_column else column


def stale_audio_vs_lead(
    curves: pd.DataFrame,
    ax: Axes | None = None,
    *,
    x: str = "lead_ms",
    y: str = "stale_ms",
    by: str | None = None,
    band: tuple[str, str] | None = None,
    title: str | None = None,
) -> Axes:
    """Audio the caller hears after barging in, against the sender's lead; a line per ``by``,
    with a shaded band between the columns ``band`` names (e.g. a 95% interval over seeds)."""
    from labkit.plots.sweep import strategy_color

    require_columns(curves, {x, y, *(band or ())}, "curves")
    ax = new_axes(ax)
    groups = curves.groupby(by, sort=False) if by is not None else [("stale audio", curves)]
    # distinct markers, sizes and dashes: lines that coincide stay visible, one over another
    styles = [("o", 9, "-"), ("s", 6, "--"), ("^", 4, ":"), ("D", 3, "-.")]
    for k, (name, group) in enumerate(groups):
        ordered = group.sort_values(x)
        marker, size, dash = styles[k % len(styles)]
        color = strategy_color(str(name))
        ax.plot(ordered[x], ordered[y], marker=marker, markersize=size, linestyle=dash,
                color=color, label=str(name))  # fmt: skip
        if band is not None:
            ax.fill_between(ordered[x], ordered[band[0]], ordered[band[1]], color=color,
                            alpha=0.15, linewidth=0)  # fmt: skip
    ax.set_xlabel(_axis_label(x, "lead_ms", "lead (ms)"))
    ax.set_ylabel(_axis_label(y, "stale_ms", "stale audio heard after barge-in (ms)"))
    ax.set_title(title or "Stale audio after a barge-in grows with the sender's lead")
    legend_if_labelled(ax, fontsize="small")
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

    Used for silence in gaps vs threshold with each trace's oracle D* as a vertical line, and for
    added latency vs silence in gaps with the 150 ms G.114 line. Points are joined in ``order``
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
    legend_if_labelled(ax, fontsize="small")
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
    if not links:
        raise ValueError("intervals_by_link: the table has no rows to draw")
    if axes is not None and len(axes) != len(links):
        raise ValueError(f"intervals_by_link: {len(links)} links ({', '.join(map(str, links))}) "
                         f"need as many axes, got {len(axes)}")  # fmt: skip
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

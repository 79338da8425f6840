"""How often an interval over a few seeds holds the mean of many: coverage against how often the
metric is above zero.

See notebooks/09_how_far_twenty_seeds_go.ipynb.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from labkit.plots._axes import legend_if_labelled, new_axes, require_columns
from labkit.sim.summary import CONFIDENCE

MARKERS = ("o", "s", "^", "D")


def coverage_vs_seeds_above_0(tables: Mapping[str, pd.DataFrame], ax: Axes | None = None, *,
                              title: str | None = None) -> Axes:  # fmt: skip
    """One marker per setting, one marker shape per metric (``tables``: label -> a
    ``labkit.sim.calibration.coverage_table``): x the share of seeds whose value is above zero,
    y the share of drawn intervals that hold the mean of every seed; the nominal 95% as a line,
    and (1 - p)^n, the share of draws in which no seed is above zero, as a dashed curve."""
    ax = new_axes(ax)
    n_seeds = 0
    for (label, table), marker in zip(tables.items(), MARKERS * len(tables), strict=False):
        require_columns(table, {"seeds_above_0", "covered", "n_seeds"}, f"coverage table {label!r}")
        ax.scatter(100 * table["seeds_above_0"], 100 * table["covered"], marker=marker,
                   alpha=0.7, label=f"{label} ({len(table)} settings)")  # fmt: skip
        n_seeds = int(table["n_seeds"].max()) if len(table) else n_seeds
    ax.axhline(100 * CONFIDENCE, color="black", linewidth=1, label=f"nominal {CONFIDENCE:.0%}")
    if n_seeds:
        share = np.linspace(0, 1, 201)
        ax.plot(100 * share, 100 * (1 - share) ** n_seeds, "k--", linewidth=1,
                label=f"draws with no seed above 0: (1 - p)^{n_seeds}")  # fmt: skip
    ax.set_xlabel("seeds with the metric above 0, p (% of all seeds run)")
    ax.set_ylabel(f"intervals over {n_seeds or 'n'} seeds holding the mean (%)")
    ax.set_xlim(-2, 102)
    ax.set_ylim(-2, 102)
    ax.set_title(title or f"{CONFIDENCE:.0%} intervals hold the mean less often where the metric "
                 "is rarely above 0")
    legend_if_labelled(ax, fontsize="small", loc="lower right")
    return ax

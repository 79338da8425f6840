"""The sensitivity grid: each claim's verdict as one assumption varies, at a glance.

See notebooks/07_where_verdicts_flip.ipynb.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from labkit.plots._axes import require_columns

VERDICT_COLORS = {"yes": "tab:green", "no": "tab:red", "uncertain": "0.82"}


def verdict_grid(frame: pd.DataFrame, claims: Sequence[str] | None = None,
                 title: str | None = None, columns: int = 2) -> Figure:  # fmt: skip
    """One panel per parameter (its values across), one row per claim, a cell per verdict:
    green yes (the claim holds there), red no (it is false there), grey uncertain; the default
    value is outlined in black. Panels are laid out ``columns`` to a row, every cell the same
    size, so the figure stays readable at a notebook's width (about 11 inches at 100 dpi)."""
    require_columns(frame, {"parameter", "label", "value", "default", "claim", "result"},
                    "sensitivity frame")  # fmt: skip
    claim_list = list(claims or dict.fromkeys(frame["claim"]))
    parameters = list(dict.fromkeys(frame["parameter"]))
    widths = [frame.loc[frame["parameter"] == p, "value"].nunique() for p in parameters]
    columns = max(1, min(columns, len(parameters)))
    rows_of_panels = -(-len(parameters) // columns)
    slot = max(widths)  # cells per panel slot: the widest panel's
    cell_in, row_in = 0.68, 0.36
    fig = plt.figure(figsize=(2.9 + cell_in * slot * columns,
                              rows_of_panels * (row_in * len(claim_list) + 0.95) + 0.6),
                     layout="constrained")  # fmt: skip
    grid = fig.add_gridspec(rows_of_panels, slot * columns)
    labels = [textwrap.fill(claim, 34) for claim in claim_list]
    for k, (parameter, width) in enumerate(zip(parameters, widths, strict=True)):
        row, column = divmod(k, columns)
        ax = fig.add_subplot(grid[row, column * slot: column * slot + width])
        rows = frame[frame["parameter"] == parameter]
        values = sorted(rows["value"].unique())
        for j, value in enumerate(values):
            at_value = rows[rows["value"] == value]
            for i, claim in enumerate(claim_list):
                result = at_value.loc[at_value["claim"] == claim, "result"]
                color = VERDICT_COLORS.get(result.iloc[0], "white") if len(result) else "white"
                is_default = bool(at_value["default"].any())
                ax.add_patch(Rectangle((j, i), 1, 1, color=color, ec="white", lw=1.5))
                if is_default:
                    ax.add_patch(Rectangle((j + 0.04, i + 0.04), 0.92, 0.92, fill=False,
                                               ec="black", lw=1.5))  # fmt: skip
        ax.set_xlim(0, len(values))
        ax.set_ylim(len(claim_list), 0)
        ax.set_xticks([j + 0.5 for j in range(len(values))], [f"{v:g}" for v in values],
                      fontsize=10)  # fmt: skip
        ax.set_xlabel(textwrap.fill(str(rows["label"].iloc[0]), 6 * width + 8), fontsize=10)
        ax.set_yticks([i + 0.5 for i in range(len(claim_list))], labels, fontsize=10)
        ax.tick_params(length=0, labelleft=column == 0)  # the claims once, at the left of a row
    fig.suptitle(title or "Where each claim holds (green), is false (red) or cannot be told "
                          "(grey); default values outlined", fontsize=12)  # fmt: skip
    return fig

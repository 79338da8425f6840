"""The sensitivity grid: each claim's verdict as one assumption varies, at a glance.

See notebooks/07_where_verdicts_flip.ipynb.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from labkit.plots._axes import require_columns

VERDICT_COLORS = {"yes": "tab:green", "no": "tab:red", "uncertain": "0.82"}


def verdict_grid(frame: pd.DataFrame, claims: Sequence[str] | None = None,
                 title: str | None = None) -> Figure:  # fmt: skip
    """One panel per parameter (its values across), one row per claim, a cell per verdict:
    green yes, red no, grey uncertain; the default value is outlined in black."""
    require_columns(frame, {"parameter", "label", "value", "default", "claim", "result"},
                    "sensitivity frame")  # fmt: skip
    claim_list = list(claims or dict.fromkeys(frame["claim"]))
    parameters = list(dict.fromkeys(frame["parameter"]))
    widths = [frame.loc[frame["parameter"] == p, "value"].nunique() for p in parameters]
    fig, axes = plt.subplots(1, len(parameters), figsize=(2.0 + 0.75 * sum(widths),
                                                            0.42 * len(claim_list) + 1.9),
                             sharey=True, layout="constrained",
                             gridspec_kw={"width_ratios": widths}, squeeze=False)  # fmt: skip
    for ax, parameter in zip(axes[0], parameters, strict=True):
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
                                               ec="black", lw=1.2))  # fmt: skip
        ax.set_xlim(0, len(values))
        ax.set_ylim(len(claim_list), 0)
        ax.set_xticks([j + 0.5 for j in range(len(values))], [f"{v:g}" for v in values],
                      fontsize=8)  # fmt: skip
        ax.set_xlabel(str(rows["label"].iloc[0]), fontsize=8, wrap=True)
        ax.tick_params(length=0)
    axes[0][0].set_yticks([i + 0.5 for i in range(len(claim_list))], claim_list, fontsize=9)
    fig.suptitle(title or "Where each verdict holds (green), flips (red) or is undecided (grey); "
                          "default values outlined")  # fmt: skip
    return fig

"""Shared helpers for the plot functions (not a public API)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes


def require_columns(frame: pd.DataFrame, columns: set[str], what: str) -> None:
    """A plot's input must carry ``columns``: name the ones missing and whose they are."""
    missing = columns - set(frame.columns)
    if missing:
        raise ValueError(f"{what} lacks the column(s) {sorted(missing)}")


def new_axes(ax: Axes | None, figsize: tuple[float, float] = (9.0, 4.0)) -> Axes:
    """``ax`` itself, or the axes of a new figure when None."""
    if ax is not None:
        return ax
    _, created = plt.subplots(figsize=figsize, layout="constrained")
    return created


def legend_if_labelled(ax: Axes, **options: Any) -> None:
    """``ax.legend(**options)`` when something drawn has a label; with no data drawn there is
    nothing to name (matplotlib would warn "No artists with labels")."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**options)

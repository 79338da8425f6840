"""Shared helpers for the plot functions (not a public API)."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.axes import Axes


def new_axes(ax: Axes | None, figsize: tuple[float, float] = (9.0, 4.0)) -> Axes:
    """``ax`` itself, or the axes of a new figure when None."""
    if ax is not None:
        return ax
    _, created = plt.subplots(figsize=figsize, layout="constrained")
    return created

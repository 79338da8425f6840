"""Marks and the playback tracker over a call: pending marks, credited bytes, the tracker's claim.

See notebooks/05_barge_in_and_marks.ipynb.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes

from labkit.plots._axes import legend_if_labelled, new_axes
from labkit.plots._axes import require_columns as _require


def ledger_over_time(
    samples: pd.DataFrame,
    ax: Axes | None = None,
    *,
    y: str = "pending_count",
    by: str = "strategy",
    ylabel: str = "pending marks (count)",
    title: str | None = None,
) -> Axes:
    """A step line of ``y`` against call time (``t_ms``), one per ``by`` (LedgerRecorder rows)."""
    _require(samples, {"t_ms", y, by}, "samples")
    ax = new_axes(ax)
    for name, group in samples.groupby(by, sort=False):
        ordered = group.sort_values("t_ms", kind="stable")
        ax.step(ordered["t_ms"] / 1000.0, ordered[y], where="post", label=str(name))
    ax.set_xlabel("call time (s)")
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"{ylabel} during the call")
    legend_if_labelled(ax, fontsize="small")
    return ax


def tracker_claim_vs_heard(
    timelines: dict[str, pd.DataFrame],
    heard: pd.DataFrame,
    item_id: str,
    ax: Axes | None = None,
    *,
    interrupt_ms: float | None = None,
    title: str | None = None,
) -> Axes:
    """How much of ``item_id`` the playback tracker says was heard (one step line per timeline,
    from ``labkit.views.barge_in.tracker_timeline``) against what the caller heard (``heard``:
    t_ms, heard_ms). Where a claim rises above the heard line, the tracker was told of audio
    nobody heard."""
    _require(heard, {"t_ms", "heard_ms"}, "heard")
    ax = new_axes(ax)
    ax.plot(heard["t_ms"] / 1000.0, heard["heard_ms"], color="black", linewidth=2.5, alpha=0.35,
            label=f"{item_id}: heard by the caller")
    for n, (label, timeline) in enumerate(timelines.items()):
        _require(timeline, {"t_ms", "item_id", "elapsed_ms"}, f"timeline {label!r}")
        claim = timeline["elapsed_ms"].where(timeline["item_id"] == item_id, 0.0)
        ax.step(timeline["t_ms"] / 1000.0, claim, where="post", label=f"tracker: {label}",
                linewidth=2.0 if n == 0 else 1.2, linestyle="-" if n == 0 else "--")
    if interrupt_ms is not None:
        ax.axvline(interrupt_ms / 1000.0, color="tab:red", linestyle=":", label="barge-in")
    ax.set_xlabel("call time (s)")
    ax.set_ylabel(f"{item_id} heard, per source (ms)")
    ax.set_title(title or f"What the playback tracker is told about {item_id}")
    legend_if_labelled(ax, fontsize="small")
    return ax

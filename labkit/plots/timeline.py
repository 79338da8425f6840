"""Timelines of outbound messages: when each was sent, arrived at Twilio, and played.

See notebooks/01_why_tiny_packets_jitter.ipynb (and 03_explorer.ipynb, which redraws it live).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection

from labkit.outbound.base import BYTES_PER_MS
from labkit.plots._axes import new_axes, require_columns
from labkit.sim.metrics import CONCEALMENT_EPS_MS

GAP_TOLERANCE_MS = CONCEALMENT_EPS_MS  # the same test labkit.sim.metrics counts gaps with
SENT_COLOR = "tab:blue"
ARRIVED_COLOR = "tab:orange"
PLAYED_COLOR = "tab:green"
GAP_COLOR = "tab:red"


def gaps_text(gaps_ms: Sequence[float] | npt.NDArray[np.float64] | pd.Series) -> str:
    """"2 gaps, 26 ms", "1 gap, 0.3 ms", "no gaps": a count and total a reader can take in (a
    gap under 10 ms keeps a decimal, so a real gap never reads as 0 ms)."""
    values = np.asarray(gaps_ms, dtype=float)
    if values.size == 0:
        return "no gaps"
    total = float(values.sum())
    shown = f"{total:.1f}" if total < 10 else f"{total:.0f}"
    return f"{values.size} gap{'s' if values.size > 1 else ''}, {shown} ms"


def _media_rows(schedule: pd.DataFrame) -> pd.DataFrame:
    """The media messages that were played, in play order."""
    needed = {"kind", "item_id", "sent_ms", "arrived_ms", "play_start_ms", "play_end_ms"}
    require_columns(schedule, needed, "schedule")
    media = schedule[schedule["kind"] == "media"]
    played = media[media["play_start_ms"].notna() & media["play_end_ms"].notna()]
    return played.sort_values("play_start_ms", kind="stable")


def _with_media_position(schedule: pd.DataFrame) -> pd.DataFrame:
    """Played media rows with ``media_ms``: audio handed over before this message, in send order."""
    require_columns(schedule, {"size"}, "schedule")
    media = schedule[schedule["kind"] == "media"]
    sizes_ms = media["size"].to_numpy(dtype=float) / BYTES_PER_MS
    positioned = media.assign(media_ms=np.cumsum(sizes_ms) - sizes_ms)
    return _media_rows(positioned)


def playout_gaps(schedule: pd.DataFrame) -> pd.DataFrame:
    """Gaps: silences inside one item, where the caller's queue ran dry.

    Returns a frame with columns item_id, start_ms, end_ms, gap_ms. A silence between two items is
    a pause between utterances, not a gap, so it is left out.
    """
    played = _media_rows(schedule)
    same_item = played["item_id"].to_numpy()[1:] == played["item_id"].to_numpy()[:-1]
    previous_end = played["play_end_ms"].to_numpy(dtype=float)[:-1]
    next_start = played["play_start_ms"].to_numpy(dtype=float)[1:]
    is_gap = same_item & (next_start - previous_end > GAP_TOLERANCE_MS)
    return pd.DataFrame(
        {
            "item_id": played["item_id"].to_numpy()[1:][is_gap],
            "start_ms": previous_end[is_gap],
            "end_ms": next_start[is_gap],
            "gap_ms": (next_start - previous_end)[is_gap],
        }
    )


def packet_timeline(
    schedule: pd.DataFrame,
    ax: Axes | None = None,
    *,
    window_ms: tuple[float, float] | None = None,
    title: str | None = None,
) -> Axes:
    """Each media message as a point sent, a point arrived and a segment played; gaps shaded red.

    x is wall time (ms), y is the audio already handed to the sender (ms of media, cumulative
    over the call), so the played segments form a staircase whose flat steps are what the caller
    hears as silence. ``window_ms`` restricts the x range (messages overlapping it are drawn).
    """
    ax = new_axes(ax)
    played = _with_media_position(schedule)
    durations_ms = (played["play_end_ms"] - played["play_start_ms"]).to_numpy(dtype=float)
    media_ms = played["media_ms"].to_numpy(dtype=float)
    audio_ms = played["size"].to_numpy(dtype=float) / BYTES_PER_MS
    gaps = playout_gaps(schedule)
    if window_ms is not None:
        lo, hi = window_ms
        keep = (played["play_end_ms"].to_numpy() >= lo) & (
            played["sent_ms"].fillna(lo).to_numpy() <= hi
        )
        played, durations_ms = played[keep], durations_ms[keep]
        media_ms, audio_ms = media_ms[keep], audio_ms[keep]
        gaps = gaps[(gaps["end_ms"] >= lo) & (gaps["start_ms"] <= hi)]
    ax.scatter(played["sent_ms"], media_ms, s=8, marker="|", color=SENT_COLOR, label="sent")
    ax.scatter(
        played["arrived_ms"], media_ms, s=8, marker="o", color=ARRIVED_COLOR, label="arrived"
    )
    starts = played["play_start_ms"].to_numpy(dtype=float)
    segments = np.stack(
        [
            np.column_stack([starts, media_ms]),
            np.column_stack([starts + durations_ms, media_ms + audio_ms]),
        ],
        axis=1,
    )
    ax.add_collection(
        LineCollection(list(segments), colors=PLAYED_COLOR, linewidths=2, label="played")
    )
    if len(gaps):
        ax.broken_barh(
            list(zip(gaps["start_ms"], gaps["gap_ms"], strict=True)),
            (0, 1),
            transform=ax.get_xaxis_transform(),
            facecolors=GAP_COLOR,
            alpha=0.25,
            label=gaps_text(gaps["gap_ms"]),
        )
    ax.autoscale_view()
    if window_ms is not None:
        ax.set_xlim(*window_ms)
    ax.set_xlabel("wall time (ms)")
    ax.set_ylabel("media position (ms of audio)")
    ax.set_title(title or "Sent, arrived, played: red spans are gaps (silence inside an answer)")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def fifo_playout(
    arrivals_ms: Sequence[float] | npt.NDArray[np.float64],
    durations_ms: Sequence[float] | npt.NDArray[np.float64],
    starts_ms: Sequence[float] | npt.NDArray[np.float64],
    ax: Axes | None = None,
    *,
    title: str | None = None,
) -> Axes:
    """A FIFO playout queue drawn message by message: arrival dot, wait in queue, play bar, gaps.

    The caller computes ``starts_ms`` (the notebook derives s_i = max(a_i, s_{i-1} + d_{i-1}));
    this function only draws them.
    """
    arrivals = np.asarray(arrivals_ms, dtype=float)
    durations = np.asarray(durations_ms, dtype=float)
    starts = np.asarray(starts_ms, dtype=float)
    if not (arrivals.shape == durations.shape == starts.shape) or arrivals.ndim != 1:
        raise ValueError(
            "arrivals_ms, durations_ms and starts_ms must be 1-D and the same length, got "
            f"{arrivals.shape}, {durations.shape}, {starts.shape}"
        )
    ax = new_axes(ax)
    rows = np.arange(len(arrivals))
    ax.barh(rows, durations, left=starts, height=0.6, color=PLAYED_COLOR, label="playing (d_i)")
    ax.hlines(rows, arrivals, starts, colors="0.5", linestyles=":", label="waiting in queue")
    ax.scatter(arrivals, rows, color=ARRIVED_COLOR, zorder=3, label="arrives (a_i)")
    ends = starts + durations
    gap_starts, gap_widths = ends[:-1], starts[1:] - ends[:-1]
    has_gap = gap_widths > GAP_TOLERANCE_MS
    if has_gap.any():
        ax.broken_barh(
            list(zip(gap_starts[has_gap], gap_widths[has_gap], strict=True)),
            (0, 1),
            transform=ax.get_xaxis_transform(),
            facecolors=GAP_COLOR,
            alpha=0.25,
            label="gap (queue empty)",
        )
    ax.invert_yaxis()
    ax.set_yticks(rows)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("message i")
    ax.set_title(
        title or "FIFO playout: a message plays when it has arrived and the previous one ended"
    )
    # beside the axes: inside, it would cover some message's bar whatever the data
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return ax

"""Timelines of outbound messages: when each was sent, arrived at Twilio, and played.

See notebooks/01_why_tiny_packets_jitter.ipynb (and 03_explorer.ipynb, which redraws it live).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection

from labkit.outbound.base import BYTES_PER_MS
from labkit.plots._axes import legend_if_labelled, new_axes, require_columns
from labkit.sim.batch_playout import Pieces
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
    if not (np.all(np.isfinite(values)) and values.min() >= 0):
        raise ValueError(f"gaps_text: gap lengths must be finite ms >= 0, got {values.tolist()}")
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


class PlayedSchedule(Protocol):
    """A run (``labkit.sim.SimResult``): its schedule and the pieces its messages played in."""

    @property
    def schedule(self) -> pd.DataFrame: ...

    @property
    def pieces(self) -> Pieces | None: ...


def _schedule_and_pieces(
    run: pd.DataFrame | PlayedSchedule, pieces: Pieces | None
) -> tuple[pd.DataFrame, Pieces | None]:
    if isinstance(run, pd.DataFrame):
        return run, pieces
    return run.schedule, run.pieces if pieces is None else pieces


def playout_gaps(
    run: pd.DataFrame | PlayedSchedule, pieces: Pieces | None = None
) -> pd.DataFrame:
    """Gaps: silences inside one answer, where the caller's queue ran dry; the gaps
    labkit.sim.metrics counts (``concealment_events``, ``concealed_ms``).

    ``run`` is a ``SimResult`` or its schedule. Returns a frame with columns item_id, start_ms,
    end_ms, gap_ms. A gap lies between two consecutive played pieces of one answer (item_id and
    content_index), each message one piece unless the run's ``pieces`` (a frame clock plays a
    message in several; given with a schedule, ``pieces=``) say otherwise. A silence between
    two answers is a pause between utterances, and one across a clear inside an answer is the
    barge-in's: neither is a gap.
    """
    schedule, pieces = _schedule_and_pieces(run, pieces)
    require_columns(schedule, {"kind", "item_id", "content_index", "play_start_ms",
                               "play_end_ms"}, "schedule")  # fmt: skip
    kinds = schedule["kind"].to_numpy()
    if pieces is None:
        played = schedule["play_start_ms"].notna() & schedule["play_end_ms"].notna()
        if "played_bytes" in schedule:
            played &= schedule["played_bytes"].fillna(0) > 0
        rows = np.flatnonzero((kinds == "media") & played.to_numpy())
        starts = schedule["play_start_ms"].to_numpy(dtype=float)[rows]
        ends = schedule["play_end_ms"].to_numpy(dtype=float)[rows]
    else:
        rows, starts = pieces.rows, pieces.start_ms
        ends = starts + pieces.bytes / BYTES_PER_MS
    answers = pd.MultiIndex.from_arrays([
        schedule["item_id"].to_numpy()[rows], schedule["content_index"].to_numpy()[rows],
        np.cumsum(kinds == "clear")[rows]])  # fmt: skip
    same_answer = answers[1:] == answers[:-1]
    silence = starts[1:] - ends[:-1]
    is_gap = same_answer & (silence > GAP_TOLERANCE_MS)
    return pd.DataFrame({"item_id": schedule["item_id"].to_numpy()[rows][1:][is_gap],
                         "start_ms": ends[:-1][is_gap], "end_ms": starts[1:][is_gap],
                         "gap_ms": silence[is_gap]})  # fmt: skip


def packet_timeline(
    run: pd.DataFrame | PlayedSchedule,
    ax: Axes | None = None,
    *,
    window_ms: tuple[float, float] | None = None,
    title: str | None = None,
    pieces: Pieces | None = None,
) -> Axes:
    """Each media message as a point sent, a point arrived and a segment played; gaps shaded red.

    x is wall time (ms), y is the audio already handed to the sender (ms of media, cumulative
    over the call), so the played segments form a staircase whose flat steps are what the caller
    hears as silence. ``window_ms`` restricts the x range (messages overlapping it are drawn).
    ``run`` is a ``SimResult`` or its schedule; with a schedule of a run under a frame clock,
    give its ``pieces`` too: its gaps fall between the pieces of a message (``playout_gaps``).
    """
    schedule, pieces = _schedule_and_pieces(run, pieces)
    if window_ms is not None and not window_ms[0] < window_ms[1]:
        raise ValueError(f"packet_timeline: window_ms must run from an earlier to a later time, "
                         f"got {window_ms}")  # fmt: skip
    ax = new_axes(ax)
    played = _with_media_position(schedule)
    durations_ms = (played["play_end_ms"] - played["play_start_ms"]).to_numpy(dtype=float)
    media_ms = played["media_ms"].to_numpy(dtype=float)
    audio_ms = played["size"].to_numpy(dtype=float) / BYTES_PER_MS
    gaps = playout_gaps(schedule, pieces)
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
    legend_if_labelled(ax, loc="upper left", fontsize="small")
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
    legend_if_labelled(ax, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return ax

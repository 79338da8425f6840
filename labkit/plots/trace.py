"""What a trace delivered: media time against arrival time per item, and how big the deltas were.

See notebooks/00_traces.ipynb.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes

from labkit.audio import BYTES_PER_MS
from labkit.outbound.base import FRAME_BYTES
from labkit.plots._axes import legend_if_labelled, new_axes
from labkit.traces import Trace

PR_THRESHOLD_BYTES = 400  # the unmerged PR's 50 ms rechunk threshold
MAX_LEGEND_ITEMS = 8  # a long conversation would otherwise bury the plot under its legend
REALTIME_STYLE = {"color": "0.5", "linestyle": ":", "linewidth": 1.0}
INTERRUPT_COLOR = "tab:red"


def plot_trace_timeline(trace: Trace, ax: Axes | None = None) -> Axes:
    """Audio delivered (media ms of the item) against arrival time, one step curve per item.

    The dotted diagonal from each item's first arrival is real time: a curve above it means the
    model delivered faster than the caller can listen; a curve that falls below it would starve
    playout. A red cross marks where the caller barged in (``audio_interrupted``).
    """
    ax = new_axes(ax)
    interrupted = trace.interrupted_items
    for index, key in enumerate(trace.items):
        arrivals = trace.arrivals_ms(key)
        delivered_ms = (trace.offsets_ms(key) + trace.sizes(key) / BYTES_PER_MS).astype(float)
        label = f"{key[0]}" if index < MAX_LEGEND_ITEMS else None
        (line,) = ax.step(arrivals, delivered_ms, where="post", label=label, linewidth=1.4)
        line.set_marker(".")
        line.set_markersize(3)
        first, total = float(arrivals[0]), float(delivered_ms[-1])
        span = np.array([first, first + total])
        ax.plot(span, span - first, **REALTIME_STYLE)  # type: ignore[arg-type]
        if key in interrupted:
            cut_ms = _interrupt_time(trace, key)
            ax.plot([cut_ms], [total], "x", color=INTERRUPT_COLOR, markersize=10, mew=2)
            ax.annotate(
                "barge-in",
                (cut_ms, total),
                xytext=(6, 6),
                textcoords="offset points",
                color=INTERRUPT_COLOR,
            )
    ax.plot([], [], label="real time (1 ms per ms)", **REALTIME_STYLE)  # type: ignore[arg-type]
    ax.set_xlabel("arrival time (ms since session start)")
    ax.set_ylabel("audio delivered (media ms of the item)")
    ax.set_title(f"Delivery timeline: {_name(trace)}")
    legend_if_labelled(ax, loc="upper left", fontsize="small")
    ax.grid(True, alpha=0.3)
    return ax


def _interrupt_time(trace: Trace, key: tuple[str, int]) -> float:
    for event in trace.events:
        if event.type == "audio_interrupted" and event.key == key:
            return float(event.t_ms)
    return float(trace.arrivals_ms(key)[-1])


def plot_delta_sizes(trace: Trace, ax: Axes | None = None) -> Axes:
    """Histogram of audio delta sizes (bytes), marking one Twilio frame and the PR's threshold."""
    ax = new_axes(ax)
    sizes = (
        np.concatenate([trace.sizes(key) for key in trace.items]) if trace.items else np.array([])
    )
    # Linear bins from zero, wide enough to show the frame and threshold lines next to the data.
    right = max(int(sizes.max()) if len(sizes) else 0, PR_THRESHOLD_BYTES) * 1.05
    ax.hist(sizes, bins=list(np.linspace(0.0, right, 61)), color="tab:blue", alpha=0.8)
    ax.set_xlim(0.0, right)
    ax.axvline(FRAME_BYTES, color="tab:green", linestyle="--", label="160 B = one 20 ms frame")
    ax.axvline(PR_THRESHOLD_BYTES, color="tab:orange", linestyle="--",
               label="400 B = 50 ms (the report's buffer)")
    ax.set_xlabel("delta size (bytes of mu-law; 8 bytes = 1 ms)")
    ax.set_ylabel("number of deltas")
    ax.set_title(f"Delta sizes: {_name(trace)} ({len(sizes)} deltas)")
    legend_if_labelled(ax, fontsize="small")
    return ax


def _name(trace: Trace) -> str:
    generator = trace.header.get("generator")
    if isinstance(generator, dict) and isinstance(generator.get("trace"), str):
        return str(generator["trace"])
    return str(trace.header.get("source", "trace"))

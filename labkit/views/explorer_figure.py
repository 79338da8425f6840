"""The explorer's figure: built once, then updated in place (new data on the same artists).

Top: a window of the call, each media message as a tick when sent, a dot when it reached Twilio,
and a green segment while it played; red spans are gaps (silences inside an answer) that the
carrier conceals, grey spans padding the playout model inserted, yellow bands each answer's word
start (its first 200 ms of audio, where a gap is heard as "h-h-hello"). Bottom: the whole call,
with the window outlined. Updating artists instead of drawing a new figure keeps a redraw to one
Agg pass; see labkit/views/explorer_app.py for the live canvas, notebooks/03_explorer.ipynb for
the reading.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from labkit.sim.metrics import ONSET_MS
from labkit.views.explorer import ExplorerView, FloatArray, Timeline
from labkit.views.explorer import merged as _merged  # the overview joins runs of pieces

FIGSIZE_IN = (10.0, 5.0)
LEFT_IN, RIGHT_IN = 0.75, 0.25  # margins for the y labels and the last tick label
MS_PER_S = 1000.0
SENT_COLOR = "tab:blue"
ARRIVED_COLOR = "tab:orange"
PLAYED_COLOR = "tab:green"
GAP_COLOR = "tab:red"
FILL_COLOR = "0.55"
ONSET_COLOR = "gold"
WINDOW_COLOR = "0.2"
SPAN_ALPHA = 0.45
ONSET_ALPHA = 0.3
TICKS = 8  # at most this many tick labels on an axis: text is most of a redraw's cost
Y_MARGIN = 0.04  # of the visible media range, above and below


def legend_handles() -> list[Artist]:
    """What each mark of the detail means (the live explorer shows these as HTML instead:
    text is most of a redraw's cost)."""
    return [
        Line2D([], [], linestyle="", marker="|", color=SENT_COLOR, label="sent"),
        Line2D([], [], linestyle="", marker="o", color=ARRIVED_COLOR, label="reached Twilio"),
        Line2D([], [], color=PLAYED_COLOR, linewidth=2, label="played"),
        Patch(facecolor=GAP_COLOR, alpha=SPAN_ALPHA, label="gap (concealed)"),
        Patch(facecolor=FILL_COLOR, alpha=SPAN_ALPHA, label="padding (silence sent)"),
        Patch(facecolor=ONSET_COLOR, alpha=ONSET_ALPHA,
              label=f"word start (first {ONSET_MS:.0f} ms of an answer)"),
    ]


class ExplorerFigure:
    """A figure whose artists ``update(view, window_ms)`` refills: nothing is rebuilt.

    ``live=True`` (the explorer's canvas): the data artists are animated, drawn over a cached
    background of axes, ticks and labels; ``draw()`` then redraws only them when the axes'
    limits stayed (they are rounded to tick steps, so switching strategy on one trace keeps
    them: the eye compares runs on fixed axes, and text, most of a redraw's cost, is not
    redrawn)."""

    def __init__(self, figure: Figure | None = None, *, with_legend: bool = True,
                 with_title: bool = True, live: bool = False) -> None:  # fmt: skip
        self.figure = figure if figure is not None else Figure(figsize=FIGSIZE_IN)
        self.with_legend, self.with_title = with_legend, with_title
        top = 0.91 if with_title else 0.97
        left, width = self._across()
        self.detail = self.figure.add_axes((left, 0.36, width, top - 0.36))
        self.overview = self.figure.add_axes((left, 0.1, width, 0.11))
        self._build_detail(self.detail)
        self._build_overview(self.overview)
        self._limits: tuple[float, ...] = ()
        self._drawn_limits: tuple[float, ...] | None = None
        self._background: object | None = None
        self.live = live
        if live:
            for _, artist in self._data_artists():
                artist.set_animated(True)
            self.figure.canvas.mpl_connect("draw_event", self._on_full_draw)

    def _across(self) -> tuple[float, float]:
        """Where both axes start and how wide they are (figure fractions): the figure's width
        but for margins fixed in inches, so a narrower figure keeps room for its labels."""
        width_in = float(self.figure.get_figwidth())
        return LEFT_IN / width_in, 1 - (LEFT_IN + RIGHT_IN) / width_in

    def set_width(self, width_in: float) -> None:
        """Resize the figure to ``width_in`` (its height stays); the next ``draw`` is full."""
        self.figure.set_size_inches(width_in, self.figure.get_figheight(), forward=True)
        left, width = self._across()
        for ax in (self.detail, self.overview):
            _, bottom, _, height = ax.get_position().bounds
            ax.set_position((left, bottom, width, height))
        self._background = None  # cached at the old size

    def _data_artists(self) -> list[tuple[Axes, Artist]]:
        detail = [self.onsets, self.fills, self.gaps, self.sent, self.arrived, self.played]
        overview = [self.heard_all, self.fills_all, self.gaps_all, self.window]
        return [(self.detail, a) for a in detail] + [(self.overview, a) for a in overview]

    def _on_full_draw(self, _event: object) -> None:
        """After any full draw (ours, or the toolbar's pan and zoom): keep the background and
        the limits it was drawn with, then draw the data over it."""
        canvas: Any = self.figure.canvas  # an Agg canvas (ipympl's is one): it can copy regions
        self._background = canvas.copy_from_bbox(self.figure.bbox)
        self._drawn_limits = self._current_limits()
        self._draw_data()

    def _current_limits(self) -> tuple[float, ...]:
        return (*self.detail.get_xlim(), *self.detail.get_ylim(), *self.overview.get_xlim())

    def _draw_data(self) -> None:
        for ax, artist in self._data_artists():
            ax.draw_artist(artist)

    def draw(self) -> None:
        """Draw into the figure's canvas: the data alone when the limits stayed (``live``)."""
        canvas: Any = self.figure.canvas
        if not self.live or self._background is None or self._limits != self._drawn_limits:
            canvas.draw()
            return
        canvas.restore_region(self._background)
        self._draw_data()
        canvas.blit(self.figure.bbox)

    def _build_detail(self, ax: Axes) -> None:
        span = ax.get_xaxis_transform()  # x in data, y from 0 to 1 of the axes
        self.onsets = PolyCollection([], facecolors=ONSET_COLOR, alpha=ONSET_ALPHA, transform=span,
                                     linewidths=0)  # fmt: skip
        self.fills = PolyCollection([], facecolors=FILL_COLOR, alpha=SPAN_ALPHA, transform=span,
                                    linewidths=0)  # fmt: skip
        self.gaps = PolyCollection([], facecolors=GAP_COLOR, alpha=SPAN_ALPHA, transform=span,
                                   linewidths=0)  # fmt: skip
        for spans in (self.onsets, self.fills, self.gaps):
            ax.add_collection(spans)
        (self.sent,) = ax.plot([], [], "|", color=SENT_COLOR, markersize=5)
        (self.arrived,) = ax.plot([], [], "o", color=ARRIVED_COLOR, markersize=2.5)
        (self.played,) = ax.plot([], [], "-", color=PLAYED_COLOR, linewidth=2,
                                 solid_capstyle="butt")  # fmt: skip
        ax.set_xlabel("wall time (s)")
        ax.set_ylabel("audio sent so far (s)")
        ax.xaxis.set_major_locator(MaxNLocator(TICKS))
        ax.yaxis.set_major_locator(MaxNLocator(TICKS - 3))
        self.title = ax.set_title("", fontsize="medium", loc="left")
        if self.with_legend:
            ax.legend(handles=legend_handles(), loc="upper left", fontsize="small", ncols=2,
                      framealpha=0.85)  # fmt: skip

    def _build_overview(self, ax: Axes) -> None:
        span = ax.get_xaxis_transform()
        self.heard_all = PolyCollection([], facecolors=PLAYED_COLOR, transform=span,
                                        linewidths=0)  # fmt: skip
        self.fills_all = PolyCollection([], facecolors=FILL_COLOR, transform=span,
                                        linewidths=0)  # fmt: skip
        # gaps as lines, at least a pixel wide: a 20 ms gap in 98 s would vanish as a span (so
        # would padding inside an answer: it is a gap the title counts, drawn grey)
        self.gaps_all = LineCollection([], colors=GAP_COLOR, linewidths=1.2, transform=span)
        for artist in (self.heard_all, self.fills_all, self.gaps_all):
            ax.add_collection(artist)
        self.window = Rectangle((0, 0), 0, 1, transform=span, facecolor="none",
                                edgecolor=WINDOW_COLOR, linewidth=1.2)  # fmt: skip
        ax.add_patch(self.window)
        ax.set_yticks([])
        ax.set_ylim(0, 1)
        ax.xaxis.set_major_locator(MaxNLocator(TICKS))
        ax.set_xlabel("the whole call (s); the box: the window above")

    def update(self, view: ExplorerView, window_ms: tuple[float, float] | None = None) -> None:
        """Show ``view`` in ``window_ms`` (default: the whole call)."""
        timeline = view.timeline
        lo, hi = window_ms if window_ms is not None else timeline.windows()["whole"][1]
        self._update_detail(timeline, lo, hi)
        self._update_overview(timeline, lo, hi)
        if self.with_title:
            self.title.set_text(view.title())

    def _update_detail(self, t: Timeline, lo: float, hi: float) -> None:
        rows = (t.play_end_ms >= lo) & (t.sent_ms <= hi)
        media_s = t.media_ms[rows] / MS_PER_S
        self.sent.set_data(t.sent_ms[rows] / MS_PER_S, media_s)
        self.arrived.set_data(t.arrived_ms[rows] / MS_PER_S, media_s)
        starts, ends = t.play_start_ms[rows] / MS_PER_S, t.play_end_ms[rows] / MS_PER_S
        tops = media_s + t.audio_ms[rows] / MS_PER_S
        self.played.set_data(_segments(starts, ends), _segments(media_s, tops))
        self.gaps.set_verts(_spans(t.gaps, lo, hi))
        self.fills.set_verts(_spans(t.fills, lo, hi))
        self.onsets.set_verts(_spans(t.answers[:, :2], lo, hi))
        x_limits = rounded_limits(lo / MS_PER_S, hi / MS_PER_S)
        self.detail.set_xlim(*x_limits)
        bottom, top = (float(np.min(media_s)), float(np.max(tops))) if rows.any() else (0.0, 1.0)
        room = 6 if self.with_legend else 1  # above the data, for the legend
        margin = max(top - bottom, 0.05) * Y_MARGIN
        y_limits = rounded_limits(bottom - margin, top + margin * room)
        self.detail.set_ylim(*y_limits)
        self._limits = (*x_limits, *y_limits)

    def _update_overview(self, t: Timeline, lo: float, hi: float) -> None:
        end = max(t.end_ms, hi)
        # one span per run of touching pieces: paced plays ~4,900 pieces in 98 s, and a path
        # per piece cost ~80 ms a redraw for the same pixels
        self.heard_all.set_verts(_spans(_merged(t.heard), 0, end, low=0.35, high=0.65))
        self.fills_all.set_verts(_spans(_merged(t.fills), 0, end, low=0.35, high=0.65))
        # every silence the title counts, red where concealed, grey where padding only
        middles = t.silences.mean(axis=1) / MS_PER_S if len(t.silences) else np.zeros(0)
        self.gaps_all.set_segments([[(x, 0.1), (x, 0.9)] for x in middles.tolist()])
        self.gaps_all.set_colors([FILL_COLOR if padding else GAP_COLOR
                                  for padding in t.silence_is_padding.tolist()])  # fmt: skip
        self.window.set_bounds(lo / MS_PER_S, 0, (hi - lo) / MS_PER_S, 1)
        overview_limits = rounded_limits(0, end / MS_PER_S)
        self.overview.set_xlim(*overview_limits)
        self._limits = (*self._limits, *overview_limits)


def rounded_limits(low: float, high: float) -> tuple[float, float]:
    """``low`` and ``high`` rounded out to a step of 1, 2 or 5 times a power of ten, about a
    twentieth of the span: limits that stay put while the data moves a little."""
    span = max(high - low, 1e-9)
    power = 10.0 ** math.floor(math.log10(span / 20))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= span / 20)
    return math.floor(low / step) * step, math.ceil(high / step) * step


def _segments(starts: FloatArray, ends: FloatArray) -> FloatArray:
    """One polyline for many segments: start, end, NaN (a break), repeated."""
    joined = np.column_stack([starts, ends, np.full(len(starts), np.nan)])
    return joined.ravel()


def _spans(intervals: FloatArray, lo: float, hi: float, low: float = 0.0,
           high: float = 1.0) -> list[FloatArray]:  # fmt: skip
    """Rectangles (x in s, y in axes fraction) of the intervals (ms) that overlap [lo, hi]."""
    if len(intervals) == 0:
        return []
    seen = intervals[(intervals[:, 1] >= lo) & (intervals[:, 0] <= hi)] / MS_PER_S
    x0, x1 = seen[:, 0], seen[:, 1]
    corners = np.stack([np.column_stack([x0, np.full_like(x0, low)]),
                        np.column_stack([x0, np.full_like(x0, high)]),
                        np.column_stack([x1, np.full_like(x0, high)]),
                        np.column_stack([x1, np.full_like(x0, low)])], axis=1)  # fmt: skip
    return list(corners)


def render(view: ExplorerView, window_ms: tuple[float, float] | None = None,
           figure: Figure | None = None) -> Figure:  # fmt: skip
    """The explorer's figure of ``view`` (a new one unless ``figure`` is given)."""
    drawn = ExplorerFigure(figure)
    drawn.update(view, window_ms)
    return drawn.figure

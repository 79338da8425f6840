"""The explorer's widgets: controls over ``explore``, a live figure, the metrics and the audio.

One layer serves JupyterLab (notebooks/03_explorer.ipynb) and ``labkit explore`` (Voila), so
both compute alike. The figure is an ipympl canvas whose artists are updated in place
(labkit/views/explorer_figure.py) and drawn once per change: the browser receives the changed
pixels, not a new PNG figure inside an output area. Sliders report on release. A redraw is queued
on the kernel's event loop and reads the controls when it runs, so changes that arrive before it
runs share it. The audio follows the figure once the controls rest, and then the runs of the
other strategies are computed, so that switching strategy shows a kept run. The figure takes the
width the page gives it (labkit/views/page_width.py). See notebooks/03_explorer.ipynb.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import math
import threading
import traceback
from base64 import b64encode
from collections.abc import Iterator, Sequence
from dataclasses import replace
from enum import IntEnum
from pathlib import Path
from typing import Any, cast

import ipywidgets as widgets
import numpy as np
import numpy.typing as npt
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from labkit.outbound import threshold_meaning
from labkit.sim import PLAYOUT_NAMES
from labkit.sim.links import LINK_NAMES, link_parameters
from labkit.views.explorer import (
    CONCEAL_LABELS,
    DEFAULT_CONCEAL,
    LINK_CONTROLS,
    LINK_MEANS,
    PLAYOUT_MEANS,
    STRATEGY_CHOICES,
    THRESHOLD,
    ExplorerSettings,
    ExplorerView,
    explore,
    no_gap_hint,
    other_strategies,
    trace_choices,
    your_traces,
)
from labkit.views.explorer_figure import FIGSIZE_IN, ExplorerFigure, legend_handles
from labkit.views.page_width import PageWidth
from labkit.views.png import rgba_png

AUDIO_AFTER_S = 0.4  # the audio follows the figure once the controls rest this long
ROOT_CLASS = "labkit-explorer"  # the browser tests find the explorer by it
WIDE = widgets.Layout(width="98%", max_width="980px")
HALF = widgets.Layout(width="49%", max_width="480px", min_width="420px")  # narrower: one a row
LABEL_WIDE = {"description_width": "250px"}
LABEL_HALF = {"description_width": "220px"}
# three a row, wrapping to two, then one, in narrower windows rather than cutting names short:
# ("original report (first commit)" needs 320 px with its label; three fit from ~1000 px on)
DROPDOWN = widgets.Layout(width="32%", min_width="320px", max_width="330px")
ROW_WRAP = widgets.Layout(flex_flow="row wrap", width="100%")
STALE_CLASS = "labkit-stale"  # a figure and metrics not of the settings the controls show
STALE_STYLE = f"<style>.{STALE_CLASS} {{opacity: 0.3; filter: grayscale(1)}}</style>"
TABLE_STYLE = "border-collapse:collapse;font-size:13px;line-height:1.35"
MIN_FIGURE_IN = 5.0  # narrower than this the labels crowd: the page clips the figure instead
FIGURE_FRAME_PX = 10  # ipympl's borders around the canvas, and a little room
FIGURE_STEP_PX = 20  # widths in steps: a window dragged a few pixels redraws nothing


class Work(IntEnum):
    """What a control change needs done, in order of inclusion: an update redraws as well."""

    REDRAW = 1
    UPDATE = 2


class Explorer:
    """The explorer in a notebook or a Voila page: ``display(Explorer().box)``.

    ``update()`` recomputes and redraws now (the notebook calls it once, so nbval sees the
    figure drawn headless); control changes call it through the event loop."""

    def __init__(self, settings: ExplorerSettings | None = None,
                 traces: str | Path | Sequence[str | Path] = (),
                 read_traces_first: bool = True) -> None:
        """``traces``: your own trace files or directories of them (``labkit serve --record``,
        ``labkit import``), offered after the shipped ones; each is read once to check it
        unless ``read_traces_first`` is False (``labkit explore`` read them already)."""
        self.settings = settings or ExplorerSettings()
        self.trace_choices = trace_choices(traces, read_first=read_traces_first)
        if self.settings.trace not in {spec for _, spec in self.trace_choices}:
            # a file named only in the settings: offered too, the others not read again
            own, *more = your_traces([self.settings.trace], read_first=read_traces_first)
            if more:
                raise ValueError(f"explorer: trace {self.settings.trace!r} is a directory; "
                                 "give one trace (directories go in traces=)")  # fmt: skip
            self.trace_choices.append(own)
            self.settings = replace(self.settings, trace=own[1])
        self.view: ExplorerView | None = None
        # set while the code itself moves controls, per thread: the changes it causes are
        # echoes to ignore, but a person's change arriving on another thread meanwhile is not
        self._quiet = threading.local()
        self._pending: Work | None = None  # work queued on an event loop, not yet run
        self._pending_lock = threading.Lock()
        # one update at a time, each reading the controls once it runs: two threads' updates
        # could otherwise finish out of order and leave the older settings shown
        self._update_lock = threading.RLock()
        self._audio_timer: asyncio.TimerHandle | None = None
        self._build_controls()
        self._build_outputs()
        self.box = widgets.VBox([
            widgets.HBox([self.trace, self.strategy, self.playout], layout=ROW_WRAP),
            self.threshold,
            widgets.HBox([self.link, self.seed]),
            self.link_means,  # its own row: the two meanings, one line each
            widgets.HBox(list(self.link_sliders.values()), layout=ROW_WRAP),
            self.notes,
            self.window,
            self.title,
            self.hint,
            self.legend,
            self.page_width,
            self.canvas,
            widgets.HBox([self.readout, widgets.VBox([self.audio_label, self.audio,
                                                      self.conceal,
                                                      widgets.HBox([self.score, self.mos])])]),
        ], layout=widgets.Layout(width="100%"))  # fmt: skip
        self.box.add_class(ROOT_CLASS)
        for control in self._inputs():
            control.observe(self._changed, names="value")
        self.window.observe(self._window_changed, names="value")
        self.page_width.observe(self._width_changed, names="width_px")

    @property
    def _muted(self) -> bool:
        return bool(getattr(self._quiet, "on", False))

    @_muted.setter
    def _muted(self, on: bool) -> None:
        self._quiet.on = on

    # building

    def _build_controls(self) -> None:
        s = self.settings
        self.trace = widgets.Dropdown(options=self.trace_choices, value=s.trace,
                                      description="trace", layout=DROPDOWN)  # fmt: skip
        self.strategy = widgets.Dropdown(options=STRATEGY_CHOICES, value=(s.strategy, s.variant),
                                         description="strategy", layout=DROPDOWN)  # fmt: skip
        self.playout = widgets.Dropdown(options=PLAYOUT_NAMES, value=s.playout,
                                        description="playout", layout=DROPDOWN)  # fmt: skip
        self.threshold = widgets.FloatSlider(
            value=s.threshold_ms, min=THRESHOLD.low, max=THRESHOLD.high, step=THRESHOLD.step,
            description=THRESHOLD.label, continuous_update=False, readout_format=".0f",
            layout=WIDE, style=LABEL_WIDE,
        )
        self.link = widgets.Dropdown(options=LINK_NAMES, value=s.link, description="link",
                                     layout=DROPDOWN)  # fmt: skip
        self.seed = widgets.BoundedIntText(value=s.seed, min=0, max=9999, description="seed",
                                           layout=widgets.Layout(width="150px"),
                                           style={"description_width": "40px"})  # fmt: skip
        self.link_means = widgets.HTML()
        self.link_sliders = {
            name: widgets.FloatSlider(
                min=c.low, max=c.high, step=c.step, description=c.label, continuous_update=False,
                readout_format=".2f" if c.step < 1 else ".0f", layout=HALF, style=LABEL_HALF,
            )
            for name, c in LINK_CONTROLS.items()
        }
        self._show_link(s)

    def _build_outputs(self) -> None:
        self.figure = Figure(figsize=FIGSIZE_IN)  # not pyplot's: no inline copy under the cell
        self.drawing = ExplorerFigure(self.figure, with_legend=False, with_title=False, live=True)
        self.title = widgets.HTML()
        self.hint = widgets.HTML()
        self.legend = widgets.HTML(_legend_html() + STALE_STYLE)
        self.canvas = _live_canvas(self.figure)
        self.page_width = PageWidth()
        self.window = widgets.Dropdown(options=[("whole call", "whole")], value="whole",
                                       description="show", layout=WIDE)  # fmt: skip
        self.notes = widgets.HTML()
        self.readout = widgets.HTML(layout=widgets.Layout(width="60%"))
        self.audio_label = widgets.HTML("<b>What the caller hears</b>")
        self.audio = widgets.Audio(value=b"", format="wav", autoplay=False, controls=True)
        self.conceal = widgets.ToggleButtons(
            options=[(label, mode) for mode, label in CONCEAL_LABELS.items()],
            value=DEFAULT_CONCEAL, description="gaps heard as", style={"button_width": "auto"},
        )
        self.conceal.observe(self._conceal_changed, names="value")
        self.score = widgets.Button(description="score it: PESQ MOS-LQO",
                                    tooltip="ITU-T P.862 against the answers played without "
                                    "gaps; about 1 s on a long call",
                                    layout=widgets.Layout(width="200px"))  # fmt: skip
        self.score.on_click(self._score)
        self.mos = widgets.HTML()

    def _inputs(self) -> list[Any]:
        return [self.trace, self.strategy, self.playout, self.threshold, self.link, self.seed,
                *self.link_sliders.values()]  # fmt: skip

    # control changes

    def _changed(self, change: dict[str, Any]) -> None:
        if self._muted:
            return
        if change["owner"] is self.link:  # a new link starts from its own defaults
            self._show_link(self.settings.with_link(change["new"]))
        elif change["owner"] is self.playout:
            self._show_meanings(change["new"], self.link.value)
        self._queue(Work.UPDATE)

    def _window_changed(self, _change: dict[str, Any]) -> None:
        if not self._muted and self.view is not None:
            self._queue(Work.REDRAW)

    def _width_changed(self, change: dict[str, Any]) -> None:
        """The page's width changed: the figure takes it (up to its own width), then redraws."""
        canvas = self.canvas
        css_px_per_in = self.figure.dpi / canvas.device_pixel_ratio
        room_px = change["new"] - FIGURE_FRAME_PX
        room_px -= room_px % FIGURE_STEP_PX
        width_in = min(max(room_px / css_px_per_in, MIN_FIGURE_IN), FIGSIZE_IN[0])
        with canvas.lock:
            if width_in == self.figure.get_figwidth():
                return
            self.drawing.set_width(width_in)
        if self.view is not None:
            self._queue(Work.REDRAW)

    def _queue(self, work: Work) -> None:
        """Do ``work`` once the messages already waiting have been read: all changes that came
        in meanwhile fold into one run, of the most they need (an update also redraws). At
        once where no event loop runs.

        JupyterLab may deliver widget messages on a kernel subshell's thread, with its own
        event loop, while the notebook's own thread runs cells and its loop: the work then runs
        on the loop of whichever thread queued it first, and the pending work is shared."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._do(work)
            return
        with self._pending_lock:
            first = self._pending is None
            self._pending = work if first else max(cast(Work, self._pending), work)
        if first:
            loop.call_soon(self._run_pending)

    def _run_pending(self) -> None:
        with self._pending_lock:
            work, self._pending = self._pending, None
        if work is not None:
            self._do(work)

    def _do(self, work: Work) -> None:
        if work is Work.UPDATE:
            self.update()
        else:
            self._redraw()

    def settings_from_controls(self) -> ExplorerSettings:
        strategy, variant = self.strategy.value
        taken = link_parameters(self.link.value)
        defaults = ExplorerSettings().with_link(self.link.value).params()
        moved = {name: float(slider.value) for name, slider in self.link_sliders.items()
                 if name in taken and float(slider.value) != defaults[name]}  # fmt: skip
        chosen = replace(self.settings, trace=self.trace.value, strategy=strategy,
                         variant=variant, threshold_ms=float(self.threshold.value),
                         playout=self.playout.value, seed=int(self.seed.value))  # fmt: skip
        return chosen.with_link(self.link.value).with_params(**moved)

    # showing

    def update(self) -> ExplorerView | None:
        """Recompute for the controls' settings and redraw; a bad setting is said, in place of
        the notes, and the last figure stays, dimmed, under a title saying it is not updated."""
        with self._update_lock:
            return self._update()

    def _update(self) -> ExplorerView | None:
        try:
            settings = self.settings_from_controls()
            view = explore(settings)
        except ValueError as exc:
            self.notes.value = _note_html([f"cannot simulate: {exc}"], error=True)
            self._show_stale("the settings above cannot be simulated (the red note says why)")
            return self.view
        except Exception as exc:  # shown, not lost in the kernel's log: the page has no other
            self.notes.value = _note_html([traceback.format_exc()], error=True)
            self._show_stale(f"the simulation failed ({type(exc).__name__})")
            return self.view
        self.settings, self.view = settings, view
        self._show_strategy(settings)
        self._show_windows(view)
        self._redraw()
        self._show_current(view)
        self.notes.value = _note_html(view.notes)
        self.readout.value = _readout_html(view)
        self._queue_rest_work(view)
        return view

    def _redraw(self) -> None:
        if self.view is None:
            return
        _, window_ms = self.view.timeline.windows().get(self.window.value, (None, None))
        with self.canvas.lock:  # ipympl may be drawing this figure for the browser meanwhile
            self.drawing.update(self.view, window_ms)
            self.drawing.draw()  # one Agg pass, sent to the browser at once (no draw_idle trip)

    def _queue_rest_work(self, view: ExplorerView) -> None:
        """Load the caller's audio once the controls rest for ``AUDIO_AFTER_S``: 98 s of audio
        is 1.6 MB for the browser to take in, which would hold up the next figure if every
        passing setting sent its own. Then compute the other strategies' runs (``_prefetch``)."""

        self.mos.value = ""  # a score belongs to the run it was computed for

        def load(then_prefetch: bool) -> None:
            if self.view is not view:
                return
            try:
                self.audio.value = view.wav(self.conceal.value)
            except (ValueError, MemoryError) as exc:  # said; never another run's audio kept
                self.audio.value = b""
                self.notes.value = _note_html([f"cannot render the audio: {exc}"], error=True)
                return
            if then_prefetch:
                self._prefetch(iter(other_strategies(view.settings)), view)

        if self._audio_timer is not None:
            self._audio_timer.cancel()
        try:
            self._audio_timer = asyncio.get_running_loop().call_later(AUDIO_AFTER_S, load, True)
        except RuntimeError:  # no event loop (a notebook run headless): nothing to wait for
            load(False)

    def _prefetch(self, todo: Iterator[ExplorerSettings], view: ExplorerView) -> None:
        """While the controls rest, compute the next run of ``todo`` (``explore`` keeps it), then
        queue the rest: switching strategy then shows a kept run (~0.1 s sooner on the 98 s
        trace). One run per turn of the event loop, so a control change waits for one run at
        most; a change stops the rest (they were for the settings it left)."""
        if self.view is not view or self._pending is not None:
            return
        settings = next(todo, None)
        if settings is None:
            return
        with contextlib.suppress(ValueError):  # settings it cannot run: the control says so
            explore(settings)
        asyncio.get_running_loop().call_soon(self._prefetch, todo, view)

    def _conceal_changed(self, _change: dict[str, Any]) -> None:
        if self.view is not None:
            self._queue_rest_work(self.view)

    def _score(self, _button: Any = None) -> None:
        """MOS-LQO of the shown run as heard (on request: about 1 s on the 98 s trace)."""
        if self.view is None:
            return
        self.mos.value = "<i>scoring...</i>"
        try:
            score = self.view.mos(self.conceal.value)
        except (ValueError, MemoryError) as exc:  # a call too long to render: said in place
            self.mos.value = f"<i>cannot score: {html.escape(str(exc))}</i>"
            return
        if math.isnan(score):
            self.mos.value = "<i>no answer long enough to score</i>"
            return
        heard = html.escape(CONCEAL_LABELS[self.conceal.value])
        self.mos.value = f"<b>MOS-LQO {score:.2f}</b> (gaps {heard}; 1 bad, 4.5 a clean copy)"

    def _stale_outputs(self) -> list[widgets.DOMWidget]:
        """What shows a run: the figure, its metrics and its audio."""
        return [self.canvas, self.readout, self.audio]

    def _show_current(self, view: ExplorerView) -> None:
        """The title, the hint and the outputs are of ``view``: shown plainly."""
        self.title.value = f"<b>{html.escape(view.title())}</b>"
        hint = no_gap_hint(view)
        self.hint.value = "" if hint is None else (
            f"<div class='labkit-hint' style='font-size:13px'><i>{html.escape(hint)}</i></div>")
        for output in self._stale_outputs():
            output.remove_class(STALE_CLASS)

    def _show_stale(self, reason: str) -> None:
        """The controls show settings the outputs are not of: the outputs are dimmed and the
        title says so, so the page never passes an old run off as the controls' one."""
        shown = "" if self.view is None else f" Dimmed below: {self.view.title()}."
        self.title.value = (f"<b style='color:#b00020'>not updated: {html.escape(reason)}."
                            f"</b>{html.escape(shown)}")  # fmt: skip
        self.hint.value = ""
        for output in self._stale_outputs():
            output.add_class(STALE_CLASS)

    def _show_strategy(self, settings: ExplorerSettings) -> None:
        meaning = threshold_meaning(settings.strategy)
        # forward has no threshold, but the slider still moves in ms: its unit stays said
        self.threshold.description = meaning or f"threshold (ms; {settings.strategy} ignores it)"
        self.threshold.disabled = meaning is None

    def _show_link(self, settings: ExplorerSettings) -> None:
        """Sliders to the link's parameters; those it does not take, disabled."""
        params = settings.params()
        self._muted = True
        try:
            for name, slider in self.link_sliders.items():
                slider.disabled = name not in params
                if name in params:
                    slider.value = min(max(params[name], slider.min), slider.max)
        finally:
            self._muted = False
        self._show_meanings(self.playout.value, settings.link)

    def _show_meanings(self, playout: str, link: str) -> None:
        """What the chosen link and playout model, in words, beside the link's controls."""
        self.link_means.value = "".join(
            f"<div style='padding-left:92px'>{what} <i>{name}</i>: {html.escape(meaning)}</div>"
            for what, name, meaning in (("link", link, LINK_MEANS[link]),
                                        ("playout", playout, PLAYOUT_MEANS[playout])))

    def _show_windows(self, view: ExplorerView) -> None:
        windows = view.timeline.windows()
        options = [(label, key) for key, (label, _) in windows.items()]
        keep = self.window.value if self.window.value in windows else "whole"
        self._muted = True
        try:
            self.window.options = options
            self.window.value = keep
        finally:
            self._muted = False


def _note_html(lines: list[str], error: bool = False) -> str:
    if not lines:
        return ""
    colour = "#b00020" if error else "#7a5b00"
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    tag = "pre" if error and "Traceback" in lines[0] else "ul"
    body = f"<pre>{html.escape(lines[0])}</pre>" if tag == "pre" else f"<ul>{items}</ul>"
    return f"<div class='labkit-notes' style='color:{colour};font-size:13px'>{body}</div>"


def _legend_html() -> str:
    marks = []
    for handle in legend_handles():
        colour = to_hex(handle.get_color() if isinstance(handle, Line2D)
                        else cast(Patch, handle).get_facecolor())  # fmt: skip
        alpha = 1.0 if isinstance(handle, Line2D) else handle.get_alpha() or 1.0
        shape = {"|": "&#x2502;", "o": "&#x25CF;"}.get(str(getattr(handle, "get_marker",
                                                                    lambda: "")()), "&#x25AC;")
        marks.append(f"<span style='color:{colour};opacity:{alpha:.2f};font-size:16px'>"
                     f"{shape}</span>&nbsp;{html.escape(str(handle.get_label()))}")
    return ("<div style='font-size:13px;padding-left:70px'>"
            + "&emsp;".join(marks) + "</div>")  # fmt: skip


def _readout_html(view: ExplorerView) -> str:
    rows = "".join(
        f"<tr><td style='padding:1px 12px 1px 0'>{html.escape(r.label)}</td>"
        f"<td style='text-align:right;font-variant-numeric:tabular-nums'>"
        f"{html.escape(r.text())}</td></tr>"
        for r in view.readouts()
    )
    return f"<table class='labkit-readout' style='{TABLE_STYLE}'>{rows}</table>"


def _live_canvas(figure: Figure) -> Any:
    """An ipympl canvas on ``figure`` (a widget: it lives in the box, draws in the browser)."""
    from ipympl.backend_nbagg import Canvas, FigureManager

    class LiveCanvas(Canvas):  # type: ignore[misc]  # ipympl is untyped
        """ipympl's canvas with three changes:

        - its PNGs come from labkit.views.png (~10 ms instead of ~30 ms a change);
        - until a browser shows it, the image it keeps (and a saved notebook stores) is a data
          URL: ipympl keeps bare base64, which the browser loads as a URL, fails on, and then
          never sizes the canvas: a blank figure after Run All;
        - one thread at a time draws (``lock``): JupyterLab may deliver the browser's "draw"
          requests on a kernel subshell's thread while the notebook's thread redraws, and two
          renders into one Agg buffer send the browser a half-drawn figure."""

        def __init__(self, figure: Figure) -> None:
            self.lock = threading.RLock()  # re-entered: a draw's draw_event draws the data
            super().__init__(figure)

        def draw(self) -> None:
            with self.lock:
                super().draw()

        def blit(self, bbox: Any = None) -> None:
            with self.lock:
                super().blit(bbox)

        # matplotlib's webagg canvas state, which this class reads and writes
        _png_is_old: bool
        _force_full: bool
        _last_buff: npt.NDArray[np.uint32]

        def get_diff_image(self) -> bytes | None:
            # The webagg protocol (matplotlib.backends.backend_webagg_core): once per new
            # render, a "full" image, or a "diff" holding only the changed pixels (the rest
            # transparent) that the browser draws over what it has; full when nothing to diff
            # against or when the render itself has transparency.
            if not self._png_is_old:
                return None
            rgba = np.asarray(self.get_renderer().buffer_rgba())
            pixels = rgba.view(np.uint32).squeeze(2)
            full = (self._force_full or pixels.shape != self._last_buff.shape
                    or bool((rgba[:, :, 3] != 255).any()))  # fmt: skip
            self.set_image_mode("full" if full else "diff")
            shown = pixels if full else np.where(pixels != self._last_buff, pixels, 0)
            self._last_buff = pixels.copy()
            self._force_full = self._png_is_old = False
            return rgba_png(shown.view(np.uint8).reshape((*shown.shape, 4)))

        def send_binary(self, data: bytes) -> None:
            if self.syncing_data_url:
                pixels = self._last_buff.view(dtype=np.uint8).reshape((*self._last_buff.shape, 4))
                self._data_url = f"data:image/png;base64,{b64encode(rgba_png(pixels)).decode()}"
            self.send({"data": '{"type": "binary"}'}, buffers=[data])

    canvas = LiveCanvas(figure)
    FigureManager(canvas, 0)  # the canvas sends its pixels through its manager
    canvas.header_visible = False
    canvas.footer_visible = False
    canvas.resizable = False
    canvas.toolbar_visible = "fade-in-fade-out"
    canvas.toolbar_position = "right"
    return canvas

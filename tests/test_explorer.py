"""The explorer's compute, figure and widgets: deterministic, honours every control, says what has
no effect, draws what the metrics count, rejects bad settings by name."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.backends.backend_agg import FigureCanvasAgg

from labkit.cli.explore import app_notebook, voila_argv
from labkit.sim import PLAYOUT_NAMES
from labkit.sim.links import LINK_NAMES
from labkit.views.explorer import (
    LINK_CONTROLS,
    ExplorerSettings,
    explore,
    notes,
)
from labkit.views.explorer_figure import ExplorerFigure, _merged, render, rounded_limits

SMALL = ExplorerSettings(trace="bursty", strategy="forward")
STRATEGIES = 7  # choices of the strategy control


def test_explore_is_deterministic_and_cached_per_settings() -> None:
    first = explore(SMALL)
    assert explore(ExplorerSettings(trace="bursty", strategy="forward")) is first
    explore.cache_clear()
    assert explore(SMALL).result.metrics == first.result.metrics


def test_explore_passes_strategy_threshold_and_variant_through() -> None:
    forward = explore(SMALL)
    rechunk = explore(ExplorerSettings(trace="bursty", strategy="rechunk", threshold_ms=100))
    assert rechunk.result.metrics.media_messages < forward.result.metrics.media_messages
    final = explore(ExplorerSettings(trace="bursty", strategy="original_report"))
    first = explore(ExplorerSettings(trace="bursty", strategy="original_report", variant="first"))
    assert final.result.metrics.mark_messages != first.result.metrics.mark_messages


def test_link_parameters_reach_the_link_and_a_new_link_starts_from_its_defaults() -> None:
    calm = ExplorerSettings(trace="realtime_jitter", link="stalls").with_params(rate_per_s=0.0)
    stormy = calm.with_params(rate_per_s=2.0)
    assert explore(stormy).result.metrics.concealed_ms > explore(calm).result.metrics.concealed_ms
    assert stormy.params()["rate_per_s"] == 2.0
    assert stormy.with_link("jitter").params() == ExplorerSettings(link="jitter").params()


def test_notes_name_the_controls_without_effect() -> None:
    assert any("threshold has no effect" in note for note in notes(SMALL))
    assert not any("threshold" in note for note in notes(SMALL.with_link("tcp").__class__(
        strategy="preroll")))  # fmt: skip
    ideal = " ".join(notes(ExplorerSettings(strategy="preroll", link="ideal")))
    assert all(LINK_CONTROLS[name].label in ideal
               for name in ("mean_ms", "delay_ms", "rate_per_s"))  # fmt: skip
    assert "stress model" in " ".join(notes(ExplorerSettings(link="jitter")))
    assert "not a hypothesis about Twilio" in " ".join(notes(ExplorerSettings(playout="fixed")))


def test_every_link_and_playout_runs() -> None:
    for link in LINK_NAMES:
        for playout in PLAYOUT_NAMES:
            view = explore(ExplorerSettings(trace="bursty", link=link, playout=playout))
            assert view.result.metrics.media_messages > 0, (link, playout)


@pytest.mark.parametrize("playout", PLAYOUT_NAMES)
@pytest.mark.parametrize(("trace", "link", "params"), [
    ("realtime_jitter", "stalls", {"rate_per_s": 1.0}),
    ("tiny_deltas", "jitter", {}),
])  # fmt: skip
def test_the_timeline_draws_the_silence_the_metrics_count(
    playout: str, trace: str, link: str, params: dict[str, float]
) -> None:
    view = explore(ExplorerSettings(trace=trace, link=link, playout=playout).with_params(**params))
    t, m = view.timeline, view.result.metrics
    answers = t.answers.tolist()
    inside = [(s, e) for s, e in t.fills.tolist()
              if any(first <= (s + e) / 2 < last for first, _, last in answers)]  # fmt: skip
    drawn_ms = float((t.gaps[:, 1] - t.gaps[:, 0]).sum()) + sum(e - s for s, e in inside)
    assert drawn_ms == pytest.approx(m.concealed_ms, abs=1e-6)
    if playout == "fifo":  # messages play whole: the drawn onsets are the metric's
        onset = t.gaps[t.gap_at_onset]
        assert float((onset[:, 1] - onset[:, 0]).sum()) == pytest.approx(m.onset_concealed_ms)


def test_windows_zoom_to_the_longest_gaps_and_each_answer() -> None:
    view = explore(ExplorerSettings(trace="tiny_deltas", link="jitter"))
    windows = view.timeline.windows()
    assert windows["whole"][1][0] == 0.0
    assert {"gap", "onset_gap", "answer 1"} <= set(windows)
    label, (lo, hi) = windows["onset_gap"]
    assert "word start" in label and lo < hi


def test_readouts_are_rounded_with_units() -> None:
    view = explore(ExplorerSettings(trace="long_conversation", strategy="paced"))
    for readout in view.readouts():
        text = readout.text()
        unit = readout.unit if readout.unit in text else readout.unit.removesuffix("s")
        assert unit in text or text == "-"
        number = text.removesuffix(unit).strip().replace(",", "")
        assert number == "-" or len(number.partition(".")[2]) <= 1, text
    table = view.table()
    assert list(table.columns) == ["value", "unit"]
    assert "42.0" not in table.to_string() and not any(
        isinstance(value, float) and value.is_integer() and unit not in ("MOS", "per s of audio")
        for value, unit in zip(table["value"], table["unit"], strict=True))  # counts are whole


def test_render_draws_the_detail_and_the_whole_call() -> None:
    view = explore(SMALL)
    figure = render(view)
    FigureCanvasAgg(figure)
    figure.canvas.draw()
    detail, overview = figure.axes
    assert "gaps" in detail.get_title(loc="left") and "(s)" in detail.get_xlabel()
    assert "(s)" in detail.get_ylabel() and "(s)" in overview.get_xlabel()
    pixels = np.asarray(figure.canvas.buffer_rgba())
    assert (pixels[..., :3] < 200).any(axis=-1).mean() > 0.02  # ink, not a blank image


def test_the_live_figure_redraws_only_the_data_while_the_axes_stay() -> None:
    drawing = ExplorerFigure(live=True, with_legend=False, with_title=False)
    FigureCanvasAgg(drawing.figure)
    drawing.update(explore(SMALL))
    drawing.draw()
    before = np.asarray(drawing.figure.canvas.buffer_rgba()).copy()
    drawing.update(explore(ExplorerSettings(trace="bursty", strategy="rechunk")))
    assert drawing._limits == drawing._drawn_limits  # same trace: the blit path
    drawing.draw()
    after = np.asarray(drawing.figure.canvas.buffer_rgba())
    assert (before != after).any()
    full = ExplorerFigure(with_legend=False, with_title=False)  # drawn whole, the usual way
    FigureCanvasAgg(full.figure)
    full.update(explore(ExplorerSettings(trace="bursty", strategy="rechunk")))
    full.figure.canvas.draw()
    assert (np.asarray(full.figure.canvas.buffer_rgba()) == after).mean() > 0.99


def test_rounded_limits_round_outwards_to_a_tick_step() -> None:
    assert rounded_limits(0.0, 97.3) == (0.0, 100.0)
    low, high = rounded_limits(1.23, 2.71)
    assert low <= 1.23 and high >= 2.71 and high - low < 1.7


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (ExplorerSettings(strategy="teleport"), "strategy"),
        (ExplorerSettings(link="carrier_pigeon"), "link"),
        (ExplorerSettings(playout="vinyl"), "playout"),
        (ExplorerSettings(threshold_ms=-1.0), "threshold_ms"),
        (ExplorerSettings(link="ideal").with_params(mean_ms=50.0), "mean_ms"),
        (ExplorerSettings(link="jitter").with_params(p99_ms=20.0), "p99_ms"),
    ],
)
def test_bad_settings_are_rejected_by_name(settings: ExplorerSettings, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        explore(settings)


def test_widgets_follow_their_controls_without_a_kernel() -> None:
    from labkit.views.explorer_app import Explorer

    explorer = Explorer(SMALL)
    view = explorer.update()
    assert view is not None and view.settings == SMALL
    assert explorer.threshold.disabled and "ignores" in explorer.threshold.description
    assert "threshold has no effect" in explorer.notes.value
    assert bytes(explorer.audio.value).startswith(b"RIFF")
    explorer.strategy.value = ("preroll", "final")
    assert explorer.view is not None and explorer.view.settings.strategy == "preroll"
    assert not explorer.threshold.disabled and "pre-roll" in explorer.threshold.description
    explorer.link.value = "stalls"
    assert explorer.link_sliders["mean_ms"].disabled
    assert "rare path freezes" in explorer.link_means.value and "back to back" in (
        explorer.link_means.value)  # the link and the playout, in words
    explorer.playout.value = "prefetch"
    assert "waits for 60 ms" in explorer.link_means.value and "rare path freezes" in (
        explorer.link_means.value)
    explorer.playout.value = "fifo"
    assert explorer.link_sliders["rate_per_s"].value == 0.2  # the stalls link's default
    explorer.link_sliders["rate_per_s"].value = 1.0
    assert explorer.view.settings.params()["rate_per_s"] == 1.0
    explorer.link.value = "jitter"
    explorer.link_sliders["p99_ms"].value = 20  # below the mean: said, the last figure kept
    assert "cannot simulate" in explorer.notes.value and "p99_ms" in explorer.notes.value
    assert explorer.view.settings.link == "jitter" and explorer.view.settings.link_params == ()
    assert "<table" in explorer.readout.value and " ms<" in explorer.readout.value
    explorer.conceal.value = "silence"
    assert bytes(explorer.audio.value) == explorer.view.wav("silence")
    explorer.score.click()
    assert "MOS-LQO" in explorer.mos.value


def test_the_caller_is_heard_with_either_concealment_and_scored() -> None:
    from labkit.sim.render import CONCEAL_MODES
    from labkit.views.explorer import CONCEAL_LABELS

    assert set(CONCEAL_LABELS) == set(CONCEAL_MODES)
    view = explore(ExplorerSettings(trace="tiny_deltas", link="jitter"))
    plc, silence = view.wav("plc"), view.wav("silence")
    assert plc.startswith(b"RIFF") and len(plc) == len(silence) and plc != silence
    assert 1.0 < view.mos("silence") <= 4.6
    assert view._mos["silence"] == view.mos("silence")  # kept, not scored twice


def test_labkit_explore_serves_the_same_widgets_on_localhost(tmp_path: object) -> None:
    notebook = app_notebook()
    code = "".join(cell["source"] for cell in notebook["cells"] if cell["cell_type"] == "code")
    assert "labkit.views.explorer_app import Explorer" in code
    argv = voila_argv(__import__("pathlib").Path("x.ipynb"), "127.0.0.1", 8866, False)
    assert "--Voila.ip=127.0.0.1" in argv and "--no-browser" in argv and "--port=8866" in argv
    assert "--MappingKernelManager.cull_idle_timeout=60" in argv  # pages left free their kernel
    assert "--MappingKernelManager.cull_connected=False" in argv  # an open page keeps its own
    assert "--preheat_kernel=True" in argv and "--pool_size=1" in argv  # a warm kernel waits
    cold = voila_argv(__import__("pathlib").Path("x.ipynb"), "127.0.0.1", 8866, False,
                      warm_kernels=0)  # fmt: skip
    assert not any("preheat" in arg or "pool_size" in arg for arg in cold)


def test_labkit_explore_refuses_a_kernel_lifetime_or_warm_pool_out_of_range(
        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from labkit.cli import main as cli_main

    for bad in ("0", "-5", "nan", "inf"):
        assert cli_main(["explore", "--no-browser", "--idle-kernel-s", bad]) == 2
        assert "--idle-kernel-s must be a finite number > 0" in capsys.readouterr().err
    for bad in ("-1", "17"):
        assert cli_main(["explore", "--no-browser", "--warm-kernels", bad]) == 2
        assert "--warm-kernels must be 0..16" in capsys.readouterr().err


def _your_call(directory: Path) -> Path:
    """A trace of your own, as `labkit serve --record` leaves one: here a copy of a shipped one."""
    from labkit.traces import shipped

    (directory / "recorded").mkdir()
    mine = directory / "recorded" / "my_call.jsonl.gz"
    shutil.copyfile(shipped("bursty"), mine)
    return mine


def test_your_own_traces_are_offered_after_the_shipped_ones_and_explored(tmp_path: Path) -> None:
    from labkit.views.explorer_app import Explorer

    mine = _your_call(tmp_path)
    explorer = Explorer(SMALL, traces=[tmp_path / "recorded"])  # a directory of recorded calls
    labels = [label for label, _ in explorer.trace.options]
    assert labels[:2] == ["barge_in", "bursty"] and labels[-1] == "my_call (yours)"
    explorer.trace.value = str(mine.resolve())
    assert explorer.view is not None and explorer.view.settings.trace == str(mine.resolve())
    assert explorer.view.title().startswith("my_call (yours): forward over tcp")
    shipped_twin = explore(replace(SMALL, trace="bursty"))  # the same bytes: the same numbers
    assert explorer.view.result.metrics == shipped_twin.result.metrics
    alone = Explorer(replace(SMALL, trace=str(mine)))  # a file named only in the settings
    assert alone.trace.value == str(mine.resolve()) and alone.trace.label == "my_call (yours)"
    shutil.copyfile(mine, tmp_path / "recorded" / "my_other_call.jsonl.gz")
    with pytest.raises(ValueError, match="is a directory; give one trace"):
        Explorer(replace(SMALL, trace=str(tmp_path / "recorded")))


def test_a_trace_of_yours_that_is_not_one_is_named_with_its_line(tmp_path: Path) -> None:
    from labkit.views.explorer_app import Explorer

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"labkit_trace": 1}\nnot json\n')
    with pytest.raises(ValueError, match=rf"{bad}, line \d+: "):
        Explorer(SMALL, traces=[bad])
    unread = Explorer(SMALL, traces=[bad], read_traces_first=False)  # offered, read when picked
    assert unread.trace.options[-1] == ("bad (yours)", str(bad.resolve()))
    unread.update()
    unread.trace.value = str(bad.resolve())  # said above the figure, the last figure kept
    assert f"cannot simulate: {bad.resolve()}, line 2: not valid JSON" in unread.notes.value
    assert unread.view is not None and unread.view.settings.trace == SMALL.trace


def test_labkit_explore_offers_your_traces_and_refuses_a_bad_one_before_starting(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from labkit.cli import main as cli_main

    mine = _your_call(tmp_path)
    code = "".join(cell["source"] for cell in app_notebook([str(mine)])["cells"]
                   if cell["cell_type"] == "code")  # fmt: skip
    assert f"Explorer(traces={[str(mine)]!r}, read_traces_first=False)" in code  # read once
    (tmp_path / "recorded" / "broken.jsonl").write_text("{not json\n")
    (tmp_path / "recorded" / "empty.jsonl").write_text("")
    assert cli_main(["explore", "--no-browser", str(tmp_path / "recorded")]) == 2
    said = capsys.readouterr().err  # every bad one, as a sweep says it (it named the first)
    assert said.startswith("labkit explore: 2 of 3 traces cannot be read:\n")
    assert f"  {tmp_path / 'recorded' / 'broken.jsonl'}, line 1: " in said
    assert f"  {tmp_path / 'recorded' / 'empty.jsonl'}, line 1: " in said
    assert cli_main(["explore", "--no-browser", "no_such_trace"]) == 2
    assert "'no_such_trace' is neither a file" in capsys.readouterr().err


@given(st.lists(st.tuples(st.integers(0, 400), st.integers(0, 60)), max_size=40))
def test_the_overview_joins_touching_pieces_keeping_gaps(pieces: list[tuple[int, int]]) -> None:
    """The overview draws runs of heard audio, not ~4,900 pieces: the same instants covered."""
    intervals = np.array([(start, start + length) for start, length in pieces],
                         dtype=float).reshape(-1, 2)  # fmt: skip
    runs = _merged(intervals)
    assert np.all(runs[:, 0] <= runs[:, 1])
    assert np.all(runs[1:, 0] > runs[:-1, 1])  # disjoint, in order, a gap between any two
    grid = np.arange(-1, 462) + 0.5  # half-ms instants: inside or outside, never on an edge
    covered = ((grid[:, None] > intervals[:, 0]) & (grid[:, None] < intervals[:, 1])).any(axis=1)
    in_runs = ((grid[:, None] > runs[:, 0]) & (grid[:, None] < runs[:, 1])).any(axis=1)
    assert np.array_equal(covered, in_runs)


def test_the_live_canvas_sends_the_images_matplotlib_would() -> None:
    """Its own PNG writer, the webagg protocol's images: the same mode and, decoded, the same
    pixels as matplotlib's get_diff_image, for a first (full) image and for a change (diff)."""
    import io

    from matplotlib.backends.backend_webagg_core import FigureCanvasWebAggCore
    from PIL import Image

    from labkit.views.explorer_app import Explorer

    explorer = Explorer(SMALL)
    explorer.update()
    canvas = explorer.canvas

    def both(last: np.ndarray, force_full: bool) -> list[tuple[str, np.ndarray]]:
        sent = []
        for get_diff_image in (type(canvas).get_diff_image, FigureCanvasWebAggCore.get_diff_image):
            canvas._last_buff, canvas._force_full, canvas._png_is_old = last, force_full, True
            png = get_diff_image(canvas)
            sent.append((canvas._image_mode, np.asarray(Image.open(io.BytesIO(png)))))
            assert get_diff_image(canvas) is None  # nothing new rendered: nothing to send
        return sent

    first = canvas._last_buff.copy()
    (mode, ours), (theirs_mode, theirs) = both(first, force_full=True)
    assert mode == theirs_mode == "full" and np.array_equal(ours, theirs)
    assert (ours[:, :, 3] == 255).all()
    explorer.strategy.value = ("paced", "final")  # new data over the same axes
    (mode, ours), (theirs_mode, theirs) = both(first, force_full=False)
    assert mode == theirs_mode == "diff" and np.array_equal(ours, theirs)
    changed = ours[:, :, 3] > 0
    assert 0 < changed.mean() < 0.5  # some pixels changed, the axes did not


def test_the_other_strategies_are_each_choice_but_the_shown_one() -> None:
    from labkit.views.explorer import STRATEGY_CHOICES, other_strategies

    settings = replace(SMALL, strategy="original_report", variant="first", threshold_ms=80)
    others = other_strategies(settings)
    assert [(s.strategy, s.variant) for s in others] == [
        pair for _, pair in STRATEGY_CHOICES if pair != ("original_report", "first")]
    assert all(replace(s, strategy=settings.strategy, variant=settings.variant) == settings
               for s in others)  # fmt: skip


def test_resting_controls_compute_the_other_strategies_a_change_stops_that() -> None:
    """Once the controls rest (audio loaded), the other strategies' runs are kept, so switching
    strategy is a kept run; a run queued for settings the controls left is not computed."""
    from labkit.views.explorer import other_strategies
    from labkit.views.explorer_app import AUDIO_AFTER_S, Explorer

    resting = replace(SMALL, seed=4242)  # settings no other test runs: nothing kept before

    async def rest() -> None:
        explorer = Explorer(resting)
        explorer.update()
        await asyncio.sleep(AUDIO_AFTER_S + 0.2)
        for _ in range(3 * STRATEGIES):  # one run per turn of the loop
            await asyncio.sleep(0)
        assert bytes(explorer.audio.value).startswith(b"RIFF")

    asyncio.run(rest())
    for settings in other_strategies(resting):
        hits = explore.cache_info().hits
        explore(settings)
        assert explore.cache_info().hits == hits + 1, f"{settings.strategy} was not kept"

    async def move_on() -> None:
        explorer = Explorer(replace(SMALL, seed=4343))
        left = explorer.update()
        explorer.strategy.value = ("paced", "final")
        misses = explore.cache_info().misses
        explorer._prefetch(iter(other_strategies(left.settings)), left)  # the change is queued
        await asyncio.sleep(0)  # the change runs: a new view
        assert left is not None and explorer.view is not left
        explorer._prefetch(iter(other_strategies(left.settings)), left)
        await asyncio.sleep(0)
        assert explore.cache_info().misses == misses + 1  # the change's own run, nothing else

    asyncio.run(move_on())


def test_changes_in_one_batch_fold_into_the_most_they_need() -> None:
    """A "show" change (a redraw) then a strategy change (an update), both read before the
    event loop turns: the update runs, so the figure shows the strategy the control shows."""
    from labkit.views.explorer_app import Explorer

    async def batch() -> None:
        explorer = Explorer(SMALL)
        explorer.update()
        explorer.window.value = [key for _, key in explorer.window.options][1]
        explorer.strategy.value = ("paced", "final")
        await asyncio.sleep(0)
        assert explorer.view is not None and explorer.view.settings.strategy == "paced"
        explorer.strategy.value = ("preroll", "final")
        explorer.window.value = "whole"  # a redraw after an update: still the update
        await asyncio.sleep(0)
        assert explorer.view.settings.strategy == "preroll"

    asyncio.run(batch())


def test_the_figure_takes_the_width_the_page_gives_it() -> None:
    """The browser reports the page's width (labkit.views.page_width); the figure narrows to it
    in 20 px steps, never below 5 in nor above its own 10 in, labels keeping their margin."""
    from labkit.views.explorer_app import Explorer
    from labkit.views.explorer_figure import LEFT_IN

    explorer = Explorer(SMALL)
    explorer.update()
    assert explorer.figure.get_figwidth() == 10.0  # no browser: as drawn headless
    for page_px, width_in in ((900, 8.8), (905, 8.8), (5000, 10.0), (200, 5.0)):
        explorer.page_width.width_px = page_px
        assert explorer.figure.get_figwidth() == pytest.approx(width_in), page_px
        assert explorer.canvas.get_width_height() == (round(width_in * 100), 500)
        left_in = explorer.drawing.detail.get_position().x0 * width_in
        assert left_in == pytest.approx(LEFT_IN)


def test_draws_from_two_threads_never_send_a_half_drawn_figure() -> None:
    """JupyterLab may deliver the browser's draw requests on a kernel subshell's thread while
    the notebook's thread redraws and resizes the figure: each full image sent is a whole
    render (two renders into one Agg buffer sent a figure of a few tick labels)."""
    import io
    import threading

    from PIL import Image

    from labkit.views.explorer_app import Explorer

    explorer = Explorer(SMALL)
    explorer.update()
    canvas = explorer.canvas
    full_images: list[bytes] = []

    def keep(_content: object, buffers: list[bytes] | None = None) -> None:
        if buffers and canvas._current_image_mode == "full":
            full_images.append(bytes(buffers[0]))

    canvas.send = keep
    done = threading.Event()

    def browser_draws() -> None:  # ipympl's "draw" request, as a subshell handles it
        while not done.wait(0.002):  # a request, then the next one once it has the image
            canvas.manager.handle_json({"type": "draw"})

    other = threading.Thread(target=browser_draws)
    other.start()
    try:
        for width_px in (900, 1010, 700, 1010) * 3:
            explorer.page_width.width_px = width_px
    finally:
        done.set()
        other.join()
    assert len(full_images) >= 12

    def ink(png: bytes) -> float:
        pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        return float((pixels < 230).any(axis=2).mean())

    whole = ink(full_images[-1])
    assert whole > 0.02
    assert min(ink(png) for png in full_images) > whole / 2


def test_a_change_on_another_thread_is_not_taken_for_the_code_s_own() -> None:
    """While one thread's code moves controls (their changes are echoes, ignored), a person's
    change delivered on another thread (a JupyterLab kernel subshell) still counts."""
    import threading

    from labkit.views.explorer_app import Explorer

    explorer = Explorer(SMALL)
    explorer.update()
    explorer._muted = True
    try:
        person = threading.Thread(target=lambda: setattr(explorer.strategy, "value",
                                                         ("paced", "final")))  # fmt: skip
        person.start()
        person.join()
    finally:
        explorer._muted = False
    assert explorer.view is not None and explorer.view.settings.strategy == "paced"


def test_the_title_names_the_variant_counts_in_the_singular_and_shows_a_short_gap() -> None:
    """Both variants of the report's buffer had the same title; one gap read "1 gaps"; a gap
    of 0.05 ms read "0 ms of silence"."""
    from labkit.views.explorer import explore

    first = explore(replace(SMALL, strategy="original_report", variant="first")).title()
    final = explore(replace(SMALL, strategy="original_report", variant="final")).title()
    assert "original report (first commit) 50 ms" in first
    assert "original report (final code) 50 ms" in final
    call = explore(ExplorerSettings(trace="tiny_deltas_call"))  # one gap of 0.05 ms, seed 0
    assert call.result.metrics.concealment_events == 1
    assert "1 gap, <1 ms of silence" in call.title()


def test_every_playout_is_said_in_words() -> None:
    from labkit.sim.playout import PLAYOUT_NAMES
    from labkit.views.explorer import PLAYOUT_MEANS

    assert set(PLAYOUT_MEANS) == set(PLAYOUT_NAMES)

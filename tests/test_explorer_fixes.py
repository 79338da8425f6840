"""The explorer's defects fixed: ``labkit explore`` stopped by a signal stops Voila, its kernels and
its temporary directory; ``labkit`` commands do not pay for nbformat; every gap the title counts
can be zoomed to; every control says its unit and what it sets; a figure never shows a run for
settings other than the controls'; the page says what to try when a run has no gap."""

from __future__ import annotations

import html
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import psutil
import pytest

from labkit.views.explorer import LINK_CONTROLS, ExplorerSettings, explore

REPO = Path(__file__).resolve().parents[1]
SERVE_START_S = 90.0  # Voila's start, and its warm kernel's run through the notebook
STOP_S = 20.0  # labkit gives Voila 10 s to stop before it kills it
POLL_S = 0.25


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def _until(condition: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(POLL_S)
    return bool(condition())  # type: ignore[operator]


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def explore_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, set[int]]]:
    """``labkit explore --no-browser`` on a free port, in a session of its own; the test adds
    the ids of the processes it saw started to the set, and all are killed however it ends."""
    port = _free_port()
    (tmp_path / "tmp").mkdir()  # its temporary directory goes here, whatever becomes of it
    env = dict(os.environ, PYTHONUNBUFFERED="1", TMPDIR=str(tmp_path / "tmp"))
    for variable, name in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                           ("IPYTHONDIR", "ipython")]:  # fmt: skip
        env[variable] = str(tmp_path / name)  # nothing of the user's read or written
    with (tmp_path / "explore.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "labkit", "explore", "--no-browser", "--port", str(port),
             "--warm-kernels", "1"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip
    seen = {process.pid}
    try:
        yield process, port, seen
    finally:
        for pid in seen:  # what an unfixed labkit leaves: Voila, its kernels
            try:
                left = psutil.Process(pid)
                # ours (its environment), not a process that took a freed id since
                if left.environ().get("JUPYTER_CONFIG_DIR") == env["JUPYTER_CONFIG_DIR"]:
                    left.kill()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        process.wait(timeout=STOP_S)


def _descendants(process: psutil.Process) -> list[psutil.Process]:
    try:
        return list(process.children(recursive=True))
    except psutil.NoSuchProcess:
        return []


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX signals and process groups")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_stops_voila_its_kernels_and_removes_the_temporary_directory(
        stop: signal.Signals, explore_process: tuple[subprocess.Popen[bytes], int, set[int]],
        tmp_path: Path) -> None:  # fmt: skip
    """Before: labkit exited on SIGTERM, its Voila kept serving (HTTP 200), its kernels kept
    running and /tmp/labkit-explore-* stayed. SIGINT is a terminal's Ctrl-C, sent to labkit
    alone: Voila runs in a group of its own."""
    process, port, seen = explore_process
    static = f"http://127.0.0.1:{port}/voila/static/voila.js"  # "/" would take a kernel
    labkit = psutil.Process(process.pid)

    def kernel_ready() -> bool:
        return _answers(static) and any(
            "ipykernel" in " ".join(child.cmdline()) for child in _descendants(labkit))

    assert _until(kernel_ready, SERVE_START_S), (tmp_path / "explore.log").read_text()[-3000:]
    voila = [child for child in labkit.children() if "voila" in " ".join(child.cmdline())]
    assert len(voila) == 1
    started = _descendants(labkit)
    seen.update(p.pid for p in started)
    notebook = Path(next(arg for arg in voila[0].cmdline() if arg.endswith(".ipynb")))
    assert notebook.parent.name.startswith("labkit-explore-") and notebook.exists()

    process.send_signal(stop)  # to labkit alone, as `kill PID` does
    assert process.wait(timeout=STOP_S) == 128 + stop
    assert _until(lambda: not _answers(static), STOP_S), "Voila still serves"
    assert _until(lambda: not any(_alive(p) for p in started), STOP_S), [
        " ".join(p.cmdline()) for p in started if _alive(p)]
    assert not notebook.parent.exists()
    assert f"labkit explore: stopped ({stop.name})" in (tmp_path / "explore.log").read_text()


def test_building_the_command_line_does_not_import_nbformat() -> None:
    """Every labkit command built the whole parser, and ``labkit explore``'s module imported
    nbformat (~1.3 s of jsonschema) at once."""
    code = ("import sys\nfrom labkit.cli import build_parser\nbuild_parser()\n"
            "print('nbformat' in sys.modules, 'jsonschema' in sys.modules)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=True)  # fmt: skip
    assert done.stdout.split() == ["False", "False"]


def test_the_notebook_labkit_explore_serves_is_still_validated() -> None:
    from labkit.cli.explore import app_notebook

    assert app_notebook()["nbformat"] == 4  # nbformat.validate ran, imported where needed


def test_every_gap_the_title_counts_can_be_zoomed_to_padding_included() -> None:
    """tiny_deltas_call, forward, tcp, frame_clock: the title said "3 gaps, 30 ms of silence (3
    at word starts)" but "show" offered no gap: the three were padding, and only concealed gaps
    were offered."""
    view = explore(ExplorerSettings(trace="tiny_deltas_call", strategy="forward", link="tcp",
                                    playout="frame_clock"))  # fmt: skip
    assert "3 gaps, 30 ms of silence (3 at word starts)" in view.title()
    windows = view.timeline.windows()
    assert {"gap", "onset_gap"} <= set(windows)
    label, (lo, hi) = windows["gap"]
    assert label.startswith("longest gap: 14 ms at 9.2 s") and "padding" in label
    assert lo < 9200 < hi
    assert "word start" in windows["onset_gap"][0] and "padding" in windows["onset_gap"][0]
    assert len(view.timeline.silences) == view.result.metrics.concealment_events


@pytest.mark.parametrize(("trace", "link", "playout"), [
    ("tiny_deltas", "jitter", "fifo"), ("tiny_deltas_call", "tcp", "frame_clock"),
    ("long_conversation", "tcp", "pad_every_message"), ("realtime_jitter", "stalls", "prefetch"),
    ("bursty", "tcp", "frame_clock_skip"),
])  # fmt: skip
def test_the_silences_offered_are_the_gaps_the_title_counts(trace: str, link: str,
                                                            playout: str) -> None:  # fmt: skip
    view = explore(ExplorerSettings(trace=trace, link=link, playout=playout))
    t, m = view.timeline, view.result.metrics
    assert len(t.silences) == m.concealment_events
    assert float((t.silences[:, 1] - t.silences[:, 0]).sum()) == pytest.approx(m.concealed_ms)
    concealed = float((t.gaps[:, 1] - t.gaps[:, 0]).sum())
    lengths = t.silences[:, 1] - t.silences[:, 0]
    assert float((lengths - t.silence_padded_ms).sum()) == pytest.approx(concealed, abs=1e-6)
    kinds = {"concealed" if not padding else "padding" for padding in t.silence_is_padding}
    label = t.windows().get("gap", ("",))[0]
    assert (m.concealment_events == 0) == (label == "")
    assert not kinds or any(kind in label for kind in ("concealed", "padding"))


def test_the_overview_marks_padded_gaps_too_in_the_padding_s_colour() -> None:
    from matplotlib.colors import to_rgba

    from labkit.views.explorer_figure import FILL_COLOR, ExplorerFigure

    drawing = ExplorerFigure()
    drawing.update(explore(ExplorerSettings(trace="tiny_deltas_call", playout="frame_clock")))
    assert len(drawing.gaps_all.get_segments()) == 3  # none before: no concealed gap
    assert all(tuple(colour) == to_rgba(FILL_COLOR) for colour in drawing.gaps_all.get_colors())


def test_the_ignored_threshold_still_says_its_unit() -> None:
    from labkit.views.explorer_app import Explorer

    explorer = Explorer(ExplorerSettings(strategy="forward"))
    explorer.update()
    assert explorer.threshold.description == "threshold (ms; forward ignores it)"
    assert explorer.threshold.disabled
    explorer.strategy.value = ("rechunk", "final")
    assert explorer.threshold.description == "message size (ms of audio)"


def test_a_figure_the_controls_left_is_dimmed_and_retitled_not_passed_off_as_current() -> None:
    """The jitter link's mean dragged past its 99th percentile: the red note said "cannot
    simulate", but the old figure and its title stayed as though current."""
    from labkit.views.explorer_app import STALE_CLASS, Explorer

    explorer = Explorer(ExplorerSettings(trace="bursty", link="jitter"))
    shown = explorer.update()
    assert shown is not None and STALE_CLASS not in explorer.canvas._dom_classes
    explorer.link_sliders["mean_ms"].value = 200  # the 99th percentile is 150 ms
    assert "cannot simulate" in explorer.notes.value
    assert explorer.title.value.startswith("<b style='color:#b00020'>not updated: ")
    assert html_text(explorer.title.value).endswith(f"Dimmed below: {shown.title()}.")
    assert all(STALE_CLASS in output._dom_classes
               for output in (explorer.canvas, explorer.readout, explorer.audio))  # fmt: skip
    assert STALE_CLASS in explorer.legend.value  # the page's style for it
    explorer.link_sliders["p99_ms"].value = 400  # simulable again: current, not dimmed
    assert explorer.view is not None and explorer.view.settings.params()["mean_ms"] == 200
    assert explorer.title.value == f"<b>{html.escape(explorer.view.title())}</b>"
    assert not any(STALE_CLASS in output._dom_classes
                   for output in (explorer.canvas, explorer.readout, explorer.audio))  # fmt: skip


def html_text(markup: str) -> str:
    """What a person reads of ``markup``: its text, tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def test_the_two_path_delays_are_named_apart() -> None:
    """"path delay (ms)" (the constant and stalls links') sat beside "path delay, mean (ms)"."""
    labels = {name: control.label for name, control in LINK_CONTROLS.items()}
    assert labels["delay_ms"] == "fixed path delay (ms)"
    assert labels["mean_ms"] == "path delay, mean (ms)"
    assert len(set(labels.values())) == len(labels)


def test_the_trace_and_strategy_menus_are_wide_enough_for_their_longest_names() -> None:
    """At a 700 px window the trace menu read "tiny_deltas_cal": 32% of the row, no minimum.
    Now each has room for its longest name and the row wraps instead (see the browser test)."""
    from labkit.views.explorer_app import DROPDOWN, Explorer

    explorer = Explorer(ExplorerSettings())
    row = explorer.box.children[0]
    assert row.layout.flex_flow == "row wrap"
    assert DROPDOWN.min_width is not None and int(DROPDOWN.min_width.removesuffix("px")) >= 320


def test_a_run_without_gaps_says_what_to_try() -> None:
    """The default settings show 0 gaps: a first-time user saw nothing happen."""
    from labkit.views.explorer import no_gap_hint
    from labkit.views.explorer_app import Explorer

    explorer = Explorer(ExplorerSettings())  # tiny_deltas, forward, tcp, fifo: no gap
    view = explorer.update()
    assert view is not None and view.result.metrics.concealment_events == 0
    hint = html_text(explorer.hint.value)
    assert hint.startswith("no gap in this run") and "link jitter" in hint
    assert "frame_clock_skip" in hint and "realtime_jitter" in hint
    for control, value in (("link", "jitter"), ("playout", "frame_clock_skip"),
                           ("trace", "realtime_jitter")):  # fmt: skip
        getattr(explorer, control).value = value  # each suggestion has gaps
        assert explorer.view is not None and explorer.view.result.metrics.concealment_events > 0
        assert explorer.hint.value == ""
        getattr(explorer, control).value = getattr(ExplorerSettings(), control)
    over_jitter = explore(ExplorerSettings(trace="bursty", link="jitter"))  # no gap either
    said = no_gap_hint(over_jitter)
    assert said is not None and "link jitter" not in said  # nothing already set is suggested
    assert "playout frame_clock_skip" in said

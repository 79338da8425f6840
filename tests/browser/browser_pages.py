"""What a person sees of the explorer in a real browser: servers, Chromium, and the page's figure.

Shared by the browser tests (tests/browser/) and benchmarks/bench_explorer_browser.py. Servers
bind 127.0.0.1 only; Chromium is Debian's (/usr/bin/chromium), driven by Playwright, never a
browser Playwright downloads. Every wait here has a deadline.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]  # fmt: skip
TOKEN = "labkit-browser-test"
SERVER_START_S = 60.0
SERVER_STOP_S = 10.0
NOTEBOOK_RUN_S = 90.0  # Run All of lesson 03, kernel start included
FIGURE_WAIT_MS = 30_000
INK_MIN = 0.02  # a drawn figure has at least this fraction of non-white, opaque pixels
EXPLORER_ROOT = ".labkit-explorer"


def skip_reason() -> str | None:
    """Why browser tests cannot run here (None: they can)."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (Debian's chromium; .ci/run installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    """A server started for a test: its base URL, the token to append, and its log."""

    base: str
    query: str
    log: Path
    process: subprocess.Popen[bytes]

    def url(self, path: str) -> str:
        joiner = "&" if "?" in path else "?"
        return f"{self.base}{path}{joiner}{self.query}" if self.query else f"{self.base}{path}"


def isolated_jupyter_env(home: Path) -> dict[str, str]:
    """Environment for a Jupyter server that reads and writes nothing of the user's."""
    env = dict(os.environ, JUPYTER_TOKEN=TOKEN, PYTHONUNBUFFERED="1")
    for variable, name in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                           ("JUPYTERLAB_SETTINGS_DIR", "user-settings"),
                           ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
                           ("IPYTHONDIR", "ipython")]:  # fmt: skip
        env[variable] = str(home / name)
    return env


@contextmanager
def serve(command: list[str], env: dict[str, str], log: Path, status_path: str,
          query: str) -> Iterator[Server]:  # fmt: skip
    """Run ``command`` until the block ends; yields once ``status_path`` answers."""
    with log.open("w") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    try:
        base = _wait_for(process, log, status_path, query)
        yield Server(base, query, log, process)
    finally:
        _stop(process)


def _wait_for(process: subprocess.Popen[bytes], log: Path, status_path: str, query: str) -> str:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}): {log.read_text()[-3000:]}")
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text())
        if found:
            base = f"http://127.0.0.1:{found.group(1)}"
            try:
                suffix = f"?{query}" if query else ""
                with urllib.request.urlopen(f"{base}{status_path}{suffix}", timeout=5):
                    return base
            except OSError:
                pass
        time.sleep(0.25)
    raise RuntimeError(f"no answer within {SERVER_START_S} s: {log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=SERVER_STOP_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=SERVER_STOP_S)


@contextmanager
def jupyter_lab(home: Path) -> Iterator[Server]:
    """``labkit lab --no-browser`` on a free port; working copies and settings under ``home``."""
    command = [sys.executable, "-m", "labkit", "lab", "--dir", str(home / "lab"), "--no-browser",
               "--host", "127.0.0.1", "--port", str(free_port())]  # fmt: skip
    with serve(command, isolated_jupyter_env(home), home / "lab-server.log", "/api/status",
               f"token={TOKEN}") as server:  # fmt: skip
        yield server


@contextmanager
def explore_app(home: Path, *options: str) -> Iterator[Server]:
    """``labkit explore --no-browser [options]`` on a free port of 127.0.0.1."""
    command = [sys.executable, "-m", "labkit", "explore", "--no-browser", "--port",
               str(free_port()), *options]  # fmt: skip
    # ready once a static file answers: asking for "/" would render the page, taking a kernel
    with serve(command, isolated_jupyter_env(home), home / "explore-server.log",
               "/voila/static/voila.js", "") as server:  # fmt: skip
        yield server


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, under Playwright (never a browser Playwright downloads)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=CHROMIUM_FLAGS)  # fmt: skip
        try:
            yield browser
        finally:
            browser.close()


# The page side. ``figure`` finds the explorer's figure: the ipympl canvas, or (the explorer of
# before, kept so the benchmark can measure it) the largest image in the widget box that holds
# the controls. ``look`` reads its pixels: a hash, and how much of it is ink.
PAGE_HELPERS = """
window.__labkit = {
  root() {
    const marked = document.querySelectorAll('%(root)s');
    if (marked.length) return marked[marked.length - 1];
    const boxes = [...document.querySelectorAll('.widget-vbox')]
      .filter(box => box.querySelector('select'));
    return boxes.length ? boxes[boxes.length - 1] : null;
  },
  figure() {
    const root = this.root();
    if (!root) return null;
    const main = root.querySelector('.jupyter-matplotlib-canvas-div canvas');  // ipympl's
    if (main) return main;
    let best = null, area = 0;
    for (const el of root.querySelectorAll('img, canvas')) {
      const a = el.offsetWidth * el.offsetHeight;
      if (a > area) { best = el; area = a; }
    }
    return area > 40000 ? best : null;
  },
  look() {
    const el = this.figure();
    if (!el) return null;
    if (el.tagName === 'IMG' && !(el.complete && el.naturalWidth > 0)) return null;
    const w = el.tagName === 'IMG' ? el.naturalWidth : el.width;
    const h = el.tagName === 'IMG' ? el.naturalHeight : el.height;
    if (!w || !h) return null;
    const c = document.createElement('canvas');
    c.width = w; c.height = h;
    const g = c.getContext('2d', {willReadFrequently: true});
    g.drawImage(el, 0, 0);
    const px = new Uint32Array(g.getImageData(0, 0, w, h).data.buffer);
    let hash = 2166136261, ink = 0;
    for (let i = 0; i < px.length; i++) {
      const p = px[i];
      hash = Math.imul(hash ^ p, 16777619);
      const a = p >>> 24, r = p & 255, gg = (p >>> 8) & 255, b = (p >>> 16) & 255;
      if (a > 200 && (r < 230 || gg < 230 || b < 230)) ink++;
    }
    return {hash: hash >>> 0, ink: ink / px.length, width: w, height: h};
  },
  control(label) {
    const root = this.root();
    for (const box of root.querySelectorAll('.widget-inline-hbox, .widget-dropdown')) {
      const l = box.querySelector('label');
      if (l && l.textContent.trim().toLowerCase().startsWith(label.toLowerCase())) return box;
    }
    return null;
  },
  watch(el) {
    // Count the page's draws into the figure's canvas (ipympl copies each new image into it
    // with drawImage): the probe then reads pixels once per draw, not once per frame. Reading
    // back and hashing the 1000 x 500 canvas every frame held the page's one thread ~5 ms a
    // frame (measured), delaying the very image it waited for.
    if (el.__labkitDraws) return el.__labkitDraws;
    const draws = el.__labkitDraws = {count: 0, wake: null};
    const context = el.getContext('2d');
    const drawImage = context.drawImage;
    context.drawImage = function (...args) {
      drawImage.apply(this, args);
      draws.count++;
      if (draws.wake) { const wake = draws.wake; draws.wake = null; wake(); }
    };
    return draws;
  },
  async change(label, option, inkMin, timeoutMs, probe) {
    const before = this.look();
    const select = this.control(label).querySelector('select');
    const text = o => o.textContent.replace(/\u00a0/g, ' ').trim();  // ipywidgets: nbsp
    const index = [...select.options].findIndex(o => text(o) === option);
    if (index < 0) throw new Error('no option ' + option + ' in ' + label);
    if (select.selectedIndex === index) return -1;
    const el = this.figure();
    // 'draws' needs ipympl's canvas; 'frames' (and an image figure) reads pixels every frame
    const draws = probe === 'draws' && el && el.tagName === 'CANVAS' ? this.watch(el) : null;
    const frame = () => new Promise(r => requestAnimationFrame(r));
    const t0 = performance.now();
    select.selectedIndex = index;
    select.dispatchEvent(new Event('change', {bubbles: true}));
    let seen = draws ? draws.count : 0;
    while (performance.now() - t0 < timeoutMs) {
      if (draws) {
        if (draws.count === seen) {
          const left = timeoutMs - (performance.now() - t0);
          await new Promise(r => { draws.wake = r; setTimeout(r, Math.max(left, 0)); });
          if (draws.count === seen) continue;
        }
        seen = draws.count;
      }
      await frame();  // the frame that shows the new pixels
      const shown = performance.now() - t0;
      const now = this.look();
      if (now && now.ink >= inkMin && (!before || now.hash !== before.hash)) return shown;
    }
    return null;
  },
};
""" % {"root": EXPLORER_ROOT}  # noqa: UP031 (the JS is full of braces)


def install_helpers(page: Any) -> None:
    page.evaluate(PAGE_HELPERS)


def open_explore_page(page: Any, server: Server, timeout_ms: int = 60_000) -> dict[str, Any]:
    """Load ``labkit explore``'s page and wait until its figure is drawn; returns the figure."""
    page.goto(server.url("/"))
    page.wait_for_selector(EXPLORER_ROOT, timeout=timeout_ms)
    install_helpers(page)
    return wait_for_drawn_figure(page)


def scroll_to_explorer(page: Any, timeout_ms: int = FIGURE_WAIT_MS) -> None:
    """Scroll the notebook, as a person would, until the explorer is on screen (JupyterLab
    renders only the cells near the view)."""
    install_helpers(page)
    found = page.evaluate("""async (timeoutMs) => {
        const t0 = performance.now();
        const scroller = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer');
        let step = -600;
        while (performance.now() - t0 < timeoutMs) {
            const root = document.querySelector('%s');
            if (root) { root.scrollIntoView({block: 'start'}); return true; }
            if (!scroller) return false;
            const before = scroller.scrollTop;
            scroller.scrollTop += step;
            if (scroller.scrollTop === before) step = -step;  // an end: go the other way
            await new Promise(r => setTimeout(r, 150));
        }
        return false;
    }""" % EXPLORER_ROOT, timeout_ms)  # noqa: UP031
    if not found:
        raise AssertionError(f"no explorer ({EXPLORER_ROOT}) on the page within {timeout_ms} ms")


def look(page: Any) -> dict[str, Any] | None:
    """The figure's pixels as the page has them: {hash, ink, width, height}, or None."""
    found: dict[str, Any] | None = page.evaluate("window.__labkit.look()")
    return found


def wait_for_drawn_figure(page: Any, timeout_ms: int = FIGURE_WAIT_MS) -> dict[str, Any]:
    """Wait until the explorer's figure has ink (drawn, not a blank or transparent image)."""
    deadline = time.monotonic() + timeout_ms / 1000
    seen = None
    while time.monotonic() < deadline:
        seen = look(page)
        if seen and seen["ink"] >= INK_MIN:
            return seen
        page.wait_for_timeout(100)
    raise AssertionError(f"the explorer's figure was not drawn within {timeout_ms} ms: {seen}")


PROBES = ("draws", "frames")


def change_and_time(page: Any, label: str, option: str, timeout_ms: int = FIGURE_WAIT_MS,
                    ink_min: float = INK_MIN, probe: str = "draws") -> float:  # fmt: skip
    """Pick ``option`` in the dropdown labelled ``label``; ms until the frame that shows the
    figure's new pixels (-1 when ``option`` was already picked).

    ``probe="draws"`` reads the pixels after each draw into ipympl's canvas; ``"frames"`` reads
    them every animation frame, as the first benchmark did (that holds the page's thread ~5 ms a
    frame, which delays the image it waits for: kept to compare)."""
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {probe!r}")
    elapsed: float | None = page.evaluate(
        "([l, o, ink, t, p]) => window.__labkit.change(l, o, ink, t, p)",
        [label, option, ink_min, timeout_ms, probe],
    )
    if elapsed is None:
        raise AssertionError(f"no new figure within {timeout_ms} ms of {label}={option}")
    return elapsed


def widget_errors(page: Any) -> list[str]:
    """Texts of "Error displaying widget" messages and of error outputs on the page."""
    texts: list[str] = page.evaluate("""() => [
        ...[...document.querySelectorAll('body *')].filter(e => e.children.length === 0
            && /Error displaying widget/.test(e.textContent)).map(e => e.textContent.trim()),
        ...[...document.querySelectorAll('[data-mime-type="application/vnd.jupyter.error"]')]
            .map(e => e.textContent.trim().slice(0, 500)),
    ]""")
    return texts


def kernels_of(server: Server) -> list[Any]:
    """The kernel processes (psutil) the server started, alive now."""
    import psutil

    kernels = []
    for child in psutil.Process(server.process.pid).children(recursive=True):
        try:
            if "ipykernel" in " ".join(child.cmdline()) and child.status() != "zombie":
                kernels.append(child)
        except psutil.NoSuchProcess:  # it ended while we looked
            pass
    return kernels


# JupyterLab, as a person drives it: the menus.


def open_notebook(page: Any, server: Server, name: str) -> None:
    """Open ``lab/name`` as a person does, answering the kernel dialog, until its kernel idles.
    Alone: ``reset`` starts from an empty workspace, not with the tabs an earlier test left."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(server.url(f"/lab/tree/{name}?reset"))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    # A notebook opened for the first time asks which kernel: a person clicks "Select"
    select = page.locator(".jp-Dialog button", has_text=re.compile("^Select$"))
    try:
        select.wait_for(timeout=KERNEL_DIALOG_MS)
        select.click()
    except PlaywrightTimeout:
        pass
    wait_for_kernel_idle(page)
    page.wait_for_function(KERNEL_NAMED, timeout=60_000)


KERNEL_DIALOG_MS = 10_000
KERNEL_NAMED = """() => {
  const kernel = document.querySelector('.jp-Toolbar-kernelName');
  return kernel && /Python/.test(kernel.textContent);
}"""


def wait_for_kernel_idle(page: Any, timeout_ms: int = 60_000) -> None:
    """Until the kernel of the notebook in view is idle (tabs behind it have indicators too)."""
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']:visible",
                           timeout=timeout_ms)  # fmt: skip


def menu(page: Any, top: str, item: str) -> None:
    """Click ``top`` in the menu bar, then ``item`` in its menu."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{top}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).first.click()


def run_all(page: Any) -> None:
    """Run > Run All Cells, then wait until every code cell has run."""
    menu(page, "Run", "Run All Cells")
    page.wait_for_function(
        """() => {
          const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
          return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""",
        timeout=NOTEBOOK_RUN_S * 1000,
    )
    wait_for_kernel_idle(page)


def screenshot(page: Any, path: Path) -> None:
    """Keep what the page looked like (for a failing test's report)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)


def median_p90(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    median = ordered[len(ordered) // 2] if len(ordered) % 2 else (
        ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2  # fmt: skip
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return median, p90


def readout(page: Any) -> dict[str, str]:
    """The explorer's metrics as the page shows them: label -> value with its unit."""
    rows: dict[str, str] = page.evaluate("""() => {
        const root = window.__labkit.root();
        const rows = root ? root.querySelectorAll('.labkit-readout tr') : [];
        return Object.fromEntries([...rows].map(r => [...r.cells].map(c => c.textContent.trim())));
    }""")
    return rows


def wait_for_readout(page: Any, label: str, pattern: str, timeout_ms: int = FIGURE_WAIT_MS) -> str:
    """Wait until the readout row ``label`` matches the regular expression ``pattern``."""
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        value = readout(page).get(label, "")
        if re.search(pattern, value):
            return value
        page.wait_for_timeout(100)
    raise AssertionError(f"readout {label!r} never matched {pattern!r}: {readout(page)}")


def notes_text(page: Any) -> str:
    text: str = page.evaluate("""() => {
        const root = window.__labkit.root();
        const notes = root && root.querySelector('.labkit-notes');
        return notes ? notes.textContent : '';
    }""")
    return text


def audio_players(page: Any, timeout_ms: int = FIGURE_WAIT_MS) -> int:
    """Audio players in the explorer that hold audio (waiting for one: the audio follows the
    figure once the controls rest)."""
    count: int = page.wait_for_function("""() => {
        const root = window.__labkit.root();
        const n = root ? [...root.querySelectorAll('audio')].filter(a => a.src).length : 0;
        return n > 0 ? n : false;
    }""", timeout=timeout_ms).json_value()
    return count


def figure_fit(page: Any) -> dict[str, int]:
    """The figure's width on the page (CSS px) against the width of ipympl's box around it,
    which hides what overflows it."""
    fit: dict[str, int] = page.evaluate("""() => {
        const canvas = window.__labkit.figure();
        const box = canvas.closest('.jupyter-matplotlib');
        return {figure: canvas.offsetWidth, box: box.clientWidth};
    }""")
    return fit


def wait_for_figure_width(page: Any, check: str,
                          timeout_ms: int = FIGURE_WAIT_MS) -> dict[str, int]:  # fmt: skip
    """Wait until ``check`` (JS over ``figure`` and ``box``, as ``figure_fit`` gives them)
    holds, and the figure is drawn at that size."""
    deadline = time.monotonic() + timeout_ms / 1000
    fit = figure_fit(page)
    while time.monotonic() < deadline:
        fit = figure_fit(page)
        holds = page.evaluate(f"({{figure, box}}) => {check}", fit)
        seen = look(page)
        if holds and seen and seen["ink"] >= INK_MIN:
            return fit
        page.wait_for_timeout(100)
    raise AssertionError(f"the figure never met {check!r}: {fit}")


def slider_tracks(page: Any) -> dict[str, int]:
    """Each slider of the explorer: label -> width of its track (CSS px), what a person drags."""
    tracks: dict[str, int] = page.evaluate("""() => Object.fromEntries(
        [...window.__labkit.root().querySelectorAll('.widget-hslider')].map(s => [
            s.querySelector('label').textContent.trim(),
            s.querySelector('.slider-container').offsetWidth]))""")
    return tracks

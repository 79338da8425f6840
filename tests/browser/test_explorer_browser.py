"""The explorer as a person sees it: JupyterLab (lesson 03 after Run All) and ``labkit explore``.

Real servers on 127.0.0.1, Debian's chromium under Playwright. What is asserted is what shows on
the page: the figure's pixels (drawn, then changed by a control), the metrics, the notes, the
audio players, and no "Error displaying widget", also after the saved notebook is reopened.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import browser_pages as pages

NOTEBOOK = "03_explorer.ipynb"
GAPS = "gaps inside answers"
ONSET_GAPS = "gaps at word starts (first 200 ms of an answer)"


def test_run_all_draws_the_explorer_and_its_controls_redraw_it(page: Any,
                                                                lab_server: pages.Server) -> None:
    pages.open_notebook(page, lab_server, NOTEBOOK)
    pages.run_all(page)
    pages.scroll_to_explorer(page)
    first = pages.wait_for_drawn_figure(page)  # drawn on first run, not a blank image
    assert first["width"] >= 600 and first["height"] >= 300
    assert pages.audio_players(page) >= 1
    assert "threshold has no effect" in pages.notes_text(page)  # forward ignores it

    # "Try this" 1, by the controls: the stress link makes word-onset gaps, one TCP connection not
    pages.change_and_time(page, "link", "jitter")
    pages.wait_for_readout(page, ONSET_GAPS, r"^[1-9]\d* gaps?$")
    assert "stress model" in pages.notes_text(page)
    pages.change_and_time(page, "link", "tcp")
    pages.wait_for_readout(page, GAPS, r"^0 gaps$")
    pages.change_and_time(page, "strategy", "preroll")
    assert "threshold has no effect" not in pages.notes_text(page)
    assert pages.audio_players(page) >= 1
    assert pages.widget_errors(page) == []


def test_a_saved_notebook_reopens_without_widget_errors(page: Any, lab_server: pages.Server,
                                                        lab_home: Path) -> None:  # fmt: skip
    pages.open_notebook(page, lab_server, NOTEBOOK)
    pages.run_all(page)
    pages.scroll_to_explorer(page)
    pages.wait_for_drawn_figure(page)
    pages.menu(page, "File", "Save Notebook")
    page.wait_for_function(
        "() => !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')",
        timeout=pages.FIGURE_WAIT_MS,
    )
    saved = json.loads((lab_home / "lab" / NOTEBOOK).read_text())
    assert saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    pages.menu(page, "Kernel", "Shut Down Kernel")
    page.wait_for_timeout(1000)
    page.reload()
    pages.open_notebook(page, lab_server, NOTEBOOK)
    pages.scroll_to_explorer(page)
    page.wait_for_timeout(2000)  # every saved widget view has had time to render or fail
    assert pages.widget_errors(page) == []


def test_labkit_explore_serves_the_explorer(page: Any, explore_server: pages.Server) -> None:
    pages.open_explore_page(page, explore_server)
    assert pages.audio_players(page) >= 1
    pages.change_and_time(page, "strategy", "paced")
    pages.change_and_time(page, "trace", "long_conversation")
    pages.wait_for_readout(page, "media messages", r"^[\d,]+ messages$")
    page.locator(f"{pages.EXPLORER_ROOT} button", has_text="silence").click()
    page.locator(f"{pages.EXPLORER_ROOT} button", has_text="MOS-LQO").click()
    page.wait_for_selector(f"{pages.EXPLORER_ROOT} b:has-text('MOS-LQO')", timeout=30_000)
    assert pages.widget_errors(page) == []
    assert "import" not in page.inner_text("body")  # Voila shows no code


def test_labkit_explore_offers_your_own_recorded_calls(page: Any, tmp_path: Path) -> None:
    """`labkit explore DIR`: the calls you recorded are in the trace menu; picking one draws it."""
    import shutil

    from labkit.traces import shipped

    recorded = tmp_path / "recorded"
    recorded.mkdir()
    shutil.copyfile(shipped("multi_turn"), recorded / "my_call.jsonl.gz")
    (tmp_path / "home").mkdir()
    with pages.explore_app(tmp_path / "home", str(recorded)) as server:
        pages.open_explore_page(page, server)
        pages.change_and_time(page, "trace", "my_call (yours)")
        pages.wait_for_readout(page, "media messages", r"^[\d,]+ messages$")
        assert pages.widget_errors(page) == []


def test_the_figure_fits_the_page_as_its_window_narrows_and_widens(
        browser: Any, explore_server: pages.Server) -> None:  # fmt: skip
    """ipympl hides what overflows its box: in a narrow window (or beside JupyterLab's file
    browser) the figure must narrow to fit, on a high-density screen too, and widen back. The
    link's sliders go one a row there rather than shrink to a sliver."""
    page = browser.new_page(viewport={"width": 900, "height": 1000}, device_scale_factor=2)
    try:
        pages.open_explore_page(page, explore_server)
        narrow = pages.wait_for_figure_width(page, "figure <= box && figure > box - 40")
        page.set_viewport_size({"width": 1400, "height": 1000})
        pages.wait_for_figure_width(page, "figure == 1000")
        page.set_viewport_size({"width": 700, "height": 1000})
        narrower = pages.wait_for_figure_width(page, "figure <= box && figure > box - 40")
        assert narrower["figure"] < narrow["figure"] < 1000
        tracks = pages.slider_tracks(page)
        assert len(tracks) >= 8 and min(tracks.values()) >= 80, tracks
        assert pages.widget_errors(page) == []
    finally:
        page.close()


def test_labkit_explore_shuts_down_the_kernels_of_pages_left(
        browser: Any, tmp_path_factory: Any) -> None:  # fmt: skip
    """Voila starts a kernel per page load and keeps it when the page goes (its shutdown request
    from the page is refused for want of an XSRF token): reloads must not pile kernels up. The
    warm kernel (run ahead for the next page load) is kept, and taken by the next load."""
    import time

    idle_s = 2.0

    def kernels_settle_at(count: int, server: pages.Server) -> bool:
        deadline = time.monotonic() + 15 * idle_s
        while len(pages.kernels_of(server)) != count and time.monotonic() < deadline:
            time.sleep(0.5)
        return len(pages.kernels_of(server)) == count

    with pages.explore_app(tmp_path_factory.mktemp("explore-cull"), "--idle-kernel-s",
                           str(idle_s), "--warm-kernels", "1") as server:  # fmt: skip
        assert kernels_settle_at(1, server), "the warm kernel waits before any page"
        page = browser.new_page()
        for _ in range(3):  # a person reloading the page
            page.goto(server.url("/"))
            page.wait_for_selector(pages.EXPLORER_ROOT, timeout=60_000)
        assert kernels_settle_at(2, server), "the page still open keeps its kernel, and one waits"
        assert server.log.read_text().count("Using pre-heated kernel") == 3, "each load took one"
        time.sleep(3 * idle_s)
        assert len(pages.kernels_of(server)) == 2, "an open page's kernel is never culled"
        page.close()
        assert kernels_settle_at(1, server), "a closed page's kernel goes; the warm one stays"


def test_a_narrow_window_shows_whole_menu_names_and_a_stale_figure_dimmed(
        browser: Any, explore_server: pages.Server) -> None:  # fmt: skip
    """At 700 px the trace menu read "tiny_deltas_cal" (each menu a third of the row): the
    menus wrap instead, each wide enough for its longest name. Settings that cannot be
    simulated (the link's mean past its 99th percentile) dim the figure they did not draw."""
    page = browser.new_page(viewport={"width": 700, "height": 1000})
    try:
        pages.open_explore_page(page, explore_server)
        cut = page.evaluate("""() => {
            const measure = document.createElement('canvas').getContext('2d');
            const cut = [];
            for (const select of window.__labkit.root().querySelectorAll('select')) {
                const style = getComputedStyle(select);
                measure.font = `${style.fontSize} ${style.fontFamily}`;
                const room = select.clientWidth - parseFloat(style.paddingLeft)
                    - parseFloat(style.paddingRight);
                for (const option of select.options) {
                    if (measure.measureText(option.textContent).width > room) {
                        cut.push(option.textContent);
                    }
                }
            }
            return cut;
        }""")
        shown = [name for name in cut if not name.startswith(("longest", "answer", "whole"))]
        assert shown == [], shown  # the "show" menu has the row's full width
        pages.change_and_time(page, "link", "jitter")
        readout = page.locator(".widget-hslider:has(label:has-text('mean')) .widget-readout")
        readout.first.fill("200")
        readout.first.press("Enter")
        page.wait_for_function("""() => {
            const canvas = window.__labkit.figure().closest('.labkit-stale');
            return canvas && parseFloat(getComputedStyle(canvas).opacity) < 0.5;
        }""", timeout=pages.FIGURE_WAIT_MS)
        assert "cannot simulate" in pages.notes_text(page)
        assert "not updated" in page.inner_text(pages.EXPLORER_ROOT)
    finally:
        page.close()

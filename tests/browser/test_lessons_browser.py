"""The lessons as a person sees them in JupyterLab: a new lab opens on the first lesson; a lesson's
long cells show a progress bar while the runs go, and the saved notebook reopens with it (no "Error
displaying widget").

Real ``labkit lab`` on 127.0.0.1, Debian's chromium under Playwright.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import browser_pages as pages

NOTEBOOK = "01_why_tiny_packets_jitter.ipynb"  # the first lesson with a progress bar
RUNS = 2400  # 6 senders x 2 links x 200 seeds


def finished_bars(page: Any) -> list[str]:
    """The texts of tqdm's notebook bars that counted every run."""
    texts: list[str] = page.evaluate(
        "() => [...document.querySelectorAll('.widget-html-content')].map(e => e.textContent)"
    )
    return [t for t in texts if f"{RUNS}/{RUNS}" in t]


def test_a_new_lab_opens_on_the_first_lesson(page: Any, lab_server: pages.Server) -> None:
    page.goto(lab_server.url("/"))  # where `labkit lab` sends the browser, as its printed URL
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel")
    assert tab.text_content() == "00_traces.ipynb"
    heading = page.locator(".jp-Notebook .jp-MarkdownOutput h1").first
    assert "Traces: what the model delivered" in (heading.text_content() or "")
    pages.wait_for_kernel_idle(page)
    page.wait_for_timeout(2000)  # the kernel's info has come and any toast has shown
    # opened, not changed: closing it asks nothing (the copy carries its kernel's metadata)
    assert page.locator("#jp-main-dock-panel .lm-TabBar-tab.jp-mod-dirty").count() == 0
    assert "Jupyter news" not in (page.locator("body").text_content() or "")
    pages.menu(page, "Kernel", "Shut Down Kernel")


def test_a_long_cell_shows_its_progress_and_the_saved_lesson_reopens_with_it(
        page: Any, lab_server: pages.Server, lab_home: Path) -> None:  # fmt: skip
    pages.open_notebook(page, lab_server, NOTEBOOK)
    pages.run_all(page)
    assert len(finished_bars(page)) == 1
    pages.menu(page, "File", "Save Notebook")
    page.wait_for_function(
        "() => !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')",
        timeout=pages.FIGURE_WAIT_MS,
    )
    saved = json.loads((lab_home / "lab" / NOTEBOOK).read_text())
    states = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert any(s["model_name"] == "FloatProgressModel" for s in states.values())
    pages.menu(page, "Kernel", "Shut Down Kernel")
    page.wait_for_timeout(1000)
    page.reload()
    pages.open_notebook(page, lab_server, NOTEBOOK)
    page.wait_for_timeout(2000)  # every saved widget view has had time to render or fail
    assert pages.widget_errors(page) == []
    assert len(finished_bars(page)) == 1  # drawn from the saved state, with no kernel

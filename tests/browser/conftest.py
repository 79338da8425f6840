"""Fixtures of the browser tests: Debian's chromium (Playwright), JupyterLab, ``labkit explore``.

Every test here is marked ``browser`` (deselect with ``-m "not browser"``) and skips, saying why,
where chromium or Playwright is missing. Servers bind 127.0.0.1 on free ports, with their Jupyter
config, settings and working copies in temporary directories.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import browser_pages as pages
import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one module: Playwright's sync API keeps an event loop running in this thread
    while it lives, which would break the asyncio tests collected after the browser tests."""
    reason = pages.skip_reason()
    if reason:
        print(f"\nbrowser tests skipped: {reason}")
        pytest.skip(reason)
    with pages.chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lab-home")


@pytest.fixture(scope="module")
def lab_server(browser: Any, lab_home: Path) -> Iterator[pages.Server]:
    with pages.jupyter_lab(lab_home) as server:
        yield server


@pytest.fixture(scope="module")
def explore_server(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        pages.Server]:  # fmt: skip
    with pages.explore_app(tmp_path_factory.mktemp("explore-home")) as server:
        yield server


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:  # fmt: skip
    """A fresh page; its screenshot is kept when the test fails."""
    opened = browser.new_page(viewport={"width": 1400, "height": 1000})
    yield opened
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        shot = tmp_path_factory.mktemp("failed") / f"{request.node.name}.png"
        pages.screenshot(opened, shot)
        print(f"\nthe page when {request.node.name} failed: {shot}")
    opened.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)

"""nbval runs every notebook here (``testpaths`` in pyproject.toml); this adds one check to it.

A cell whose output shows a Python warning fails. A reader sees that warning under the cell, and
a deprecation in a lesson is a lesson that stops running with the next release of a library
(lesson 04's boxplot, matplotlib 3.11). nbval runs in ``--nbval-lax`` mode, which compares no
outputs, so without this such a cell passes.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any

import pytest

# the warnings module's own format: "path:line: CategoryWarning: message"
WARNING_LINE = re.compile(r"^.+:\d+: (\w*Warning): (.*)$", re.MULTILINE)


def shown_warning(outputs: list[Any]) -> str | None:
    """The first warning a cell's outputs show on stderr, as "Category: message", or None."""
    for output in outputs:
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            match = WARNING_LINE.search(output.get("text", ""))
            if match:
                return f"{match.group(1)}: {match.group(2)}"
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    result = yield
    warning = shown_warning(getattr(item, "test_outputs", None) or [])
    if warning:
        pytest.fail(f"{item.name} shows a warning under the cell: {warning}", pytrace=False)
    return result

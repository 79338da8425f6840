"""The package stays `ruff` and `mypy --strict` clean (configuration in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("target", ["labkit", "tests", "benchmarks", "lessons", "notebooks"])
def test_ruff_is_clean(target: str) -> None:
    result = run_tool("ruff", "check", target)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean_on_the_package() -> None:
    result = run_tool("mypy", "labkit")
    assert result.returncode == 0, result.stdout + result.stderr

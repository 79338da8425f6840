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


def _sim_imports() -> dict[str, set[str]]:
    """Which labkit.sim modules each labkit.sim module imports (type-only imports included)."""
    import ast

    root = REPO / "labkit" / "sim"
    modules = {path.stem: path for path in root.glob("*.py") if path.stem != "__init__"}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "labkit.sim":
                    graph[name] |= {alias.name for alias in node.names if alias.name in modules}
                elif node.module.startswith("labkit.sim."):
                    target = node.module.removeprefix("labkit.sim.")
                    if target in modules:
                        graph[name].add(target)
    return graph


def test_the_simulator_has_no_import_cycle() -> None:
    graph = _sim_imports()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        for target in graph[name]:
            assert target not in path, " -> ".join([*path, target])
            if target not in done:
                visit(target, [*path, target])
        done.add(name)

    for name in graph:
        visit(name, [name])

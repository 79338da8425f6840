"""``labkit lessons build|check``: the notebooks under notebooks/ are generated from lessons/*.py.

Each lesson is a jupytext percent-format Python file (``# %%`` starts a code cell,
``# %% [markdown]`` a markdown cell written as comments), linted by ruff like the package. Its
notebook has the same cells, no outputs, and cell ids derived from the lesson and the cell's
position, so building an unchanged lesson writes the same bytes. ``check`` fails when a committed
notebook differs from what its lesson builds (the drift test in tests/test_lessons.py runs it).
``labkit lab`` builds its working copies the same way.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import labkit

REPO_DIR = Path(labkit.__file__).resolve().parent.parent
LESSONS_DIR = REPO_DIR / "lessons"
NOTEBOOKS_DIR = REPO_DIR / "notebooks"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
# The .py files carry no jupytext header: nothing in them changes with the jupytext version.
JUPYTEXT_FORMAT = "py:percent"


@dataclass(frozen=True)
class Lesson:
    """One lesson: its source file and the notebook name (the file stem) it builds."""

    source: Path

    @property
    def name(self) -> str:
        return self.source.stem

    @property
    def notebook_file(self) -> str:
        return f"{self.name}.ipynb"


def lessons(lessons_dir: Path = LESSONS_DIR) -> list[Lesson]:
    """Every lesson source under ``lessons_dir``, in file-name order (their numbering)."""
    if not lessons_dir.is_dir():
        raise FileNotFoundError(
            f"no lessons directory at {lessons_dir}: labkit's lessons live in a clone of the repo "
            "(installed with pip install -e)"
        )
    return [Lesson(path) for path in sorted(lessons_dir.glob("[0-9]*.py"))]


def lesson_notebook(lesson: Lesson) -> Any:
    """The lesson as an nbformat 4.5 notebook: its cells, stable ids, no outputs nor metadata."""
    import jupytext
    import nbformat

    try:
        notebook = jupytext.read(lesson.source, fmt=JUPYTEXT_FORMAT)
    except UnicodeDecodeError:
        raise ValueError(f"{lesson.source} is not UTF-8 text") from None
    notebook.metadata.clear()
    notebook.metadata.update(kernelspec=dict(KERNELSPEC), language_info={"name": "python"})
    for index, cell in enumerate(notebook.cells):
        cell.metadata.clear()
        cell["id"] = f"{lesson.name[:2]}-{index:02d}"
    nbformat.validate(notebook)
    return notebook


def notebook_text(lesson: Lesson, metadata: dict[str, Any] | None = None) -> str:
    """The exact text of the lesson's notebook file (what ``nbformat.write`` would write), its
    notebook metadata updated with ``metadata`` (working copies carry their kernel's)."""
    import jupytext

    notebook = lesson_notebook(lesson)
    notebook.metadata.update(metadata or {})
    text: str = jupytext.writes(notebook, fmt="ipynb")
    return text if text.endswith("\n") else text + "\n"


def stale_notebooks(
    lessons_dir: Path = LESSONS_DIR, notebooks_dir: Path = NOTEBOOKS_DIR
) -> list[str]:
    """Why the notebooks in ``notebooks_dir`` differ from what the lessons build (empty: none)."""
    found = lessons(lessons_dir)
    problems = []
    for lesson in found:
        path = notebooks_dir / lesson.notebook_file
        if not path.exists():
            problems.append(f"{path} is missing (built from {lesson.source})")
        elif _text(path) != notebook_text(lesson):
            problems.append(f"{path} differs from what {lesson.source} builds")
    expected = {lesson.notebook_file for lesson in found}
    for path in sorted(notebooks_dir.glob("*.ipynb")):
        if path.name not in expected:
            problems.append(f"{path} has no lesson source in {lessons_dir}")
    return problems


def build_notebooks(lessons_dir: Path = LESSONS_DIR, notebooks_dir: Path = NOTEBOOKS_DIR) -> int:
    """Write every lesson's notebook; returns how many files changed."""
    changed = 0
    notebooks_dir.mkdir(parents=True, exist_ok=True)
    for lesson in lessons(lessons_dir):
        path = notebooks_dir / lesson.notebook_file
        text = notebook_text(lesson)
        if path.is_symlink():  # writing would go wherever it points
            raise ValueError(f"{path} is a link; a built notebook is a file of its own")
        if path.exists() and _text(path) == text:
            continue
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
        changed += 1
    return changed


def _text(path: Path) -> str | None:
    """A built notebook's text; None when it is not UTF-8 (it differs from any build)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "lessons", help="build notebooks/*.ipynb from lessons/*.py, or check they match"
    )
    commands = parser.add_subparsers(dest="lessons_command", metavar="WHAT", required=True)
    build = commands.add_parser("build", help="write notebooks/*.ipynb from lessons/*.py")
    build.set_defaults(func=run_build)
    check = commands.add_parser(
        "check", help="exit 1 when notebooks/*.ipynb differ from what lessons/*.py build"
    )
    check.set_defaults(func=run_check)


def run_build(args: argparse.Namespace) -> int:
    try:
        changed = build_notebooks()
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # a lesson or notebook unreadable
        print(f"labkit lessons build: {exc}", file=sys.stderr)
        return 2
    print(f"{changed} notebook(s) written, the others already matched their lessons")
    return 0


def run_check(args: argparse.Namespace) -> int:
    try:
        problems = stale_notebooks()
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"labkit lessons check: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"labkit lessons check: {problem}", file=sys.stderr)
    if problems:
        print("run `labkit lessons build` and commit notebooks/", file=sys.stderr)
        return 1
    print(f"notebooks/ matches lessons/ ({len(lessons())} lessons)")
    return 0

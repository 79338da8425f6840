"""Write the lessons under notebooks/ from their sources in tools/lessons/ (no outputs saved).

Each lesson module defines ``NAME`` (the notebook file stem) and ``CELLS``: a list of
``("md" | "code", source)`` pairs. Cell ids are derived from the lesson and the cell's position, so
regenerating an unchanged lesson rewrites the same bytes.
Run: ``.venv/bin/python tools/make_notebooks.py [nb01 ...]``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import nbformat

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
LESSONS = ("nb00", "nb01", "nb02", "nb03", "nb04", "nb05")
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def build(name: str, cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """A notebook (nbformat 4.5, so every cell has an id) with the given cells and no outputs."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = KERNELSPEC
    notebook.metadata["language_info"] = {"name": "python"}
    for index, (kind, source) in enumerate(cells):
        text = source.strip("\n")
        if kind == "md":
            cell = nbformat.v4.new_markdown_cell(text)
        elif kind == "code":
            cell = nbformat.v4.new_code_cell(text)
        else:
            raise ValueError(f"{name}: cell {index} has unknown kind {kind!r}")
        cell["id"] = f"{name[:2]}-{index:02d}"
        notebook.cells.append(cell)
    nbformat.validate(notebook)
    return notebook


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    wanted = argv or list(LESSONS)
    for lesson_name in wanted:
        lesson = importlib.import_module(f"lessons.{lesson_name}")
        path = NOTEBOOKS_DIR / f"{lesson.NAME}.ipynb"
        nbformat.write(build(lesson.NAME, lesson.CELLS), path)
        print(f"wrote {path.relative_to(NOTEBOOKS_DIR.parent)} ({len(lesson.CELLS)} cells)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

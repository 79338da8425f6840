"""notebooks/*.ipynb are exactly what lessons/*.py build (``labkit lessons build|check``)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from labkit.cli import main
from labkit.cli.lessons import (
    LESSONS_DIR,
    NOTEBOOKS_DIR,
    build_notebooks,
    lessons,
    notebook_text,
    stale_notebooks,
)


def test_committed_notebooks_are_what_the_lessons_build() -> None:
    problems = stale_notebooks()
    assert not problems, "\n".join(problems) + "\nrun `labkit lessons build`"


def test_every_notebook_has_a_lesson_and_the_check_command_agrees(
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = {lesson.notebook_file for lesson in lessons()}
    assert names == {path.name for path in NOTEBOOKS_DIR.glob("*.ipynb")}
    assert len(names) >= 6
    assert main(["lessons", "check"]) == 0
    assert "matches" in capsys.readouterr().out


@pytest.fixture
def copies(tmp_path: Path) -> tuple[Path, Path]:
    lessons_dir, notebooks_dir = tmp_path / "lessons", tmp_path / "notebooks"
    shutil.copytree(LESSONS_DIR, lessons_dir)
    shutil.copytree(NOTEBOOKS_DIR, notebooks_dir)
    return lessons_dir, notebooks_dir


def test_an_edited_lesson_is_drift_until_rebuilt_and_rebuilding_is_stable(
    copies: tuple[Path, Path],
) -> None:
    lessons_dir, notebooks_dir = copies
    source = lessons_dir / "00_traces.py"
    source.write_text(source.read_text() + "\n# %%\nassert 1 + 1 == 2\n")
    assert stale_notebooks(lessons_dir, notebooks_dir) == [
        f"{notebooks_dir / '00_traces.ipynb'} differs from what {source} builds"
    ]
    assert build_notebooks(lessons_dir, notebooks_dir) == 1
    assert stale_notebooks(lessons_dir, notebooks_dir) == []
    before = {path.name: path.read_bytes() for path in notebooks_dir.glob("*.ipynb")}
    assert build_notebooks(lessons_dir, notebooks_dir) == 0
    assert before == {path.name: path.read_bytes() for path in notebooks_dir.glob("*.ipynb")}
    cells = json.loads(before["00_traces.ipynb"])["cells"]
    assert cells[-1]["source"] == ["assert 1 + 1 == 2"]
    assert cells[-1]["id"] == f"00-{len(cells) - 1:02d}", "ids follow the position, not chance"


def test_a_notebook_without_a_lesson_or_a_missing_notebook_is_drift(
    copies: tuple[Path, Path],
) -> None:
    lessons_dir, notebooks_dir = copies
    (notebooks_dir / "01_why_tiny_packets_jitter.ipynb").unlink()
    shutil.copy(notebooks_dir / "00_traces.ipynb", notebooks_dir / "99_orphan.ipynb")
    problems = stale_notebooks(lessons_dir, notebooks_dir)
    assert any("01_why_tiny_packets_jitter.ipynb is missing" in problem for problem in problems)
    assert any("99_orphan.ipynb has no lesson source" in problem for problem in problems)


def test_lessons_are_cells_without_outputs_or_metadata() -> None:
    for lesson in lessons():
        notebook = json.loads(notebook_text(lesson))
        assert notebook["metadata"]["kernelspec"]["name"] == "python3"
        kinds = {cell["cell_type"] for cell in notebook["cells"]}
        assert kinds == {"markdown", "code"}, lesson.name
        for cell in notebook["cells"]:
            assert cell["metadata"] == {}
            assert cell.get("outputs", []) == []
            assert not "".join(cell["source"]).startswith("# %%"), "a cell marker leaked in"


def test_every_repo_path_a_lesson_mentions_exists_or_is_written_by_a_lesson() -> None:
    repo = LESSONS_DIR.parent
    code = "\n".join(
        "".join(cell["source"])
        for lesson in lessons()
        for cell in json.loads(notebook_text(lesson))["cells"]
        if cell["cell_type"] == "code"
    )
    mentioned = {
        match.rstrip(".,:;)")
        for lesson in lessons()
        for match in re.findall(r"data/[\w./-]*", lesson.source.read_text())
    }
    assert "data/recorded/experiment_tiny_vs_frames.jsonl.gz" in mentioned
    for path in sorted(mentioned):
        name, folder = Path(path).name, Path(path).parent.name
        written_by_a_lesson = f'"{name}"' in code and f'"{folder}"' in code
        assert (repo / path).exists() or written_by_a_lesson, f"a lesson mentions {path}"


def test_a_notebook_cell_that_shows_a_warning_fails_under_nbval(tmp_path: Path) -> None:
    """notebooks/conftest.py: nbval's lax mode compares no outputs, so the check is ours."""
    import subprocess
    import sys

    import nbformat

    shutil.copy(NOTEBOOKS_DIR / "conftest.py", tmp_path / "conftest.py")
    cells = ["import sys, warnings",
             "print('sweep: 40%|####  | 2/5', file=sys.stderr)",  # a progress bar is not a warning
             "warnings.warn('this call goes away', FutureWarning)"]  # fmt: skip
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(notebook, tmp_path / "lesson.ipynb")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the repo's configuration
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-current-env", "--rootdir", str(tmp_path), "-c", str(tmp_path / "pytest.ini"),
         str(tmp_path / "lesson.ipynb")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    report = result.stdout + result.stderr
    assert result.returncode == 1, report
    assert "2 passed" in report and "1 failed" in report, report
    assert "Cell 2 shows a warning under the cell: FutureWarning: this call goes away" in report


def test_lessons_build_and_check_name_a_notebook_they_cannot_use(tmp_path: Path) -> None:
    """A notebook that was a directory or not UTF-8 ended ``labkit lessons`` in a traceback, and
    build wrote through a dangling link to wherever it pointed."""
    from labkit.cli.lessons import build_notebooks, stale_notebooks

    lessons_dir, notebooks_dir = tmp_path / "lessons", tmp_path / "notebooks"
    lessons_dir.mkdir()
    source = Path(__file__).parents[1] / "lessons" / "00_traces.py"
    (lessons_dir / source.name).write_bytes(source.read_bytes())
    assert build_notebooks(lessons_dir, notebooks_dir) == 1  # makes notebooks/ when missing
    notebook = notebooks_dir / "00_traces.ipynb"
    notebook.write_bytes(b"\xff\xfe")
    assert stale_notebooks(lessons_dir, notebooks_dir) == [
        f"{notebook} differs from what {lessons_dir / source.name} builds"]  # fmt: skip
    notebook.unlink()
    notebook.symlink_to(tmp_path / "elsewhere.ipynb")
    with pytest.raises(ValueError, match="is a link; a built notebook is a file of its own"):
        build_notebooks(lessons_dir, notebooks_dir)
    assert not (tmp_path / "elsewhere.ipynb").exists()
    (lessons_dir / "01_broken.py").write_bytes(b"# %%\n\xff\n")
    notebook.unlink()
    with pytest.raises(ValueError, match=r"01_broken.py is not UTF-8 text"):
        build_notebooks(lessons_dir, notebooks_dir)


def test_a_figure_a_lesson_returns_is_drawn_not_named() -> None:
    # A Figure built without pyplot shows as "<Figure size ...>" unless the inline backend is on:
    # in JupyterLab a reader would see that text where the lesson's main figure should be.
    import nbclient
    import nbformat

    (explorer,) = [lesson for lesson in lessons() if lesson.name.startswith("03_")]
    notebook = nbformat.reads(notebook_text(explorer), as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS_DIR)}}).execute()
    shown = [output["data"] for cell in notebook.cells if cell.cell_type == "code"
             for output in cell.outputs if "data" in output]  # fmt: skip
    figures = [data for data in shown if data.get("text/plain", "").startswith("<Figure size")]
    assert figures, "lesson 03 shows its figure"
    assert all("image/png" in data for data in figures), "a figure shown only as its name"

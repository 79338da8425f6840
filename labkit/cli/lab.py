"""``labkit lab``: JupyterLab on working copies of the lessons, so using the lab never dirties git.

The working copies live in ``lab/`` at the repo root (gitignored), built from ``lessons/*.py`` like
``notebooks/``; JupyterLab is rooted there, so autosave never writes a tracked notebook. A working
copy whose cells you edited is never replaced: it is kept and said so, and ``--refresh`` replaces it
(the old copy is moved to ``lab/.labkit/replaced/``). A copy you only ran (outputs, same cells) is
brought up to date when its lesson changes.

The browser opens on a lesson: the one named (``labkit lab 03``), or the first lesson when this
run created the working copies (a new lab); otherwise on JupyterLab's own page, which restores the
tabs left open last time.

Widget state is saved with each notebook (jupyterlab-manager's ``saveState``, made the default in
the settings directory this command gives JupyterLab), so a saved notebook reopens with its widgets
instead of "Error displaying widget: model not found". See README.md, "Lessons".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.cli.lessons import KERNELSPEC, LESSONS_DIR, REPO_DIR, Lesson, lessons, notebook_text
from labkit.cli.output_paths import output_directory
from labkit.cli.ports import port_number

LAB_DIR = REPO_DIR / "lab"
STATE_DIRNAME = ".labkit"  # hidden in JupyterLab's file browser
SETTINGS_DIRNAME = ".jupyterlab-settings"
WIDGETS_PLUGIN = "@jupyter-widgets/jupyterlab-manager:plugin"
NOTEBOOK_PLUGIN = "@jupyterlab/notebook-extension:tracker"
NOTIFICATION_PLUGIN = "@jupyterlab/apputils-extension:notification"
SETTINGS_OVERRIDES: dict[str, dict[str, Any]] = {
    WIDGETS_PLUGIN: {"saveState": True},  # a saved notebook reopens with its widgets
    NOTEBOOK_PLUGIN: {"autoStartDefaultKernel": True},  # no "Select Kernel" dialog at first open
    # no "get notified about Jupyter news?" toast over the first lesson, and no requests to
    # jupyter.org: the lab runs offline
    NOTIFICATION_PLUGIN: {"fetchNews": "false", "checkForUpdates": False},
}
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8888


@dataclass(frozen=True)
class CopyStatus:
    """What ``prepare_working_copies`` did with one lesson's working copy, and why."""

    lesson: str
    action: str  # created | current | updated | kept | refreshed
    detail: str = ""

    def __str__(self) -> str:
        line = f"{self.action:>9}  {self.lesson}.ipynb"
        return f"{line}  ({self.detail})" if self.detail else line


def cells_fingerprint(notebook_json: str) -> str:
    """A digest of a notebook's cells (kind and source): outputs, ids and metadata do not count."""
    cells = json.loads(notebook_json)["cells"]
    kinds_and_sources = [[cell["cell_type"], _source(cell["source"])] for cell in cells]
    return hashlib.sha256(json.dumps(kinds_and_sources).encode()).hexdigest()


def _source(source: str | list[str]) -> str:
    return source if isinstance(source, str) else "".join(source)


def _warn(message: str) -> None:
    print(f"labkit lab: {message}", file=sys.stderr)


class WorkingCopies:
    """The working copies in ``lab_dir`` and what each was built from (``.labkit/built.json``).

    An unreadable ``built.json`` is said (``warn``) and read as empty: every copy that differs from
    its lesson is then taken as edited and kept, so nothing is lost."""

    def __init__(self, lab_dir: Path, warn: Callable[[str], None] = _warn) -> None:
        self.lab_dir = lab_dir
        self.state_dir = lab_dir / STATE_DIRNAME
        self._built_file = self.state_dir / "built.json"
        self.built = self._read_built(warn)

    def _read_built(self, warn: Callable[[str], None]) -> dict[str, str]:
        if not self._built_file.exists():
            return {}
        try:
            built = json.loads(self._built_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problem = str(exc)
        else:
            if isinstance(built, dict) and all(isinstance(v, str) for v in built.values()):
                return built
            problem = "not an object of lesson names and fingerprints"
        warn(f"{self._built_file} is unreadable ({problem}): copies that differ from their "
             "lessons are kept, and it is written anew")  # fmt: skip
        return {}

    def path(self, lesson: Lesson) -> Path:
        return self.lab_dir / lesson.notebook_file

    def write(self, lesson: Lesson, text: str) -> None:
        self.path(lesson).write_text(text, encoding="utf-8")
        self.built[lesson.name] = cells_fingerprint(text)

    def set_aside(self, lesson: Lesson) -> Path:
        """Move a working copy to ``.labkit/replaced/NAME-N.ipynb`` (N: the first free number)."""
        replaced_dir = self.state_dir / "replaced"
        replaced_dir.mkdir(parents=True, exist_ok=True)
        number = 1
        while (replaced_dir / f"{lesson.name}-{number}.ipynb").exists():
            number += 1
        target = replaced_dir / f"{lesson.name}-{number}.ipynb"
        self.path(lesson).replace(target)
        return target

    def save_state(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._built_file.write_text(json.dumps(self.built, indent=1, sort_keys=True) + "\n")


def kernel_metadata(kernel_name: str = KERNELSPEC["name"]) -> dict[str, Any]:
    """The notebook metadata JupyterLab sets once a notebook's kernel starts: the kernelspec it runs
    and the language the kernel reports. A working copy written with it is not marked changed
    (and asked to be saved on closing) just for being opened."""
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:
        return {}  # the lessons' own metadata: JupyterLab asks for a kernel, as it would anyway
    kernelspec = {"display_name": spec.display_name, "language": spec.language, "name": kernel_name}
    return {"kernelspec": kernelspec, "language_info": dict(IPythonKernel.language_info)}


def prepare_working_copies(
    lab_dir: Path = LAB_DIR,
    refresh: Sequence[str] | None = None,
    lessons_dir: Path = LESSONS_DIR,
    warn: Callable[[str], None] = _warn,
) -> list[CopyStatus]:
    """Create or update the working copies; ``refresh`` names lessons to replace ([]: all)."""
    found = lessons(lessons_dir)
    to_refresh = _lessons_to_refresh(found, refresh)
    lab_dir.mkdir(parents=True, exist_ok=True)
    copies = WorkingCopies(lab_dir, warn)
    metadata = kernel_metadata()
    statuses = [_prepare(copies, lesson, notebook_text(lesson, metadata), lesson.name in to_refresh)
                for lesson in found]  # fmt: skip
    copies.save_state()
    return statuses


def _lessons_to_refresh(found: list[Lesson], refresh: Sequence[str] | None) -> set[str]:
    if refresh is None:
        return set()
    if not refresh:
        return {lesson.name for lesson in found}
    try:
        return {lesson_named(found, wanted).name for wanted in refresh}
    except ValueError as exc:
        raise ValueError(f"--refresh: {exc}") from None


def _prepare(copies: WorkingCopies, lesson: Lesson, text: str, refresh: bool) -> CopyStatus:
    path = copies.path(lesson)
    if not os.path.lexists(path):  # a dangling link is there: never write through it
        copies.write(lesson, text)
        return CopyStatus(lesson.name, "created")
    current = _read_copy(path)
    if refresh:
        old_copy = f"old copy {copies.set_aside(lesson)}" if current != text else ""
        copies.write(lesson, text)
        return CopyStatus(lesson.name, "refreshed", old_copy)
    fingerprint = _copy_fingerprint(current)
    if fingerprint is None:
        return CopyStatus(lesson.name, "kept", f"{path} is not a readable notebook; "
                          f"`labkit lab --refresh {lesson.name}` replaces it")
    if fingerprint == cells_fingerprint(text):
        copies.built[lesson.name] = fingerprint  # unedited: heals a lost built.json
        return CopyStatus(lesson.name, "current")
    if fingerprint == copies.built.get(lesson.name):
        set_aside = copies.set_aside(lesson)  # no edits, but maybe outputs: keep them there
        copies.write(lesson, text)
        return CopyStatus(
            lesson.name, "updated", f"lesson changed, your copy had no edits; old copy {set_aside}"
        )
    return CopyStatus(lesson.name, "kept", f"your edits differ from the lesson; "
                      f"`labkit lab --refresh {lesson.name}` replaces the copy")


def _read_copy(path: Path) -> str | None:
    """A working copy's text; None when it cannot be read as UTF-8 text (a directory, a dangling
    link, other bytes)."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _copy_fingerprint(text: str | None) -> str | None:
    """The cells' fingerprint of a working copy's text; None when it is not a notebook."""
    if text is None:
        return None
    try:
        return cells_fingerprint(text)
    except (ValueError, KeyError, TypeError, RecursionError):
        return None


def write_jupyterlab_settings(lab_dir: Path, app_settings_dir: Path | None = None) -> Path:
    """The app settings directory the lab runs with: JupyterLab's own, plus saveState for widgets.

    JupyterLab reads one app settings directory (page_config.json, overrides.json, overrides.d/);
    this copies the default one (if any) and adds ``overrides.d/labkit.json``. Overrides set
    defaults only: a user's own settings still win.
    """
    if app_settings_dir is None:
        from jupyterlab.commands import get_app_dir

        app_settings_dir = Path(get_app_dir()) / "settings"
    settings_dir = lab_dir / STATE_DIRNAME / SETTINGS_DIRNAME
    if settings_dir.is_symlink() or settings_dir.is_file():
        settings_dir.unlink()  # ours, rebuilt on every start: a link is removed, not followed
    elif settings_dir.exists():
        shutil.rmtree(settings_dir)
    if app_settings_dir.is_dir():
        shutil.copytree(app_settings_dir, settings_dir)
    overrides_d = settings_dir / "overrides.d"
    overrides_d.mkdir(parents=True, exist_ok=True)
    (overrides_d / "labkit.json").write_text(json.dumps(SETTINGS_OVERRIDES, indent=1) + "\n")
    return settings_dir


def lesson_named(found: Sequence[Lesson], wanted: str) -> Lesson:
    """The lesson ``wanted`` names: its name, with or without ``.ipynb`` (``03_explorer``), or its
    number (``3``, ``03``)."""
    name = wanted.removesuffix(".ipynb")
    for lesson in found:
        number = lesson.name.split("_", 1)[0]
        if name == lesson.name or (name.isdigit() and number.isdigit()
                                   and int(name) == int(number)):  # fmt: skip
            return lesson
    known = ", ".join(lesson.name for lesson in found)
    raise ValueError(f"no lesson {wanted!r} (lessons: {known})")


def lesson_to_open(
    found: Sequence[Lesson], named: Lesson | None, statuses: Sequence[CopyStatus]
) -> Lesson | None:
    """The lesson the browser opens on: the one named, else the first when every working copy
    was just created (a new lab), else none (JupyterLab restores the tabs left open)."""
    if named is not None:
        return named
    if found and all(status.action == "created" for status in statuses):
        return found[0]
    return None


def lesson_url(lesson: Lesson) -> str:
    """JupyterLab's address of a working copy (relative to the server's base URL)."""
    return f"/lab/tree/{urllib.parse.quote(lesson.notebook_file)}"


def jupyter_lab_argv(
    lab_dir: Path, settings_dir: Path, host: str, port: int, open_browser: bool, as_root: bool,
    opened: Lesson | None = None,
) -> list[str]:  # fmt: skip
    """The command that starts JupyterLab on the working copies (on lesson ``opened``, if any:
    the address the browser opens and the terminal prints)."""
    argv = [
        sys.executable, "-m", "jupyterlab",
        f"--ServerApp.root_dir={lab_dir}",
        f"--LabApp.app_settings_dir={settings_dir}",
        f"--ServerApp.ip={host}",
        f"--ServerApp.port={port}",
        f"--ServerApp.open_browser={open_browser}",
    ]
    if opened is not None:
        argv.append(f"--LabApp.default_url={lesson_url(opened)}")
    if as_root:
        argv.append("--allow-root")  # containers often run as root; Jupyter refuses it otherwise
    return argv


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "lab",
        help="JupyterLab on working copies of the lessons (lab/, untracked)",
        description="Write working copies of the lessons into lab/ (gitignored) and start "
        "JupyterLab there, open on LESSON (a new lab: on the first). Copies you edited are "
        "kept; --refresh replaces them.",
    )
    parser.add_argument(
        "lesson", nargs="?", metavar="LESSON",
        help="the lesson to open, by name or number (03_explorer, 03 or 3); default: the first "
        "lesson in a new lab, else the tabs left open last time",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"default: {DEFAULT_HOST}")
    parser.add_argument("--port", type=port_number, default=DEFAULT_PORT,
                        help=f"default: {DEFAULT_PORT}")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument(
        "--refresh", nargs="*", metavar="LESSON",
        help="replace these working copies (all when none is named; by name or number) with "
        "the lessons; replaced copies are moved to lab/.labkit/replaced/",
    )
    parser.add_argument(
        "--dir", type=output_directory, default=LAB_DIR,
        help="where the working copies go (default: lab/)",
    )
    parser.add_argument(
        "--prepare-only", action="store_true", help="write the working copies, do not start"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    lab_dir = args.dir.resolve()
    try:
        found = lessons()
        # a wrong name is refused before anything is written
        named = None if args.lesson is None else lesson_named(found, args.lesson)
        statuses = prepare_working_copies(lab_dir, args.refresh)
        opened = lesson_to_open(found, named, statuses)
    except (ValueError, OSError) as exc:  # an OSError names its file
        print(f"labkit lab: {exc}", file=sys.stderr)
        return 2
    print(f"working copies of the lessons in {lab_dir} (untracked):")
    for status in statuses:
        print(f"  {status}")
    if args.prepare_only:
        return 0
    if opened is not None:
        print(f"opening {opened.notebook_file}")
    try:
        settings_dir = write_jupyterlab_settings(lab_dir)
    except OSError as exc:
        print(f"labkit lab: {exc}", file=sys.stderr)
        return 2
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    open_browser = not args.no_browser
    argv = jupyter_lab_argv(lab_dir, settings_dir, args.host, args.port, open_browser, as_root,
                            opened)  # fmt: skip
    sys.stdout.flush()
    os.execv(argv[0], argv)  # JupyterLab takes this process over: Ctrl-C and signals reach it

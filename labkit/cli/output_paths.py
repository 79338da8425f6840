"""Where commands write: ``sweep --out``, ``lab --dir``, ``call --record`` and ``--realtime-log``,
``serve --record``, ``emulate --log``, ``synth ... --out`` (directories) and ``import -o`` (a
file). Each is checked when the command line is read, so a path that is a file where a directory
must be (or that lies under a file) ends the command in one line naming the flag, before a call or
a sweep has run only to fail at its first write. So is a directory this process cannot write in
(read-only, another user's, a kernel filesystem such as /proc): a temporary directory is made in
the nearest one there and removed at once, the one test that root, read-only mounts and
/proc all answer truthfully (``os.access`` says yes to root everywhere)."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path


def directory_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a directory, or be made one; None when it can."""
    return _problem(path, (path, *path.parents))


def output_directory(text: str) -> Path:
    """An argparse type: a directory to write into (made when first written)."""
    if not text:  # Path("") is the current directory: a sweep would fill it unasked
        raise argparse.ArgumentTypeError("an empty path; name a directory (. for this one)")
    path = Path(text)
    problem = directory_problem(path)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return path


def output_file(text: str) -> Path:
    """An argparse type: a file to write (whether one may be replaced is the command's rule)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path; name a file")
    path = Path(text)
    problem = _problem(path, path.parents)
    if path.is_dir():
        problem = f"{path} is a directory; name a file"
    elif path.is_symlink() and not path.exists():  # a write would follow it, or fail on it
        problem = f"{path} is a dangling link"
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return path


def _problem(path: Path, ancestors: Sequence[Path]) -> str | None:
    """What stops ``path`` from being written: the nearest of ``ancestors`` (nearest first) that
    is there must be a directory."""
    for ancestor in ancestors:
        if ancestor.is_symlink() and not ancestor.exists():
            return f"{path}: {ancestor} is a dangling link"
        if ancestor.exists():
            if ancestor.is_dir():
                return _unwritable(path, ancestor)
            if ancestor == path:
                return f"{path} is not a directory"
            return f"{path} lies under {ancestor}, which is not a directory"
    return None


def _unwritable(path: Path, directory: Path) -> str | None:
    """Why nothing can be made in ``directory`` (the nearest of ``path``'s that is there)."""
    try:
        Path(tempfile.mkdtemp(prefix=".labkit-probe-", dir=directory)).rmdir()
    except OSError as exc:
        where = "it" if directory == path else str(directory)
        return f"{path}: nothing can be made in {where} ({exc.strerror or exc})"
    return None

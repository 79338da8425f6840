"""A sweep's directory: ``sweep.csv`` written as runs finish, resumable, never overwritten silently.

``sweep.csv`` gets each chunk's rows as the chunk finishes (appended, flushed and synced), so an
interrupted sweep keeps every row it finished. ``sweep-manifest.json`` beside it records what
makes the rows: each trace's name and the SHA-256 of its file, the strategies, thresholds,
links, playouts, seeds and options (not ``--jobs`` nor where the runs ran: they change no
value), and the labkit that computed them (its version, a SHA-256 of the simulation's source
and the versions of the libraries whose arithmetic enters a row). Opening a directory that
holds them compares manifests: the same arguments and code resume (runs already in
``sweep.csv`` are skipped), other ones are refused, naming what differs.
A last line cut short by a crash is dropped on resume, and said so, once the rest of the file is
accepted; any other row that is not one of the sweep's runs, held once, with every field, numbers
for values, is refused by line and column, and the file is left as it was. One sweep writes a
directory at a time: the journal holds an exclusive lock on its ``.sweep.lock`` from the moment
it opens a directory holding a sweep, or makes one, until it is closed (or its process ends).
When every run is in, ``sweep.csv`` is rewritten in the sweep's order (to a new file, then
renamed over it), the same rows and values, so it equals what an uninterrupted sweep on any
engine writes. See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import csv
import fcntl
import functools
import hashlib
import importlib.metadata
import io
import json
import os
import stat
import tempfile
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import labkit
from labkit.sim.sweep_runs import RUN_COLUMNS, Row, RunKey, SweepGrid, runs_frame
from labkit.sim.sweep_traces import TraceSource


def _pandas_version() -> tuple[int, int]:
    major, minor = pd.__version__.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


RUNS_FILE = "sweep.csv"
SUMMARY_FILE = "summary.csv"
FLEET_FILE = "fleet.csv"  # a sweep of two or more calls: labkit/sim/fleet_summary.py
DERIVED_FILES = (SUMMARY_FILE, FLEET_FILE)  # written from sweep.csv once every run is in
MANIFEST_FILE = "sweep-manifest.json"
MANIFEST_VERSION = 1
LOCK_FILE = ".sweep.lock"  # flock'ed by the one journal writing the directory; holds its pid
_NEW_FILE_MODE = 0o644  # summary.csv's when first written (mkstemp's own is private)
_SHOWN_CHARS = 160  # of each differing manifest entry in an error
_HASH_SHOWN_CHARS = 12  # of a code hash in an error: enough to tell two apart
_CUT_LINE_MAX_BYTES = 1 << 20  # a longer last line with no end is no interrupted row
_LOCK_TRIES = 3  # a refused opener may remove the lock file between our open and our lock
_PID_MAX_BYTES = 32  # of the lock file read to name the sweep holding it
# What computes a run's numbers, under the installed labkit package: the simulation, the
# strategies, trace reading and the modules they call (marks, concealment, MOS, audio, the
# size of Twilio's messages). Any change to a .py file here may change a row's values.
_SIM_SOURCES = ("sim", "outbound", "traces", "marks.py", "plc.py", "quality.py", "audio.py",
                "twilio_messages.py")  # fmt: skip
# the manifest's provenance entries: the code's hash covers the libraries' versions too
_VERSION_KEY, _CODE_KEY, _LIBRARIES_KEY = "labkit_version", "code_sha256", "libraries"
# Libraries whose versions can change a row: numpy's random streams and arithmetic (its
# Generator promises no stream across versions), scipy's filters and t quantiles, pesq's MOS.
NUMERIC_LIBRARIES = ("numpy", "scipy", "pesq")
# how sweep.csv is read back: names stay strings (a trace may be called "nan"), values exact
# (pandas 3.1 parses floats exactly by default and deprecates asking for it)
_KEY_DTYPES = {"trace": str, "strategy": str, "link": str, "playout": str}
_EXACT = {} if _pandas_version() >= (3, 1) else {"float_precision": "round_trip"}
# (a blank line is read as a row, so each row's line in the file is its index + 2)
_READ_OPTIONS: dict[str, Any] = {"dtype": _KEY_DTYPES, "keep_default_na": False,
                                 "na_values": [""], "skip_blank_lines": False,
                                 **_EXACT}  # fmt: skip
_FIRST_ROW_LINE = 2  # line 1 is the header


def read_runs(path: Path) -> pd.DataFrame:
    """A ``sweep.csv`` as written: every value as it was computed (floats round-trip)."""
    return _read(path)


def sweep_manifest(sources: Sequence[TraceSource], grid: SweepGrid) -> dict[str, Any]:
    """What makes a sweep's rows, as JSON (order-free lists: order changes no row)."""
    manifest = {
        "labkit_sweep": MANIFEST_VERSION,
        "traces": sorted([source.name, source.digest()] for source in sources),
        "strategies": sorted(grid.strategies),
        "thresholds_ms": sorted(grid.thresholds_ms),
        "links": sorted(grid.links),
        "playouts": sorted(grid.playouts),
        "seeds": sorted(grid.seeds),
        "link_params": grid.link_params or {},
        "playout_params": grid.playout_params or {},
        "strategy_options": grid.strategy_options,
        "mos": grid.mos,
        "conceal": grid.conceal if grid.mos else None,  # only the score depends on it
        _VERSION_KEY: labkit_version(),
        _CODE_KEY: code_digest(),
        _LIBRARIES_KEY: library_versions(),
    }
    return dict(json.loads(json.dumps(manifest)))  # as it reads back


def labkit_version() -> str:
    """The installed labkit's version (the source's own when it runs uninstalled)."""
    try:
        return importlib.metadata.version("labkit")
    except importlib.metadata.PackageNotFoundError:
        return labkit.__version__


@functools.cache  # the source does not change under a running sweep's feet; hash it once
def code_digest() -> str:
    """SHA-256 of what computes a sweep's rows: the source (``_SIM_SOURCES`` of this labkit)
    and the versions of ``NUMERIC_LIBRARIES``. An editable install keeps its version through
    every edit, so the version alone cannot say whether rows computed before and after an edit,
    or an upgrade of numpy, may be mixed."""
    source = source_digest(Path(labkit.__file__).parent, _SIM_SOURCES)
    libraries = json.dumps(library_versions(), sort_keys=True)
    return hashlib.sha256(f"{source}\0{libraries}".encode()).hexdigest()


def library_versions() -> dict[str, str]:
    """The installed version of each of ``NUMERIC_LIBRARIES`` ("absent" for one not installed:
    pesq is optional)."""
    versions = {}
    for name in NUMERIC_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def source_digest(package: Path, parts: Sequence[str]) -> str:
    """SHA-256 over every ``.py`` file of ``parts`` (files or folders) of ``package``: each
    file's relative path and contents, in sorted path order (the same tree, the same hash)."""
    files: dict[str, Path] = {}
    for part in parts:
        top = package / part
        found = sorted(top.rglob("*.py")) if top.is_dir() else [top] if top.is_file() else []
        files.update((path.relative_to(package).as_posix(), path) for path in found)
    digest = hashlib.sha256()
    for name in sorted(files):
        data = files[name].read_bytes()
        # lengths make the stream unambiguous: no file's text can pass for a name
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


class SweepJournal:
    """The rows of a sweep directory: those already there (``done``) and those appended.

    It holds the directory's lock from the moment it opens a directory holding a sweep, or makes
    the directory for its first rows, until ``close`` (or until it is collected, or its process
    ends: the kernel drops an flock with its file)."""

    def __init__(self, directory: Path, manifest: dict[str, Any], done: set[RunKey],
                 columns: list[str] | None, notes: list[str]) -> None:  # fmt: skip
        self.directory = directory
        self.manifest = manifest
        self.path = directory / RUNS_FILE
        self.done = done
        self.columns = columns
        self.notes = notes  # what opening it repaired, for the user
        self._unlock: Callable[[], object] | None = None  # set while the lock is held
        self._closed = False

    @classmethod
    def open(cls, directory: Path, manifest: dict[str, Any]) -> SweepJournal:
        """The journal of ``directory`` for a sweep of ``manifest``: resumed when the manifest
        there is the same, refused (ValueError) when it differs, when results are there with
        no manifest, or when another journal holds the directory. The directory and the manifest
        are written with the first rows (a sweep refused before then leaves nothing behind)."""
        journal = cls(directory, manifest, set(), None, [])
        if any((directory / name).exists() for name in (MANIFEST_FILE, RUNS_FILE, *DERIVED_FILES)):
            journal._take_directory(resuming=True)  # or a refusal: decided under the lock
        return journal

    def close(self) -> None:
        """Let another sweep write the directory; this journal writes no more."""
        self._closed = True
        self._release()

    def _release(self) -> None:
        if self._unlock is not None:
            self._unlock()
            self._unlock = None

    def __enter__(self) -> SweepJournal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def reread(self) -> None:
        """Take ``done`` from sweep.csv again, then drop a last line cut short.

        After an interrupt the file is the truth: a KeyboardInterrupt can land between the
        write of a batch and the update of ``done``, or in the middle of the write. The cut line
        is dropped only once the lines before it are accepted: a refused file stays as it was.
        Only while this journal holds the directory: until then any row there is another's."""
        if self._unlock is None or not self.path.exists():
            return
        data = self.path.read_bytes()
        whole = _whole_lines_bytes(self.path, data)
        done, self.columns = _read_keys(self.path, data[:whole], self.manifest)
        self.done.clear()  # in place: the engine planning the runs left holds this set
        self.done.update(done)
        if whole < len(data):
            os.truncate(self.path, whole)
            self.notes.append(f"{self.path}: dropped a last line cut short "
                              f"({len(data) - whole} bytes), that run is done again")  # fmt: skip

    def append(self, rows: Sequence[Row]) -> None:
        """Write ``rows`` at the end of sweep.csv, on disk when this returns."""
        if not rows:
            return
        if self._closed:
            raise ValueError(f"{self.path}: this sweep's journal is closed; open it again")
        if self._unlock is None:  # the first rows into a directory no sweep held at open
            self.directory.mkdir(parents=True, exist_ok=True)
            self._take_directory(resuming=False)
        header = self.columns is None
        columns = list(rows[0]) if self.columns is None else self.columns
        for row in rows:
            if list(row) != columns:
                raise ValueError(f"{self.path}: a row's columns {list(row)} are not the file's "
                                 f"{columns}")  # fmt: skip
        if header:
            self._write_manifest()
        text = pd.DataFrame(list(rows), columns=columns).to_csv(header=header, index=False)
        with self.path.open("a", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        self.columns = columns
        self.done.update(run_key(row) for row in rows)

    def _take_directory(self, *, resuming: bool) -> None:
        """Lock the directory, then check what it holds (as ``open`` describes). Not
        ``resuming``: this journal found no sweep there at open, so whatever is there now was
        written since by another sweep, whose rows this one may have computed again. A refused
        directory is left as it was, its lock file too."""
        fd, created = _lock_directory(self.directory)
        self._unlock = weakref.finalize(self, os.close, fd)  # not a method: self must die
        try:
            if not resuming:
                self._check_untouched()
            self._check_directory()
        except BaseException:
            if created:  # removed while held: see _lock_directory
                (self.directory / LOCK_FILE).unlink(missing_ok=True)
            self._release()
            raise

    def _check_untouched(self) -> None:
        """A ValueError if another sweep wrote the directory since this journal opened it."""
        manifest_path = self.directory / MANIFEST_FILE
        if manifest_path.exists():
            _check_same(manifest_path, self.manifest)  # names other arguments, if they are
        written = [path.name for path in (manifest_path, self.path, *self._derived_paths())
                   if path.exists()]  # fmt: skip
        if written:
            raise ValueError(f"{self.directory}: another sweep wrote {', '.join(written)} here "
                             f"since this one started; rerun the same command to resume "
                             f"it")  # fmt: skip

    def _check_directory(self) -> None:
        runs, manifest_path = self.path, self.directory / MANIFEST_FILE
        derived = [path for path in self._derived_paths() if path.exists()]
        has_rows = runs.exists() or bool(derived)
        if manifest_path.exists():
            try:
                _check_same(manifest_path, self.manifest)
            except ValueError:
                if has_rows:
                    raise
                self.notes.append(f"{manifest_path} described no run yet; replaced")
                manifest_path.unlink()
        elif has_rows:
            existing = runs if runs.exists() else derived[0]
            raise ValueError(f"{existing} exists with no {MANIFEST_FILE} beside it to say "
                             f"what made it; give another --out, or move it away")  # fmt: skip
        self.reread()

    def _write_manifest(self) -> None:
        path = self.directory / MANIFEST_FILE
        try:
            with path.open("x", encoding="utf-8") as file:
                json.dump(self.manifest, file, indent=1)
                file.write("\n")
        except FileExistsError:  # checked under the lock already; never trusted unread
            _check_same(path, self.manifest)

    def finish(self, expected_runs: int) -> pd.DataFrame:
        """Every row, in the sweep's order; sweep.csv rewritten in that order (atomically).
        A ValueError if sweep.csv does not hold ``expected_runs`` runs."""
        if len(self.done) != expected_runs:
            raise ValueError(f"{self.path} holds {len(self.done)} of the sweep's "
                             f"{expected_runs} runs")  # fmt: skip
        frame = runs_frame(read_runs(self.path))
        _replace_text(self.path, frame.to_csv(index=False))
        return frame

    def write_summary(self, summary: pd.DataFrame, name: str = SUMMARY_FILE) -> Path:
        """summary.csv (or ``name``, one of DERIVED_FILES) beside sweep.csv, replaced whole
        (never written through a link)."""
        if name not in DERIVED_FILES:
            raise ValueError(f"write_summary: {name!r} is not one of {DERIVED_FILES}")
        path = self.directory / name
        _replace_text(path, summary.to_csv(index=False))
        return path

    def _derived_paths(self) -> list[Path]:
        return [self.directory / name for name in DERIVED_FILES]


def _lock_directory(directory: Path) -> tuple[int, bool]:
    """An exclusive flock on ``directory``'s lock file, which then holds this process's id;
    the file's descriptor and whether it was made here. A ValueError naming the holder when
    another journal (in any process, this one too) holds it.

    A refused journal removes a lock file it made, so the file may be gone or new by the time
    a lock is granted: the lock counts only while the name still leads to the file locked."""
    path = directory / LOCK_FILE
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC  # a planted link is never written through
    for _ in range(_LOCK_TRIES):
        try:
            try:
                fd, created = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644), True
            except FileExistsError:
                fd, created = os.open(path, flags), False
        except FileNotFoundError:
            continue  # removed between the two opens
        except OSError as exc:
            raise ValueError(f"{path}: cannot open the sweep's lock file ({exc.strerror})"
                             ) from None  # fmt: skip
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ValueError(f"{path}: not a regular file; cannot lock the sweep's "
                                 f"directory with it")  # fmt: skip
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ValueError(f"{directory}: another sweep is writing here{_holder(fd)}; "
                                 f"wait for it or choose another --out") from None  # fmt: skip
            if not _still_named(fd, path):
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        return fd, created
    raise ValueError(f"{path}: removed and made again {_LOCK_TRIES} times while locking it; "
                     f"is another program cleaning the directory?")  # fmt: skip


def _still_named(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
    except FileNotFoundError:
        return False


def _holder(fd: int) -> str:
    """`` (pid N)`` of the process that wrote its id into the lock file ``fd``, or nothing."""
    text = os.pread(fd, _PID_MAX_BYTES, 0).decode("ascii", "replace").strip()
    return f" (pid {text})" if text.isdigit() else ""


def _replace_text(path: Path, text: str) -> None:
    """Put ``text`` at ``path`` whole or not at all, through a new file no one else can have
    named (a link planted where the file is written would be followed), with ``path``'s mode."""
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else _NEW_FILE_MODE
        os.chmod(temp_name, mode)  # mkstemp makes it private
        os.replace(temp_name, path)
    except BaseException as exc:
        Path(temp_name).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ValueError(f"{path}: could not write it ({exc.strerror or exc}); left as "
                             f"it was") from None  # fmt: skip
        raise


def run_key(row: Mapping[Any, Any]) -> RunKey:
    trace, strategy, threshold, link, playout, seed = (
        _KEY_TYPES[column](row[column]) for column in RUN_COLUMNS
    )
    return (trace, strategy, threshold, link, playout, seed)


def _seed(value: Any) -> int:
    number = float(value)  # a whole number, whichever type the column was read as
    if not number.is_integer():
        raise ValueError(f"seed {value!r} is not a whole number")
    return int(number)


# how each RUN_COLUMNS value is read: the one rule of a row's key
_KEY_TYPES: dict[str, Callable[[Any], Any]] = {
    "trace": str, "strategy": str, "threshold_ms": float, "link": str, "playout": str,
    "seed": _seed,
}  # fmt: skip


def _check_same(path: Path, manifest: dict[str, Any]) -> None:
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} cannot be read as a sweep manifest: {exc}") from None
    if not isinstance(old, dict) or old.get("labkit_sweep") != MANIFEST_VERSION:
        raise ValueError(f"{path} is not a labkit sweep manifest (version {MANIFEST_VERSION})")
    _check_same_code(path, old, manifest)
    # the version only names the code: the same code under another version makes the same rows
    differ = [f"{key}: {_shown(old.get(key))} there, {_shown(manifest.get(key))} now"
              for key in sorted((set(old) | set(manifest)) - {_VERSION_KEY, _LIBRARIES_KEY})
              if old.get(key) != manifest.get(key)]  # fmt: skip
    if differ:
        raise ValueError(f"{path.parent} holds a sweep made with other arguments ("
                         + "; ".join(differ) + "); give another --out, or rerun with the same "
                         "arguments to resume it")  # fmt: skip


def _check_same_code(path: Path, old: Mapping[str, Any], manifest: Mapping[str, Any]) -> None:
    """A ValueError when the rows of ``path``'s sweep were computed by other simulation code
    than this process runs, or by a labkit that did not record its code: resumed, the sweep
    would mix two versions' numbers with nothing to tell them apart."""
    there, now = old.get(_CODE_KEY), manifest.get(_CODE_KEY)
    if there == now:
        return
    advice = (f"choose a new --out, or delete {', '.join((RUNS_FILE, *DERIVED_FILES))} there "
              f"to compute every run again")  # fmt: skip
    mine = f"{_hash_shown(now)} (labkit {manifest.get(_VERSION_KEY)})"
    if not isinstance(there, str):
        raise ValueError(f"{path}: written by a labkit that did not record its code, so what "
                         f"computed the rows there is unknown (this is code {mine}); "
                         f"{advice}")  # fmt: skip
    raise ValueError(f"{path}: the rows there were computed by other labkit code "
                     f"({_hash_shown(there)}, labkit {old.get(_VERSION_KEY)}) than this is "
                     f"({mine}){_libraries_changed(old, manifest)}; resuming would mix their "
                     f"numbers: {advice}")  # fmt: skip


def _libraries_changed(old: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    """", with numpy 2.1.0 there and 2.2.0 here" for each library whose version differs."""
    there, here = old.get(_LIBRARIES_KEY), manifest.get(_LIBRARIES_KEY)
    if not isinstance(there, dict) or not isinstance(here, dict):
        return ""
    changed = [f"{name} {_hash_shown(there.get(name))} there and {here.get(name)} here"
               for name in sorted(set(there) | set(here)) if there.get(name) != here.get(name)]
    return f", with {'; '.join(changed)}" if changed else ""


def _hash_shown(value: Any) -> str:
    return str(value)[:_HASH_SHOWN_CHARS]


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _whole_lines_bytes(path: Path, data: bytes) -> int:
    """How many bytes of ``data`` (``path``'s) are whole lines: all of them, or all but a last
    line with no newline (a write interrupted by a crash)."""
    if not data or data.endswith(b"\n"):
        return len(data)
    whole = data.rfind(b"\n") + 1
    if len(data) - whole > _CUT_LINE_MAX_BYTES:
        raise ValueError(f"{path}: its last line is over 1 MiB and has no end; not a sweep")
    return whole


def _read(path: Path, data: bytes | None = None) -> pd.DataFrame:
    """The rows of ``path`` (or of ``data``, its bytes), every row first checked to have the
    header's number of fields: pandas would fill a short row with NaN, a run never finished."""
    if data is None:
        data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}, line {line}: not UTF-8 text; not a sweep's rows") from None
    _check_field_counts(path, text)
    try:
        frame: pd.DataFrame = pd.read_csv(io.StringIO(text), **_READ_OPTIONS)
        return frame
    except (ValueError, pd.errors.ParserError) as exc:  # EmptyDataError is a ValueError
        raise ValueError(f"{path} does not hold a sweep's rows: {exc}") from None


def _check_field_counts(path: Path, text: str) -> None:
    """A ValueError naming the first line of ``text`` (``path``'s) whose row has more or fewer
    fields than the header (a blank line has none)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return
        for row in reader:
            if len(row) != len(header):
                raise ValueError(f"{path}, line {reader.line_num}: {len(row)} fields where the "
                                 f"header has {len(header)}; not a whole row")  # fmt: skip
    except csv.Error as exc:
        raise ValueError(f"{path}, line {reader.line_num}: {exc}; not a sweep's rows") from None


def _read_keys(path: Path, data: bytes, manifest: Mapping[str, Any],
               ) -> tuple[set[RunKey], list[str] | None]:  # fmt: skip
    """The runs ``data`` (``path``'s whole lines) holds and its columns, each row checked first:
    it has every field, its key is one of the runs ``manifest`` describes, held once, and its
    values are numbers (or empty: NaN)."""
    if not data:
        return set(), None
    frame = _read(path, data)
    columns = [str(column) for column in frame.columns]
    missing = [column for column in RUN_COLUMNS if column not in columns]
    if missing:
        raise ValueError(f"{path}, line 1: no {', '.join(missing)} column; not a sweep's rows")
    _check_numbers(path, frame.drop(columns=list(RUN_COLUMNS)))
    grid = _grid_values(manifest)
    lines: dict[RunKey, int] = {}
    keys = frame[list(RUN_COLUMNS)].itertuples(index=False, name=None)
    for line, values in enumerate(keys, start=_FIRST_ROW_LINE):
        key = _run_key_at(f"{path}, line {line}", values, grid)
        if key in lines:
            raise ValueError(f"{path}, line {line}: the run of line {lines[key]} again; a sweep "
                             f"writes each run once")  # fmt: skip
        lines[key] = line
    return set(lines), columns


def _grid_values(manifest: Mapping[str, Any]) -> dict[str, set[Any]]:
    """Each key column's values in the sweep ``manifest`` describes."""
    return {"trace": {name for name, _ in manifest["traces"]},
            "strategy": set(manifest["strategies"]),
            "threshold_ms": {float(value) for value in manifest["thresholds_ms"]},
            "link": set(manifest["links"]), "playout": set(manifest["playouts"]),
            "seed": {int(value) for value in manifest["seeds"]}}  # fmt: skip


def _run_key_at(where: str, values: Sequence[Any], grid: Mapping[str, set[Any]]) -> RunKey:
    """The run key of one row's ``values`` (RUN_COLUMNS), or a ValueError at ``where`` naming
    the first field that does not parse or is not one of the sweep's."""
    key = []
    for column, value in zip(RUN_COLUMNS, values, strict=True):
        try:
            parsed = _KEY_TYPES[column](value)
        except (TypeError, ValueError):
            parsed = None
        if parsed not in grid[column]:
            choices = ", ".join(str(choice) for choice in sorted(grid[column]))
            shown = "(empty)" if pd.isna(value) else _shown(str(value))
            raise ValueError(f"{where}: {column} {shown} is not one of this "
                             f"sweep's ({_shown(choices)}); not this sweep's rows")  # fmt: skip
        key.append(parsed)
    trace, strategy, threshold, link, playout, seed = key
    return (trace, strategy, threshold, link, playout, seed)


def _check_numbers(path: Path, values: pd.DataFrame) -> None:
    """A ValueError naming the first cell of ``values`` that is neither a number nor empty."""
    for column in values.columns:
        cells = values[column]
        numbers = pd.to_numeric(cells, errors="coerce")
        bad = numbers.isna() & cells.notna()
        if bad.any():
            index = int(np.argmax(bad.to_numpy()))
            raise ValueError(f"{path}, line {index + _FIRST_ROW_LINE}: {column} "
                             f"{_shown(str(cells.iloc[index]))} is not a number")  # fmt: skip

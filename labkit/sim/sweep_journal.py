"""A sweep's directory: ``sweep.csv`` written as runs finish, resumable, never overwritten silently.

``sweep.csv`` gets each chunk's rows as the chunk finishes (appended, flushed and synced), so an
interrupted sweep keeps every row it finished. ``sweep-manifest.json`` beside it records what
makes the rows: each trace's name and the SHA-256 of its file, the strategies, thresholds,
links, playouts, seeds and options (not ``--jobs`` nor where the runs ran: they change no
value). Opening a directory that holds them compares manifests: the same arguments resume
(runs already in ``sweep.csv`` are skipped), other ones are refused, naming what differs. A last
line cut short by a crash is dropped on resume, and said so; any other row that is not one of
the sweep's runs, held once, with numbers for values, is refused by line and column. When every
run is in, ``sweep.csv`` is rewritten in the sweep's order (to a new file, then renamed over it),
the same rows and values, so it equals what an uninterrupted sweep on any engine writes.
See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labkit.sim.sweep_runs import RUN_COLUMNS, Row, RunKey, SweepGrid, runs_frame
from labkit.sim.sweep_traces import TraceSource


def _pandas_version() -> tuple[int, int]:
    major, minor = pd.__version__.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


RUNS_FILE = "sweep.csv"
SUMMARY_FILE = "summary.csv"
MANIFEST_FILE = "sweep-manifest.json"
MANIFEST_VERSION = 1
_SHOWN_CHARS = 160  # of each differing manifest entry in an error
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
    }
    return dict(json.loads(json.dumps(manifest)))  # as it reads back


class SweepJournal:
    """The rows of a sweep directory: those already there (``done``) and those appended."""

    def __init__(self, directory: Path, manifest: dict[str, Any], done: set[RunKey],
                 columns: list[str] | None, notes: list[str]) -> None:  # fmt: skip
        self.directory = directory
        self.manifest = manifest
        self.path = directory / RUNS_FILE
        self.done = done
        self.columns = columns
        self.notes = notes  # what opening it repaired, for the user

    @classmethod
    def open(cls, directory: Path, manifest: dict[str, Any]) -> SweepJournal:
        """The journal of ``directory`` for a sweep of ``manifest``: resumed when the manifest
        there is the same, refused (ValueError) when it differs or when results are there with
        no manifest. The directory and the manifest are written with the first rows."""
        runs, manifest_path = directory / RUNS_FILE, directory / MANIFEST_FILE
        notes: list[str] = []
        has_rows = runs.exists() or (directory / SUMMARY_FILE).exists()
        if manifest_path.exists():
            try:
                _check_same(manifest_path, manifest)
            except ValueError:
                if has_rows:
                    raise
                notes.append(f"{manifest_path} described no run yet; replaced")
                manifest_path.unlink()
        elif has_rows:
            existing = runs if runs.exists() else directory / SUMMARY_FILE
            raise ValueError(f"{existing} exists with no {MANIFEST_FILE} beside it to say "
                             f"what made it; give another --out, or move it away")  # fmt: skip
        journal = cls(directory, manifest, set(), None, notes)
        journal.reread()
        return journal

    def reread(self) -> None:
        """Take ``done`` from sweep.csv again, after dropping a last line cut short.

        After an interrupt the file is the truth: a KeyboardInterrupt can land between the
        write of a batch and the update of ``done``, or in the middle of the write."""
        if self.path.exists():
            _drop_cut_line(self.path, self.notes)
            self.done, self.columns = _read_keys(self.path, self.manifest)

    def append(self, rows: Sequence[Row]) -> None:
        """Write ``rows`` at the end of sweep.csv, on disk when this returns."""
        if not rows:
            return
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

    def _write_manifest(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / MANIFEST_FILE
        if path.exists():  # checked at open
            return
        with path.open("x", encoding="utf-8") as file:
            json.dump(self.manifest, file, indent=1)
            file.write("\n")

    def finish(self, expected_runs: int) -> pd.DataFrame:
        """Every row, in the sweep's order; sweep.csv rewritten in that order (atomically).
        A ValueError if sweep.csv does not hold ``expected_runs`` runs."""
        if len(self.done) != expected_runs:
            raise ValueError(f"{self.path} holds {len(self.done)} of the sweep's "
                             f"{expected_runs} runs")  # fmt: skip
        frame = runs_frame(read_runs(self.path))
        sorted_path = self.path.with_name(RUNS_FILE + ".sorting")
        frame.to_csv(sorted_path, index=False)
        os.replace(sorted_path, self.path)
        return frame


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
    differ = [f"{key}: {_shown(old.get(key))} there, {_shown(manifest.get(key))} now"
              for key in sorted(set(old) | set(manifest)) if old.get(key) != manifest.get(key)]
    if differ:
        raise ValueError(f"{path.parent} holds a sweep made with other arguments ("
                         + "; ".join(differ) + "); give another --out, or rerun with the same "
                         "arguments to resume it")  # fmt: skip


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _drop_cut_line(path: Path, notes: list[str]) -> None:
    """Cut a last line that has no newline (a write interrupted by a crash) off ``path``."""
    with path.open("rb+") as file:
        size = file.seek(0, os.SEEK_END)
        if size == 0:
            return
        file.seek(max(0, size - (1 << 20)))
        tail = file.read()
        if tail.endswith(b"\n"):
            return
        last_newline = tail.rfind(b"\n")
        if last_newline < 0 and size > len(tail):
            raise ValueError(f"{path}: its last line is over 1 MiB and has no end; not a sweep")
        keep = size - len(tail) + last_newline + 1
        file.truncate(keep)
    notes.append(f"{path}: dropped a last line cut short ({size - keep} bytes), that run "
                 f"is done again")  # fmt: skip


def _read(path: Path, columns: list[str] | None = None, rows: int | None = None,
          ) -> pd.DataFrame:  # fmt: skip
    try:
        frame: pd.DataFrame = pd.read_csv(path, usecols=columns, nrows=rows, **_READ_OPTIONS)
        return frame
    except (ValueError, pd.errors.ParserError) as exc:  # EmptyDataError is a ValueError
        raise ValueError(f"{path} does not hold a sweep's rows: {exc}") from None


def _read_keys(path: Path, manifest: Mapping[str, Any]) -> tuple[set[RunKey], list[str] | None]:
    """The runs ``path`` holds and its columns, each row checked first: its key is one of the
    runs ``manifest`` describes, held once, and its values are numbers (or empty: NaN)."""
    if path.stat().st_size == 0:
        return set(), None
    frame = _read(path)
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

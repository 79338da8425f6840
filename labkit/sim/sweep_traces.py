"""The traces a sweep runs over: names, files, shipped traces and directories of recorded calls.

A sweep's rows are keyed by trace name, so every trace must have a name of its own. A directory
stands for every ``*.jsonl`` and ``*.jsonl.gz`` directly inside it, in sorted order (what
``labkit serve --record DIR`` writes). Files are read by the one trace reader, within its
``TraceLimits``; every file that cannot be read, or that the sweep's check refuses, is named in
one error, so a fleet of thousands of calls is checked in one pass before any run. See
notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from labkit.traces import Trace, TraceLimits, read, shipped
from labkit.traces.reader import check_regular_file

TRACE_SUFFIXES = (".jsonl.gz", ".jsonl")
_HASH_BLOCK_BYTES = 1 << 20
TraceSpec = str | Path | Trace


@dataclass(frozen=True)
class TraceSource:
    """A trace to sweep before it is read: its name and its file (or the trace itself)."""

    name: str
    path: Path | None = None
    trace: Trace | None = None
    sha256: str | None = None  # the file's digest when first read (``pinned``): checked after

    def load(self, limits: TraceLimits | None = None) -> Trace:
        """The trace, read within ``limits`` (the reader's defaults when None); a ValueError if
        the file is no longer the one ``pinned`` saw (a sweep's rows are of the trace it
        checked, and its manifest holds that file's digest)."""
        if self.trace is not None:
            return self.trace
        assert self.path is not None
        if self.sha256 is not None and self.digest() != self.sha256:
            raise ValueError(f"{self.path}: the file changed while the sweep ran (its SHA-256 "
                             f"is no longer {self.sha256[:12]}...); the rows so far are of the "
                             f"file as it was")  # fmt: skip
        return read(self.path, limits=limits or TraceLimits())

    def pinned(self) -> TraceSource:
        """This source, with its file's digest now: a later ``load`` checks it (a file that
        cannot be read stays as it is: reading it says why, with the others that cannot)."""
        if self.path is None:
            return self
        try:
            return replace(self, sha256=self.digest())
        except OSError:
            return self

    def digest(self) -> str:
        """SHA-256 of the file's bytes (a resumed sweep must see the same trace)."""
        if self.path is None:
            raise ValueError(f"trace {self.name!r} has no file to fingerprint")
        sha = hashlib.sha256()
        with self.path.open("rb") as file:
            while block := file.read(_HASH_BLOCK_BYTES):
                sha.update(block)
        return sha.hexdigest()


def trace_name(path: Path) -> str:
    """A trace file's name without its suffix (``calls/a.jsonl.gz`` -> ``a``)."""
    return path.name.removesuffix(".gz").removesuffix(".jsonl")


def trace_specs(specs: TraceSpec | Iterable[TraceSpec]) -> list[TraceSpec]:
    """``specs`` as a list; one spec given alone (not the letters of a name) is a list of one."""
    return [specs] if isinstance(specs, str | Path | Trace) else list(specs)


def trace_sources(specs: TraceSpec | Iterable[TraceSpec]) -> list[TraceSource]:
    """Each spec (or the one spec) as a source: a Trace, a file, a directory (its traces,
    sorted) or a shipped name. Raises ValueError naming every spec that is none of these and
    every duplicated name."""
    sources: list[TraceSource] = []
    problems: list[str] = []
    for spec in trace_specs(specs):
        try:
            sources.extend(_expand(spec))
        except ValueError as exc:
            problems.append(str(exc))
    problems.extend(_same_files(sources))
    counts = Counter(source.name for source in sources)
    for name in sorted(name for name, count in counts.items() if count > 1):
        where = ", ".join(str(s.path or "a Trace object") for s in sources if s.name == name)
        problems.append(f"two traces are named {name!r} (rows are keyed by name): {where}")
    if problems:
        raise ValueError("; ".join(problems))
    return sources


def _same_files(sources: Sequence[TraceSource]) -> Iterator[str]:
    """One problem per file given twice under two names (a link): its runs would count twice."""
    seen: dict[tuple[int, int], TraceSource] = {}
    for source in sources:
        if source.path is None or not source.path.exists():
            continue
        status = source.path.stat()
        first = seen.setdefault((status.st_dev, status.st_ino), source)
        if first is not source and first.name != source.name:  # same names are reported below
            yield (f"{first.path} and {source.path} are one file (a link): sweep it once, "
                   f"or its runs count twice")  # fmt: skip


def _expand(spec: TraceSpec) -> Iterator[TraceSource]:
    if isinstance(spec, Trace):
        yield TraceSource(spec.description or "trace", trace=spec)
        return
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith(TRACE_SUFFIXES))
        if not files:
            raise ValueError(f"directory {str(path)!r} holds no *.jsonl or *.jsonl.gz trace")
        # named, not skipped: a trace left out would quietly change every summary
        problems = [problem for file in files if (problem := _not_a_trace_file(file))]
        if problems:
            raise ValueError("; ".join(problems))
        yield from (TraceSource(trace_name(file), file) for file in files)
        return
    check_regular_file(path)
    if path.exists() and (problem := _not_a_trace_file(path)):
        raise ValueError(problem)
    if not path.exists():
        try:
            path = shipped(str(spec))
        except (KeyError, ValueError, FileNotFoundError) as exc:
            names = ", ".join(trace_name(p) for p in shipped()) or "none"
            raise ValueError(f"trace {str(spec)!r} is neither a file, a directory nor a "
                             f"shipped trace (shipped: {names})") from exc  # fmt: skip
    yield TraceSource(trace_name(path), path)


def load_all(
    sources: Sequence[TraceSource], limits: TraceLimits | None = None,
    check: Callable[[str, Trace], None] | None = None,
) -> Iterator[tuple[TraceSource, Trace]]:  # fmt: skip
    """Each source with its trace, read one at a time (nothing is held here) and passed to
    ``check(name, trace)`` if given (a ValueError: it cannot be swept); when some cannot be read
    or swept, a ValueError naming each of them (file, line, reason) once all were tried."""
    unread, unfit = [], []
    for source in sources:
        try:
            trace = source.load(limits)
        except (ValueError, OSError) as exc:  # TraceFormatError is a ValueError
            unread.append(str(exc))
            continue
        if check is not None:
            try:
                check(source.name, trace)
            except ValueError as exc:
                unfit.append(f"{source.path}: {exc}" if source.path else str(exc))
                continue
        if not unread and not unfit:  # after a bad one the rest are only checked
            yield source, trace
    if unread or unfit:
        cannot = " or ".join(what for what, problems in (("read", unread), ("swept", unfit))
                             if problems)  # fmt: skip
        count = f"{len(unread) + len(unfit)} of {len(sources)} traces cannot be {cannot}"
        raise ValueError(f"{count}:\n  " + "\n  ".join(unread + unfit))


def checked_sources(
    sources: Sequence[TraceSource], limits: TraceLimits | None,
    check: Callable[[str, Trace], None],
) -> list[TraceSource]:  # fmt: skip
    """``sources`` pinned (each file's digest taken first), once every trace was read and passed
    ``check`` (``load_all``'s one error otherwise); the traces are let go: a sweep's engines read
    each again where it runs, and the pin refuses a file changed since."""
    pinned = [source.pinned() for source in sources]
    for _ in load_all(sources, limits, check):  # unpinned: the digests were just taken
        pass  # one trace at a time
    return pinned


def one_trace(spec: TraceSpec) -> TraceSource:
    """The one trace ``spec`` names: a Trace, a file or a shipped name (ValueError for a
    directory, or a spec that names no trace)."""
    if not isinstance(spec, Trace) and Path(spec).is_dir():
        raise ValueError(f"{str(spec)!r} is a directory; give one trace")
    (source,) = trace_sources([spec])
    return source


def load_trace(spec: TraceSpec, limits: TraceLimits | None = None) -> tuple[str, Trace]:
    """(name, trace) from a Trace, a path, or the name of a shipped trace; a file is read within
    ``limits`` (``labkit.traces.limits``, the defaults when None)."""
    source = one_trace(spec)
    return source.name, source.load(limits)


def _not_a_trace_file(path: Path) -> str | None:
    """Why ``path``, named like a trace, cannot be read as one; None if it can be."""
    if not path.exists():
        return f"{path}: a link to nothing (or a loop of links), not a trace file"
    if not trace_name(path):  # its rows would have an empty trace name, which reads back as none
        return f"{path}: a trace file needs a name before .jsonl or .jsonl.gz"
    try:
        check_regular_file(path)
    except ValueError as error:
        return str(error)
    return None

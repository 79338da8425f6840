"""Write a v1 trace: atomic, compact, keys in a stable order, ``.gz`` byte-for-byte reproducible.

See notebooks/00_traces.ipynb and docs/TRACE_FORMAT.md.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from labkit.traces.errors import TraceFormatError
from labkit.traces.event import (
    AUDIO_FORMAT,
    EVENT_FIELDS,
    FORMAT_VERSION,
    SAMPLE_RATE_HZ,
    TraceEvent,
)
from labkit.traces.trace import Trace
from labkit.traces.validation import SequenceCheck, check_event, check_header

_FILE_MODE = 0o644
_HEADER_ORDER = ("labkit_trace", "audio_format", "sample_rate", "source", "description")


def write(trace: Trace, path: str | Path, *, overwrite: bool = False) -> None:
    """Write ``trace`` to ``path`` (gzip if the name ends in ``.gz``).

    The trace is checked by the reader's rules first, written to a temporary file in the same
    directory and moved into place, so ``path`` is never left half written. An existing ``path``
    is replaced only with ``overwrite=True`` (FileExistsError otherwise: nothing is overwritten
    silently).
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path}: exists; not overwriting it (pass overwrite=True)")
    lines = list(encode_trace(trace, path))
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as raw:
            _write_lines(raw, lines, compress=path.name.endswith(".gz"))
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(temp_name, _FILE_MODE)  # mkstemp makes it private; a trace is ordinary data
        if overwrite:
            os.replace(temp_name, path)
        else:  # a link fails if the name was taken meanwhile: never replaces
            os.link(temp_name, path)
            os.unlink(temp_name)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _write_lines(raw: IO[bytes], lines: list[bytes], *, compress: bool) -> None:
    if not compress:
        raw.writelines(lines)
        return
    # mtime=0 and no file name in the gzip header: the same trace gives the same bytes.
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed:
        packed.writelines(lines)


def encode_trace(trace: Trace, path: str | Path) -> Iterator[bytes]:
    """The file's lines, each checked as the reader would check it (line 1 is the header)."""
    yield encode_header(trace.header, path)
    sequence = SequenceCheck(path)
    for number, event in enumerate(trace.events, start=2):
        yield encode_event(event, path, number)
        sequence.check(event, number)


def encode_header(header: dict[str, Any], path: str | Path) -> bytes:
    defaults = {
        "labkit_trace": FORMAT_VERSION,
        "audio_format": AUDIO_FORMAT,
        "sample_rate": SAMPLE_RATE_HZ,
    }
    merged = {**defaults, **header}
    check_header(merged, path)
    ordered = {name: merged[name] for name in _HEADER_ORDER if name in merged}
    ordered.update((name, value) for name, value in merged.items() if name not in ordered)
    return _json_line(ordered, path, 1)


def encode_event(event: TraceEvent, path: str | Path, line: int) -> bytes:
    """One event line: t_ms, type, the type's fields in spec order, other fields sorted, audio."""
    check_event(event, path, line)
    known = [name for name in EVENT_FIELDS.get(event.type, {}) if name in event.fields]
    others = sorted(name for name in event.fields if name not in known)
    obj: dict[str, Any] = {"t_ms": float(event.t_ms), "type": event.type}
    obj.update((name, event.fields[name]) for name in (*known, *others))
    if event.type == "audio":
        obj["audio"] = base64.b64encode(event.audio).decode("ascii")
    return _json_line(obj, path, line)


def _json_line(obj: dict[str, Any], path: str | Path, line: int) -> bytes:
    try:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TraceFormatError(path, line, f"cannot be written as JSON ({error})") from None
    return text.encode("ascii") + b"\n"

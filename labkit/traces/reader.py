"""Read a v1 trace file (plain or ``.gz``), refusing bad content with the file, line and reason.

See notebooks/00_traces.ipynb and ../shared/design/TRACE_FORMAT.md.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

from labkit.traces.errors import TraceFormatError
from labkit.traces.event import TraceEvent
from labkit.traces.trace import Trace
from labkit.traces.validation import SequenceCheck, check_header, event_from_json

_GZIP_WBITS = 31  # zlib: expect a gzip header and trailer (CRC and length are checked)
_GZIP_FEED_BYTES = 16384  # fed in slices so a corrupt stream can be placed near its line


def read(path: str | Path, *, salvage: bool = False) -> Trace:
    """Read the trace at ``path``; a name ending in ``.gz`` is gunzipped.

    With ``salvage=True`` a file cut short (a gzip stream that stops early, or a last line that is
    not whole JSON, as a killed recorder leaves) yields the events before the cut and
    ``trace.cut`` says where it was. Every other problem raises TraceFormatError either way.
    """
    path = Path(path)
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        data, whole = _gunzip(raw, path)
    else:
        data, whole = raw, True
    return _parse(data, path, gzip_cut=not whole, salvage=salvage)


def _gunzip(raw: bytes, path: Path) -> tuple[bytes, bool]:
    """The decompressed bytes, and whether every gzip member ended properly."""
    out: list[bytes] = []
    rest = raw
    while rest:
        stream = zlib.decompressobj(wbits=_GZIP_WBITS)
        for start in range(0, len(rest), _GZIP_FEED_BYTES):
            piece = rest[start : start + _GZIP_FEED_BYTES]
            before = stream.copy()
            try:
                out.append(stream.decompress(piece))
            except zlib.error as error:
                out.append(_decompress_until_error(before, piece))
                line = b"".join(out).count(b"\n") + 1
                raise TraceFormatError(path, line, f"corrupt gzip data ({error})") from None
            if stream.eof:
                break
        if not stream.eof:
            return b"".join(out), False
        rest = stream.unused_data.lstrip(b"\0")  # gzip allows zero padding after a member
    return b"".join(out), True


def _decompress_until_error(stream: Any, piece: bytes) -> bytes:
    """What ``stream`` yields from ``piece`` before the corruption, to name the line it hit."""
    out = []
    for offset in range(len(piece)):
        try:
            out.append(stream.decompress(piece[offset : offset + 1]))
        except zlib.error:
            break
    return b"".join(out)


def _parse(data: bytes, path: Path, *, gzip_cut: bool, salvage: bool) -> Trace:
    lines = data.split(b"\n")
    partial = lines.pop()  # after the last newline: b"" in a whole file
    cut: str | None = None
    if gzip_cut:
        cut_line = len(lines) + 1
        cut = f"{path}, line {cut_line}: gzip stream cut short"
        if not salvage or cut_line == 1:
            where = "inside the header" if cut_line == 1 else f"after {cut_line - 1} whole lines"
            raise TraceFormatError(path, cut_line, f"gzip stream cut short {where}")
    elif partial:
        lines.append(partial)
    unterminated = bool(partial) and not gzip_cut
    parsed, garbled_last = _parse_json_lines(
        lines, path, salvage=salvage, unterminated=unterminated
    )
    if garbled_last is not None:
        cut = f"{path}, line {len(lines)}: last line cut short ({garbled_last.reason})"
    if not parsed:
        raise TraceFormatError(path, 1, "missing header: the file is empty")
    header = check_header(parsed[0], path)
    return Trace(header, _events(parsed[1:], path), cut=cut)


def _parse_json_lines(
    lines: list[bytes], path: Path, *, salvage: bool, unterminated: bool
) -> tuple[list[Any], TraceFormatError | None]:
    """Parsed lines; with salvage, a last line that is not whole JSON is dropped and returned."""
    parsed: list[Any] = []
    for number, line in enumerate(lines, start=1):
        try:
            parsed.append(_parse_json(line, path, number))
        except TraceFormatError as error:
            if salvage and number == len(lines) and number > 1:
                return parsed, error
            if number == len(lines) and unterminated:
                hint = "the last line has no newline: the file may be cut short (salvage=True)"
                raise TraceFormatError(path, number, f"{error.reason}; {hint}") from None
            raise
    return parsed, None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(line: bytes, path: Path, number: int) -> Any:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TraceFormatError(
            path, number, f"not UTF-8 ({error.reason} at byte {error.start})"
        ) from None
    if not text.strip():
        raise TraceFormatError(path, number, "empty line, expected a JSON object")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise TraceFormatError(path, number, "JSON nested too deeply") from None
    except ValueError as error:
        raise TraceFormatError(path, number, f"not valid JSON ({error})") from None


def _events(objects: list[Any], path: Path) -> list[TraceEvent]:
    sequence = SequenceCheck(path)
    events = []
    for number, obj in enumerate(objects, start=2):
        event = event_from_json(obj, path, number)
        sequence.check(event, number)
        events.append(event)
    return events

"""Read a v1 trace file (plain or ``.gz``), refusing bad content with the file, line and reason.

The file is read as it decompresses, one line at a time, so memory follows the trace being built,
never the file's decompressed size: a gzip "bomb" is refused at the first line that breaks the
format or passes a cap of ``TraceLimits`` (``labkit.traces.limits``: decompressed size, line
length), naming the file, the line and the cap. See notebooks/00_traces.ipynb and
docs/TRACE_FORMAT.md.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from labkit.traces.errors import TraceFormatError
from labkit.traces.event import TraceEvent
from labkit.traces.limits import DEFAULT_LIMITS, TraceLimits
from labkit.traces.trace import Trace
from labkit.traces.validation import SequenceCheck, check_header, event_from_json

_GZIP_WBITS = 31  # zlib: expect a gzip header and trailer (CRC and length are checked)
_READ_BYTES = 1 << 16  # bytes read from the file at a time
_PIECE_BYTES = 1 << 16  # most bytes one decompression step may produce: a bomb inflates slowly


def read(
    path: str | Path, *, salvage: bool = False, limits: TraceLimits = DEFAULT_LIMITS
) -> Trace:
    """Read the trace at ``path``; a name ending in ``.gz`` is gunzipped as it is read.

    With ``salvage=True`` a file cut short (a gzip stream that stops early, or a last line that is
    not whole JSON, as a killed recorder leaves) yields the events before the cut and
    ``trace.cut`` says where it was. Every other problem raises TraceFormatError either way,
    including a file or a line over ``limits`` (see ``labkit.traces.limits`` for the defaults).
    """
    path = check_regular_file(path)
    with path.open("rb") as raw:
        lines = _Lines(raw, path, limits, gzipped=path.name.endswith(".gz"))
        return _parse(lines, path, salvage=salvage)


class StreamCutShort(TraceFormatError):
    """A gzip stream that stops before its end: a writer killed, a full disk, a copy cut short."""


def read_lines(
    path: str | Path, *, limits: TraceLimits = DEFAULT_LIMITS
) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` for every line of the file at ``path``, newline removed, read
    as it decompresses (a name ending in ``.gz``) within ``limits``: the trace reader's lines
    for other files of JSON lines (Realtime logs: ``labkit.traces.realtime_log``). A last line
    without a newline is a line too; a gzip stream cut short raises StreamCutShort after the
    whole lines before it."""
    path = check_regular_file(path)
    with path.open("rb") as raw:
        lines = _Lines(raw, path, limits, gzipped=path.name.endswith(".gz"))
        for line in lines:
            yield lines.count, line
        if lines.gzip_cut:
            raise StreamCutShort(path, lines.count + 1, "gzip stream cut short")
        if lines.tail:
            yield lines.count + 1, lines.tail


def check_regular_file(path: str | Path) -> Path:
    """``path``, or a TraceFormatError when it names something that is not a regular file: a
    directory, or a pipe or device, which would block the reader or never end. (A missing
    file raises FileNotFoundError when opened.)"""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise TraceFormatError(path, None, "not a regular file (a directory, pipe or device)")
    return path


class _Corrupt(Exception):
    """zlib refused the gzip data (its reason is the message)."""


class _Lines:
    """The whole lines of a file as they decompress (newline removed), within the limits.

    Once iterated: ``count`` whole lines were given, ``tail`` holds what followed the last
    newline (b"" in a whole file) and ``gzip_cut`` says whether a gzip member stopped early.
    """

    def __init__(self, raw: IO[bytes], path: Path, limits: TraceLimits, *, gzipped: bool) -> None:
        self.count = 0
        self.tail = b""
        self.gzip_cut = False
        self._raw, self._path, self._limits, self._gzipped = raw, path, limits, gzipped
        self._total_bytes = 0
        self._partial: list[bytes] = []  # the line being assembled, in pieces
        self._partial_bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        pieces = self._gunzip() if self._gzipped else self._plain()
        try:
            for piece in pieces:
                yield from self._split(piece)
        except _Corrupt as error:
            reason = f"corrupt gzip data ({error})"
            raise TraceFormatError(self._path, self.count + 1, reason) from None
        self.tail = b"".join(self._partial)

    # ---------------------------------------------------------------- lines and caps

    def _split(self, piece: bytes) -> Iterator[bytes]:
        self._count_bytes(piece)
        start = 0
        while (end := piece.find(b"\n", start)) != -1:
            self._grow_line(end - start)
            line = piece[start:end]
            if self._partial:
                line = b"".join([*self._partial, line])
                self._partial = []
            self._partial_bytes = 0
            self.count += 1
            yield line
            start = end + 1
        if start < len(piece):
            self._grow_line(len(piece) - start)
            self._partial.append(piece[start:])

    def _count_bytes(self, piece: bytes) -> None:
        cap = self._limits.max_trace_bytes
        if self._total_bytes + len(piece) > cap:
            over_at = cap - self._total_bytes  # the first byte past the cap, within ``piece``
            line = self.count + 1 + piece.count(b"\n", 0, over_at)
            reason = (f"trace over the limit of {cap} bytes decompressed "
                      "(TraceLimits.max_trace_bytes, --max-trace-mib)")  # fmt: skip
            raise TraceFormatError(self._path, line, reason)
        self._total_bytes += len(piece)

    def _grow_line(self, added: int) -> None:
        cap = self._limits.max_line_bytes
        self._partial_bytes += added
        if self._partial_bytes > cap:
            reason = (
                f"line over the limit of {cap} bytes (TraceLimits.max_line_bytes, --max-line-mib)"
            )
            raise TraceFormatError(self._path, self.count + 1, reason)

    # ---------------------------------------------------------------- bytes in

    def _plain(self) -> Iterator[bytes]:
        while piece := self._raw.read(_READ_BYTES):
            yield piece

    def _gunzip(self) -> Iterator[bytes]:
        """Decompressed pieces of every gzip member in turn (zero padding between is allowed)."""
        data = self._after_padding(self._raw.read(_READ_BYTES))
        while data:
            stream = zlib.decompressobj(wbits=_GZIP_WBITS)
            while not stream.eof:
                before = stream.copy()
                try:
                    piece = stream.decompress(data, _PIECE_BYTES)
                except zlib.error as error:
                    yield from _until_error(before, data)  # to place the corruption on its line
                    raise _Corrupt(str(error)) from None
                yield piece
                data = stream.unconsumed_tail or self._raw.read(_READ_BYTES)
                if not data and not stream.eof:
                    yield stream.flush()  # output zlib still holds; the input is over
                    if not stream.eof:
                        self.gzip_cut = True
                        return
            data = self._after_padding(stream.unused_data)

    def _after_padding(self, data: bytes) -> bytes:
        """The next gzip member's first bytes past zero padding; b"" at the end of the file."""
        while not (data := data.lstrip(b"\0")):
            data = self._raw.read(_READ_BYTES)
            if not data:
                return b""
        return data


def _until_error(stream: Any, data: bytes) -> Iterator[bytes]:
    """What ``stream`` yields from ``data`` before the corruption, a byte at a time."""
    for offset in range(len(data)):
        try:
            piece = stream.decompress(data[offset : offset + 1])
        except zlib.error:
            return
        yield piece


# -------------------------------------------------------------------- lines into a trace


class _TraceBuilder:
    """The header (line 1) and the events, each checked as its line arrives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header: dict[str, Any] | None = None
        self.events: list[TraceEvent] = []
        self._sequence = SequenceCheck(path)

    def add(self, obj: Any, number: int) -> None:
        if number == 1:
            self.header = check_header(obj, self.path)
            return
        event = event_from_json(obj, self.path, number)
        self._sequence.check(event, number)
        self.events.append(event)


def _parse(lines: _Lines, path: Path, *, salvage: bool) -> Trace:
    """Each line is checked once the next one is known, so the last line is known as last."""
    builder = _TraceBuilder(path)
    held: bytes | None = None
    for line in lines:
        if held is not None:
            builder.add(_parse_json(held, path, lines.count - 1), lines.count - 1)
        held = line
    last_number, cut = lines.count, None
    if lines.gzip_cut:
        cut_line = lines.count + 1
        if not salvage or cut_line == 1:
            if cut_line == 1:
                raise TraceFormatError(path, 1, "gzip stream cut short inside the header")
            # a recording whose writer was killed, or is still writing (a call in progress)
            raise TraceFormatError(path, cut_line, f"gzip stream cut short after {cut_line - 1} "
                                   f"whole lines (a recording cut short, or still being "
                                   f"written; read(path, salvage=True) keeps the whole "
                                   f"lines)")  # fmt: skip
        cut = f"{path}, line {cut_line}: gzip stream cut short"
    elif lines.tail:
        if held is not None:
            builder.add(_parse_json(held, path, lines.count), lines.count)
        held, last_number = lines.tail, lines.count + 1
    if held is not None:
        unterminated = bool(lines.tail) and not lines.gzip_cut
        garbled = _add_last(builder, held, last_number, salvage=salvage, unterminated=unterminated)
        if garbled is not None:
            cut = f"{path}, line {last_number}: last line cut short ({garbled.reason})"
    if builder.header is None:
        raise TraceFormatError(path, 1, "missing header: the file is empty")
    return Trace(builder.header, builder.events, cut=cut, checked=True)


def _add_last(
    builder: _TraceBuilder, line: bytes, number: int, *, salvage: bool, unterminated: bool
) -> TraceFormatError | None:
    """Add the last line; with salvage, one that is not whole JSON is dropped and returned."""
    try:
        obj = _parse_json(line, builder.path, number)
    except TraceFormatError as error:
        if salvage and number > 1:
            return error
        if unterminated:
            hint = "the last line has no newline: the file may be cut short (salvage=True)"
            raise TraceFormatError(builder.path, number, f"{error.reason}; {hint}") from None
        raise
    builder.add(obj, number)
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_JSON = json.JSONDecoder(parse_constant=_reject_constant)  # one decoder for every line


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
        return _JSON.decode(text)
    except RecursionError:
        raise TraceFormatError(path, number, "JSON nested too deeply") from None
    except ValueError as error:
        raise TraceFormatError(path, number, f"not valid JSON ({error})") from None

"""The rules of format v1, shared by the reader, the writer and the recorder.

A file that breaks them is refused with the file, the line and what is wrong; the writer applies
the same rules so it never writes a file the reader would refuse.
See docs/TRACE_FORMAT.md.
"""

from __future__ import annotations

import binascii
import math
from base64 import b64decode
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from labkit.traces.errors import TraceFormatError
from labkit.traces.event import (
    AUDIO_FORMAT,
    EVENT_FIELDS,
    FORMAT_VERSION,
    SAMPLE_RATE_HZ,
    ItemKey,
    TraceEvent,
)

_HEADER_TYPES: dict[str, tuple[type, ...]] = {"source": (str,), "description": (str,)}


def json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    return names.get(type(value), "object" if isinstance(value, dict) else type(value).__name__)


def _expected(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", type(None): "null"}
    return " or ".join(names[t] for t in types)


def _has_type(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # JSON true is not a content_index
        return bool in types
    return isinstance(value, types)


def check_header(header: Any, path: str | Path) -> dict[str, Any]:
    """Return the header if it is a v1 header, else raise naming line 1."""
    if not isinstance(header, dict):
        raise TraceFormatError(
            path, 1, f"header must be a JSON object, got {json_type_name(header)}"
        )
    if "labkit_trace" not in header:
        raise TraceFormatError(path, 1, "missing header: no 'labkit_trace' version field")
    version = header["labkit_trace"]
    if type(version) is not int or version != FORMAT_VERSION:
        raise TraceFormatError(
            path, 1, f"unknown trace version {version!r} in 'labkit_trace' (this reader knows 1)"
        )
    if header.get("audio_format", AUDIO_FORMAT) != AUDIO_FORMAT:
        raise TraceFormatError(
            path, 1, f"'audio_format' must be {AUDIO_FORMAT!r}, got {header['audio_format']!r}"
        )
    rate = header.get("sample_rate", SAMPLE_RATE_HZ)
    if isinstance(rate, bool) or rate != SAMPLE_RATE_HZ:
        raise TraceFormatError(path, 1, f"'sample_rate' must be 8000, got {rate!r}")
    for name, types in _HEADER_TYPES.items():
        if name in header and not _has_type(header[name], types):
            got = json_type_name(header[name])
            raise TraceFormatError(path, 1, f"'{name}' must be {_expected(types)}, got {got}")
    return header


def check_time(value: Any, path: str | Path, line: int) -> float:
    """t_ms as a float: a finite, non-negative JSON number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        got = json_type_name(value)
        raise TraceFormatError(path, line, f"'t_ms' must be a number, got {got}")
    try:
        t_ms = float(value)
    except OverflowError:
        raise TraceFormatError(path, line, "'t_ms' is too large to be a time") from None
    if not math.isfinite(t_ms):
        raise TraceFormatError(path, line, f"'t_ms' must be finite, got {t_ms}")
    if t_ms < 0:
        raise TraceFormatError(path, line, f"'t_ms' must be >= 0, got {t_ms}")
    return t_ms


def check_fields(
    kind: str, fields: dict[str, Any], path: str | Path, line: int, *, audio_is_bytes: bool
) -> None:
    """Every field a known event type needs is present with its JSON type."""
    for name, types in EVENT_FIELDS.get(kind, {}).items():
        if name == "audio" and audio_is_bytes:
            continue
        if name not in fields:
            raise TraceFormatError(path, line, f"'{kind}' event is missing field '{name}'")
        if not _has_type(fields[name], types):
            got = json_type_name(fields[name])
            raise TraceFormatError(
                path, line, f"'{kind}' field '{name}' must be {_expected(types)}, got {got}"
            )
        if name == "content_index" and fields[name] < 0:
            raise TraceFormatError(path, line, f"'content_index' must be >= 0, got {fields[name]}")


def decode_audio(text: str, path: str | Path, line: int) -> bytes:
    try:
        data = b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as error:
        raise TraceFormatError(path, line, f"'audio' is not valid base64 ({error})") from None
    if not data:
        raise TraceFormatError(path, line, "'audio' is empty (an audio event needs >= 1 byte)")
    return data


def event_from_json(obj: Any, path: str | Path, line: int) -> TraceEvent:
    """Check one parsed event line and build its TraceEvent (audio decoded from base64)."""
    if not isinstance(obj, dict):
        raise TraceFormatError(path, line, f"expected a JSON object, got {json_type_name(obj)}")
    if "t_ms" not in obj:
        raise TraceFormatError(path, line, "event is missing field 't_ms'")
    t_ms = check_time(obj["t_ms"], path, line)
    if "type" not in obj:
        raise TraceFormatError(path, line, "event is missing field 'type'")
    kind = obj["type"]
    if not isinstance(kind, str):
        got = json_type_name(kind)
        raise TraceFormatError(path, line, f"'type' must be a string, got {got}")
    fields = {name: value for name, value in obj.items() if name not in ("t_ms", "type")}
    check_fields(kind, fields, path, line, audio_is_bytes=False)
    if kind != "audio":
        return TraceEvent(t_ms, kind, fields)
    audio = decode_audio(fields.pop("audio"), path, line)
    return TraceEvent(t_ms, kind, fields, audio)


def check_event(event: TraceEvent, path: str | Path, line: int) -> None:
    """The same rules as event_from_json, for an event built in memory (before writing it)."""
    check_time(event.t_ms, path, line)
    if not isinstance(event.type, str):
        raise TraceFormatError(path, line, "'type' must be a string")
    if event.type == "audio":
        if "audio" in event.fields:
            raise TraceFormatError(path, line, "audio bytes belong in .audio, not in fields")
        if not isinstance(event.audio, bytes | bytearray) or not event.audio:
            raise TraceFormatError(path, line, "'audio' is empty (an audio event needs >= 1 byte)")
    elif event.audio:
        raise TraceFormatError(path, line, f"a '{event.type}' event cannot carry audio bytes")
    check_fields(event.type, event.fields, path, line, audio_is_bytes=True)
    for name in ("t_ms", "type"):
        if name in event.fields:
            raise TraceFormatError(path, line, f"'{name}' must not appear in fields")


class SequenceCheck:
    """Rules across lines: t_ms never decreases, no audio for an item after its audio_done."""

    def __init__(self, path: str | Path) -> None:
        self._path = path
        self._last_t_ms = 0.0
        self._done: set[ItemKey] = set()

    def check(self, event: TraceEvent, line: int) -> None:
        if event.t_ms < self._last_t_ms:
            raise TraceFormatError(
                self._path,
                line,
                f"'t_ms' decreases: {event.t_ms} after {self._last_t_ms} on the line before",
            )
        key = event.key
        if event.type == "audio" and key in self._done:
            raise TraceFormatError(
                self._path,
                line,
                f"audio for item {key[0]!r} (content_index {key[1]}) after its audio_done",
            )
        self._last_t_ms = event.t_ms
        if event.type == "audio_done" and key is not None:
            self._done.add(key)


def check_events(events: Iterable[TraceEvent], path: str | Path) -> None:
    """Every event as the writer checks it, and the rules across them (line 2 is the first
    event, as in the file the events would be written to)."""
    sequence = SequenceCheck(path)
    for line, event in enumerate(events, start=2):
        check_event(event, path, line)
        sequence.check(event, line)

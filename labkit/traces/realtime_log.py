"""Realtime WebSocket logs: the server events a client received, to and from v1 traces.

A *Realtime log* is what a raw OpenAI Realtime client saw, as JSON Lines (UTF-8, ``.gz`` allowed),
one received server event per line::

    {"t_ms": 1234.5, "event": {"type": "response.output_audio.delta", "delta": "...", ...}}

- ``event``: the server event exactly as it came over the WebSocket (the parsed JSON object).
- the receive time, one of (every line the same one):
  ``t_ms``: ms since the session started (a number >= 0), or
  ``received_at``: seconds on any clock (e.g. ``time.time()``), the first line's time counting as 0.
  Times never decrease down the file.
- ``direction`` (optional): ``"server"`` (the default) or ``"client"``. Client lines are skipped, so
  one log may hold both directions.

Importing (``import_log``) applies the rules the SDK's own model applies to the same events
(``agents/realtime/openai_realtime.py``, ``_handle_ws_event``, openai-agents 0.24), so a trace
imported from a log equals the trace a ``TraceRecorder`` would have written from the session:

- ``response.created`` -> ``turn_started`` (its ``response.id``);
- ``response.output_audio.delta`` (GA) / ``response.audio.delta`` (beta) -> ``audio`` (``delta``
  is base64);
- ``response.output_audio.done`` / ``response.audio.done`` -> ``audio_done``;
- ``response.output_audio_transcript.delta`` / ``response.audio_transcript.delta`` ->
  ``transcript_delta``;
- ``response.done`` -> ``turn_ended`` (its ``response.id``);
- ``input_audio_buffer.speech_started`` (the caller barged in) -> ``audio_interrupted`` of the item
  whose audio came last, if any came since the last interruption (the SDK's ``ModelAudioTracker``);
- ``session.created`` / ``session.updated`` -> nothing; they set the output audio format.

Every other event is skipped and counted. The names are the openai-python types: GA in
``src/openai/types/realtime/`` (e.g. ``response_audio_delta_event.py``: ``type:
"response.output_audio.delta"`` with ``response_id``, ``item_id``, ``output_index``,
``content_index``, ``delta``, ``event_id``), beta in ``src/openai/types/beta/realtime/`` (same
fields, ``type: "response.audio.delta"``). The output format is the GA session's
``audio.output.format.type`` (``audio/pcmu``, ``audio/pcm`` at 24 kHz, ``audio/pcma``) or the beta
session's ``output_audio_format`` (``g711_ulaw``, ``pcm16``, ``g711_alaw``). mu-law is kept as is;
pcm16 (24 kHz, little-endian) becomes mu-law 8 kHz (each 3 samples averaged into one, item by
item, so no delta's media time drifts); a-law is refused. A bad line raises ``TraceFormatError``
naming the file, the line and the field. See notebooks/00_traces.ipynb and the README's
"Your own traces".
"""

from __future__ import annotations

import binascii
import io
import json
import math
from base64 import b64decode
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labkit.audio import ulaw_encode
from labkit.traces.errors import TraceFormatError
from labkit.traces.event import TraceEvent, audio_event, item_event, make_header, turn_event
from labkit.traces.limits import DEFAULT_LIMITS, TraceLimits
from labkit.traces.reader import StreamCutShort, read_lines
from labkit.traces.trace import Trace
from labkit.traces.validation import SequenceCheck, json_type_name

MS_PER_S = 1000.0
GA, BETA = "ga", "beta"
# trace event type -> server event type, per dialect of the protocol
SERVER_EVENT_NAMES: dict[str, dict[str, str]] = {
    GA: {
        "audio": "response.output_audio.delta",
        "audio_done": "response.output_audio.done",
        "transcript_delta": "response.output_audio_transcript.delta",
    },
    BETA: {
        "audio": "response.audio.delta",
        "audio_done": "response.audio.done",
        "transcript_delta": "response.audio_transcript.delta",
    },
}
RESPONSE_CREATED = "response.created"
RESPONSE_DONE = "response.done"
SPEECH_STARTED = "input_audio_buffer.speech_started"
SESSION_EVENTS = ("session.created", "session.updated")
_TRACE_TYPE = {name: kind for names in SERVER_EVENT_NAMES.values() for kind, name in names.items()}
_DIALECT = {
    name: dialect for dialect, names in SERVER_EVENT_NAMES.items() for name in names.values()
}

ULAW, PCM16, ALAW = "g711_ulaw", "pcm16", "g711_alaw"
_GA_FORMATS = {"audio/pcmu": ULAW, "audio/pcm": PCM16, "audio/pcma": ALAW}
PCM16_RATE_HZ = 24000
_PCM_BYTES_PER_ULAW_BYTE = 6  # 3 samples of 2 bytes at 24 kHz -> 1 sample of 1 byte at 8 kHz
TIME_KEYS = ("t_ms", "received_at")
# How far from its end a plain log is read for text after its last newline: a cut line holds
# some text, and a tail of blanks this long is no line anyone wrote
TAIL_PROBE_BYTES = 4096


def log_line(t_ms: float, event: Mapping[str, Any]) -> str:
    """One line of a Realtime log (with its newline): ``event`` received at ``t_ms``."""
    return json.dumps({"t_ms": round(t_ms, 3), "event": event}, separators=(",", ":")) + "\n"


def output_format_of(session: Any) -> str | None:
    """The output audio format a session object names (GA or beta shape), or None if it says none.

    GA: ``session.audio.output.format`` is ``{"type": "audio/pcmu"}`` (or a bare string);
    beta: ``session.output_audio_format`` is ``"g711_ulaw"``.
    """
    if not isinstance(session, Mapping):
        return None
    beta = session.get("output_audio_format")
    if isinstance(beta, str):
        return beta
    audio = session.get("audio")
    output = audio.get("output") if isinstance(audio, Mapping) else None
    fmt = output.get("format") if isinstance(output, Mapping) else None
    rate = fmt.get("rate", PCM16_RATE_HZ) if isinstance(fmt, Mapping) else PCM16_RATE_HZ
    if isinstance(fmt, Mapping):
        fmt = fmt.get("type")
    if fmt == "audio/pcm" and rate != PCM16_RATE_HZ:  # converted as 24 kHz, it would play wrong
        return f"audio/pcm at {rate!r} Hz"  # no format the converter takes: refused by name
    if isinstance(fmt, str):
        return _GA_FORMATS.get(fmt, fmt)
    return None


class UlawConverter:
    """A session's output audio as the trace's mu-law 8 kHz, item by item.

    mu-law passes through. pcm16 at 24 kHz: every 3 samples are averaged into one (a box
    low-pass, enough for listening; timing is what the lab measures) and a remainder shorter than 3
    samples is carried into the item's next delta, so media time stays exact.
    """

    def __init__(self, audio_format: str = ULAW) -> None:
        if audio_format not in (ULAW, PCM16):
            raise ValueError(
                f"output audio format {audio_format!r} cannot become a trace: "
                f"use {ULAW!r} (audio/pcmu, what Twilio carries) or {PCM16!r} (audio/pcm at "
                f"{PCM16_RATE_HZ} Hz)"
            )
        self.audio_format = audio_format
        self._carry: dict[tuple[str, int], bytes] = {}

    def convert(self, key: tuple[str, int], data: bytes) -> bytes:
        if self.audio_format == ULAW:
            return data
        pending = self._carry.pop(key, b"") + data
        whole = len(pending) // _PCM_BYTES_PER_ULAW_BYTE * _PCM_BYTES_PER_ULAW_BYTE
        if whole < len(pending):
            self._carry[key] = pending[whole:]
        samples = np.frombuffer(pending[:whole], dtype="<i2").astype(np.int32).reshape(-1, 3)
        return ulaw_encode(np.rint(samples.mean(axis=1)).astype(np.int16))


@dataclass
class LogImport:
    """A log turned into a trace, with what was left out."""

    trace: Trace
    skipped: Counter[str] = field(default_factory=Counter)  # server event type -> count
    dialects: set[str] = field(default_factory=set)  # "ga", "beta": the audio names seen
    audio_format: str = ULAW
    cut: str | None = None  # salvaged: where the log was cut short (None for a whole log)


class EventImporter:
    """Server events in, trace events out: the SDK model's rules, one event at a time (sans-I/O)."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self.skipped: Counter[str] = Counter()
        self.dialects: set[str] = set()
        self.audio_format = ULAW  # until a session event says otherwise
        self._format_line: int | None = None
        self._converter: UlawConverter | None = None  # made at the first audio delta
        self._last_audio: tuple[str, int] | None = None
        self._sequence = SequenceCheck(path)

    def feed(self, event: Mapping[str, Any], t_ms: float, line: int) -> TraceEvent | None:
        """The trace event for ``event`` received at ``t_ms`` (None: nothing for a trace)."""
        kind = _require(event, "type", str, self.path, line)
        trace_event = self._translate(kind, event, t_ms, line)
        if trace_event is None:
            return None
        self._sequence.check(trace_event, line)
        if trace_event.type == "audio":
            self._last_audio = trace_event.key
        return trace_event

    def _translate(
        self, kind: str, event: Mapping[str, Any], t_ms: float, line: int
    ) -> TraceEvent | None:
        trace_kind = _TRACE_TYPE.get(kind)
        if trace_kind is not None:
            self.dialects.add(_DIALECT[kind])
            return self._item_event(trace_kind, event, t_ms, line)
        if kind in (RESPONSE_CREATED, RESPONSE_DONE):
            response = _require(event, "response", dict, self.path, line)
            rid = _optional(response, "id", str, self.path, line, prefix="event.response.")
            return turn_event(
                "turn_started" if kind == RESPONSE_CREATED else "turn_ended", t_ms, rid
            )
        if kind == SPEECH_STARTED:
            return self._interruption(t_ms)
        if kind in SESSION_EVENTS:
            self._learn_format(event, line)
        self.skipped[kind] += 1
        return None

    def _item_event(
        self, kind: str, event: Mapping[str, Any], t_ms: float, line: int
    ) -> TraceEvent | None:
        item_id = _require(event, "item_id", str, self.path, line)
        if kind == "transcript_delta":
            fields = {
                "response_id": _require(event, "response_id", str, self.path, line),
                "item_id": item_id,
                "delta": _require(event, "delta", str, self.path, line),
            }
            return TraceEvent(t_ms, kind, fields)
        content_index = _require(event, "content_index", int, self.path, line)
        if content_index < 0:
            raise TraceFormatError(
                self.path, line, f"'event.content_index' must be >= 0, got {content_index}"
            )
        if kind == "audio_done":
            return item_event(kind, t_ms, item_id, content_index)
        response_id = _require(event, "response_id", str, self.path, line)
        raw = _base64(_require(event, "delta", str, self.path, line), self.path, line)
        data = self._audio_converter(line).convert((item_id, content_index), raw)
        if not data:
            self.skipped["empty audio delta"] += 1
            return None
        return audio_event(t_ms, response_id, item_id, content_index, data)

    def _interruption(self, t_ms: float) -> TraceEvent | None:
        """The SDK interrupts the item whose audio came last, once (its tracker then forgets it)."""
        key, self._last_audio = self._last_audio, None
        if key is None:
            self.skipped[SPEECH_STARTED] += 1
            return None
        return item_event("audio_interrupted", t_ms, key[0], key[1])

    def _learn_format(self, event: Mapping[str, Any], line: int) -> None:
        fmt = output_format_of(event.get("session"))
        if fmt is None or fmt == self.audio_format:
            return
        if self._converter is not None:
            raise TraceFormatError(
                self.path, line, f"'event.session' changes the output format to {fmt!r} mid-audio"
            )
        self.audio_format, self._format_line = fmt, line

    def _audio_converter(self, line: int) -> UlawConverter:
        if self._converter is None:
            try:
                self._converter = UlawConverter(self.audio_format)
            except ValueError as error:
                where = self._format_line or line
                raise TraceFormatError(self.path, where, f"'event.session': {error}") from None
        return self._converter


def import_log(
    path: str | Path, *, description: str | None = None, limits: TraceLimits = DEFAULT_LIMITS,
    salvage: bool = False,
) -> LogImport:
    """Read the Realtime log at ``path`` (``.gz`` allowed) as a v1 trace (``source: recorded``),
    line by line as it decompresses, within the trace reader's ``limits`` (a gzip bomb stops at
    the cap, naming the line).

    With ``salvage=True`` a log cut short (a gzip stream that stops early, or a last line that
    is not whole JSON: a logger killed or a full disk) keeps its whole lines; ``cut`` says where
    it was cut, and so does the trace's header (``recorder.salvaged``). Without it such a log
    raises StreamCutShort (a plain log's last line counts as cut when it has no newline)."""
    path = Path(path)
    importer = EventImporter(path)
    clock = _LogClock(path)
    events = []
    cut: list[str] = []
    for number, obj in _log_objects(path, limits, cut if salvage else None):
        if obj.get("direction", "server") == "client":
            continue
        _check_direction(obj, path, number)
        t_ms = clock.t_ms(obj, number)
        event = obj.get("event")
        if not isinstance(event, dict):
            got = "missing" if event is None else json_type_name(event)
            raise TraceFormatError(path, number, f"field 'event' must be a JSON object, got {got}")
        trace_event = importer.feed(event, t_ms, number)
        if trace_event is not None:
            events.append(trace_event)
    recorder = {
        "tool": "labkit import",
        "imported_from": path.name,
        "event_names": sorted(importer.dialects),
        "output_audio_format": importer.audio_format,
    }
    if cut:
        recorder["salvaged"] = cut[0]  # the trace says it is not the whole call
    header = make_header(
        "recorded", description or f"imported from the Realtime log {path.name}", recorder=recorder
    )
    return LogImport(Trace(header, events), importer.skipped, importer.dialects,
                     importer.audio_format, cut[0] if cut else None)  # fmt: skip


class _LogClock:
    """Each line's receive time in ms since the session started."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.key: str | None = None
        self._zero_s: float | None = None
        self._last_ms = 0.0

    def t_ms(self, obj: Mapping[str, Any], line: int) -> float:
        present = [key for key in TIME_KEYS if key in obj]
        if not present:
            raise TraceFormatError(self.path, line, "missing field 't_ms' (or 'received_at')")
        key = present[0]
        self.key = self.key or key
        if key != self.key or len(present) > 1:
            raise TraceFormatError(
                self.path, line, f"field {key!r}: every line must time itself by {self.key!r} alone"
            )
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            got = json_type_name(value)
            raise TraceFormatError(
                self.path, line, f"field {key!r} must be a finite number, got {got}"
            )
        try:
            finite = math.isfinite(value)
        except OverflowError:  # a JSON integer beyond any float
            finite = False
        if not finite:
            raise TraceFormatError(self.path, line, f"field {key!r} is not a finite time")
        if key == "t_ms" and value < 0:
            raise TraceFormatError(self.path, line, f"field 't_ms' must be >= 0, got {value}")
        t_ms = float(value) if key == "t_ms" else self._since_first_ms(float(value))
        if not math.isfinite(t_ms):  # finite seconds far apart: their ms overflow
            raise TraceFormatError(
                self.path, line, f"field {key!r}: {value} is too far from the first line's time"
            )
        if t_ms < self._last_ms:
            raise TraceFormatError(
                self.path, line, f"field {key!r} goes back in time: {value} after a later line"
            )
        self._last_ms = t_ms
        return t_ms

    def _since_first_ms(self, seconds: float) -> float:
        if self._zero_s is None:
            self._zero_s = seconds
        return (seconds - self._zero_s) * MS_PER_S


def _check_direction(obj: Mapping[str, Any], path: Path, line: int) -> None:
    direction = obj.get("direction", "server")
    if direction != "server":
        raise TraceFormatError(
            path, line, f"field 'direction' must be 'server' or 'client', got {direction!r:.40}"
        )


def _log_objects(
    path: Path, limits: TraceLimits, cut: list[str] | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, JSON object) for every line of the log. Salvaging (``cut`` a list), a cut
    gzip stream ends the log, and so does a last line that is not JSON; ``cut`` gets where."""
    lines = read_lines(path, limits=limits)
    held: tuple[int, bytes] | None = None  # a line is parsed once the next is known
    try:
        for number, line in lines:
            if not line.strip():
                continue  # a trailing newline, or blank lines between events
            if held is not None:
                yield _log_object(path, *held)
            held = (number, line)
    except StreamCutShort as error:
        if cut is None:
            raise
        cut.append(str(error))
    if held is None:
        return
    try:
        yield _log_object(path, *held)
    except TraceFormatError as error:
        not_json = error.reason.startswith("not a JSON line")
        if cut is None and not_json and _ends_mid_line(path):  # refused as cut, not as garbage
            raise StreamCutShort(path, held[0], f"{error.reason}: the log looks cut short "
                                 "(its last line has no newline)") from None  # fmt: skip
        if cut is None or cut or not not_json:
            raise
        cut.append(f"{path}, line {held[0]}: last line cut short")


def _ends_mid_line(path: Path) -> bool:
    """Whether a plain (not gzip) log ends in a line without its newline: what a logger killed
    mid-write, a full disk or ``head -c`` leaves. (A gzip log cut short is a cut gzip stream.)"""
    if path.name.endswith(".gz"):
        return False
    with path.open("rb") as raw:
        size = raw.seek(0, io.SEEK_END)
        raw.seek(max(0, size - TAIL_PROBE_BYTES))
        tail = raw.read().rsplit(b"\n", 1)[-1]
    return bool(tail.strip())  # text after the last newline (blanks there are no line)


def _log_object(path: Path, number: int, line: bytes) -> tuple[int, dict[str, Any]]:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as error:
        raise TraceFormatError(path, number, f"not a JSON line ({error})") from None
    if not isinstance(obj, dict):
        raise TraceFormatError(path, number, f"expected a JSON object, got {json_type_name(obj)}")
    return number, obj


_JSON_NAMES = {str: "a string", int: "an integer", dict: "an object"}


def _require(obj: Mapping[str, Any], name: str, kind: type, path: str | Path, line: int) -> Any:
    if name not in obj:
        raise TraceFormatError(path, line, f"missing field 'event.{name}'")
    return _typed(obj[name], name, kind, path, line, prefix="event.")


def _optional(
    obj: Mapping[str, Any], name: str, kind: type, path: str | Path, line: int, *, prefix: str
) -> Any:
    value = obj.get(name)
    return None if value is None else _typed(value, name, kind, path, line, prefix=prefix)


def _typed(value: Any, name: str, kind: type, path: str | Path, line: int, *, prefix: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        got = json_type_name(value)
        raise TraceFormatError(
            path, line, f"field '{prefix}{name}' must be {_JSON_NAMES[kind]}, got {got}"
        )
    return value


def _base64(text: str, path: str | Path, line: int) -> bytes:
    try:
        return b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as error:
        raise TraceFormatError(
            path, line, f"field 'event.delta' is not valid base64 ({error})"
        ) from None

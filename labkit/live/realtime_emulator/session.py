"""One emulated Realtime session, sans-I/O: client events in, server events out, a trace replayed.

``EmulatedSession`` never touches a socket or a clock: the emulator's server feeds it each client
text frame with ``receive(text, t_ms)`` and asks it for the trace events due at a time with
``replay_due(t_ms)``; both return the server events (JSON objects) to send. Times are on the
trace's clock (ms since the replay started). The protocol facts it relies on are listed, with
their sources, in the package docstring. See notebooks/04_live_call.ipynb.
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from labkit.traces import Trace, TraceEvent
from labkit.traces.realtime_log import (
    GA,
    PCM16,
    RESPONSE_CREATED,
    RESPONSE_DONE,
    SERVER_EVENT_NAMES,
    SPEECH_STARTED,
    ULAW,
    output_format_of,
)

ItemKey = tuple[str, int]
Event = dict[str, Any]
BYTES_PER_MS = 8  # mu-law 8 kHz: what every v1 trace holds
PCM16_BYTES_PER_MS = 48  # 24 kHz, 2 bytes a sample
DEFAULT_MODEL = "gpt-realtime"
NAMES = SERVER_EVENT_NAMES[GA]  # what the SDK's model accepts (it validates GA types only)
# What one client may make a session hold: its errors (the first kept, the rest counted), a
# session.update's size and depth (each update is merged and echoed whole), the session's size.
PROTOCOL_ERRORS_KEPT = 100
MAX_SESSION_UPDATE_CHARS = 64 * 1024
MAX_SESSION_DEPTH = 16
MAX_SESSION_CHARS = 256 * 1024
OTHER_TYPES = "(other)"  # the count of client event types the protocol does not have

# What the session starts as, before the client's session.update: the GA API's defaults
# (pcm16 at 24 kHz both ways, server VAD). The client asks for mu-law, as a Twilio bridge does.
DEFAULT_SESSION: Event = {
    "type": "realtime",
    "object": "realtime.session",
    "model": DEFAULT_MODEL,
    "output_modalities": ["audio"],
    "instructions": "",
    "tools": [],
    "tool_choice": "auto",
    "max_output_tokens": "inf",
    "tracing": None,
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": None,
            "noise_reduction": None,
            "turn_detection": {"type": "server_vad", "interrupt_response": True},
        },
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy", "speed": 1.0},
    },
}
PCMU = {"type": "audio/pcmu"}
CLIENT_EVENT_TYPES = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "response.create",
    "response.cancel",
    "conversation.item.create",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "output_audio_buffer.clear",
)
UNSUPPORTED = ("response.create", "conversation.item.create", "conversation.item.delete")


@dataclass(frozen=True, slots=True)
class ClientTruncation:
    """A client's ``conversation.item.truncate``: where it says the caller stopped hearing."""

    t_ms: float
    item_id: str
    content_index: int
    audio_end_ms: int
    sent_ms: float  # how much audio of that item the emulator had sent by then


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """A client event the emulator refused, answered with an ``error`` server event."""

    t_ms: float
    event_type: str
    code: str
    message: str
    param: str | None = None


class ClientEventError(Exception):
    """A client event broke the protocol (or asked what a replay cannot do)."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


@dataclass
class _Item:
    response_id: str | None
    output_index: int
    content_index: int = 0
    sent_bytes: int = 0
    transcript: str = ""
    done: bool = False


@dataclass
class _Response:
    response_id: str | None
    items: list[str] = field(default_factory=list)
    interrupted: bool = False  # the caller barged in (speech_started) while it spoke
    cancelled: bool = False  # the client sent response.cancel: the rest is never sent
    done: bool = False


class EmulatedSession:
    """The server side of one Realtime connection replaying ``trace``."""

    def __init__(
        self, trace: Trace, *, number: int = 1, audio_b64: Callable[[int], str] | None = None
    ):
        self.trace = trace
        self.number = number
        self.session_id = f"sess_emulator_{number}"
        self.config: Event = copy.deepcopy(DEFAULT_SESSION)
        self.config["id"] = self.session_id
        self.replay_started = False
        self.client_events: Counter[str] = Counter()
        self.input_audio_bytes = 0
        self.truncations: list[ClientTruncation] = []
        self.cancelled_responses: list[str | None] = []
        self.protocol_errors: list[ProtocolError] = []  # the first PROTOCOL_ERRORS_KEPT
        self.protocol_errors_dropped = 0
        self.replay_notes: list[str] = []  # where the trace asks what the SDK will not reproduce
        self._audio_b64 = audio_b64 or (lambda i: base64.b64encode(trace.events[i].audio).decode())
        self._cursor = 0
        self._ids = itertools.count(1)
        self._items: dict[str, _Item] = {}
        self._responses: dict[str | None, _Response] = {}
        self._current: _Response | None = None
        self._last_audio: ItemKey | None = None
        self._uncommitted_bytes = 0
        # each item's response, from the trace: an item cancelled before its first delta was
        # never announced, and its audio_done must go with the rest of its response
        self._item_responses: dict[str, str | None] = {}
        for trace_event in trace.events:
            if trace_event.item_id is not None and trace_event.response_id is not None:
                self._item_responses.setdefault(trace_event.item_id, trace_event.response_id)

    # ------------------------------------------------------------------ session lifecycle

    def opening(self) -> list[Event]:
        """What the server says first, unasked: ``session.created`` with its defaults."""
        return [self._event("session.created", session=copy.deepcopy(self.config))]

    @property
    def finished(self) -> bool:
        """Every trace event has been replayed."""
        return self._cursor >= len(self.trace.events)

    def next_due_ms(self) -> float | None:
        """Trace time of the next event to replay; None before ``session.update`` or at the end."""
        if not self.replay_started or self.finished:
            return None
        return self.trace.events[self._cursor].t_ms

    # ------------------------------------------------------------------ client -> server

    def receive(self, text: str, t_ms: float) -> list[Event]:
        """The replies to one client text frame (an ``error`` event if it broke the protocol)."""
        event_type, client_event_id = "?", None
        try:
            event = _parse(text)
            event_type = event["type"]
            client_event_id = (
                event.get("event_id") if isinstance(event.get("event_id"), str) else None
            )
            known = event_type in CLIENT_EVENT_TYPES or event_type in UNSUPPORTED
            self.client_events[event_type if known else OTHER_TYPES] += 1  # a client's own names
            if event_type == "session.update" and len(text) > MAX_SESSION_UPDATE_CHARS:
                raise ClientEventError("invalid_request_error", f"session.update of {len(text)} "
                                       f"chars; at most {MAX_SESSION_UPDATE_CHARS}")  # fmt: skip
            return self._handle(event_type, event, t_ms)
        except ClientEventError as error:
            self._note_error(ProtocolError(t_ms, event_type[:60], error.code, error.message,
                                           error.param))  # fmt: skip
            return [self._error(error, client_event_id)]
        except Exception as exc:  # a case no rule foresaw: refused, and the session goes on
            unforeseen = ClientEventError("server_error", f"the emulator could not handle this "
                                          f"{event_type[:60]} event ({type(exc).__name__})")
            self._note_error(ProtocolError(t_ms, event_type[:60], unforeseen.code,
                                           unforeseen.message))  # fmt: skip
            return [self._error(unforeseen, client_event_id)]

    def _note_error(self, error: ProtocolError) -> None:
        if len(self.protocol_errors) < PROTOCOL_ERRORS_KEPT:
            self.protocol_errors.append(error)
        else:
            self.protocol_errors_dropped += 1

    def refuse_binary(self, size: int, t_ms: float) -> list[Event]:
        """A binary frame: the Realtime API speaks JSON text frames only."""
        error = ClientEventError(
            "invalid_request_error", f"binary frame of {size} bytes; send JSON text"
        )
        self._note_error(ProtocolError(t_ms, "(binary)", error.code, error.message))
        return [self._error(error, None)]

    def _handle(self, event_type: str, event: Mapping[str, Any], t_ms: float) -> list[Event]:
        if event_type == "session.update":
            return self._session_update(event)
        if event_type == "input_audio_buffer.append":
            return self._append(event)
        if event_type == "input_audio_buffer.commit":
            return self._commit()
        if event_type == "input_audio_buffer.clear":
            self._uncommitted_bytes = 0
            return [self._event("input_audio_buffer.cleared")]
        if event_type == "response.cancel":
            return self._cancel(event)
        if event_type == "conversation.item.truncate":
            return self._truncate(event, t_ms)
        if event_type == "conversation.item.retrieve":
            return self._retrieve(event)
        if event_type == "output_audio_buffer.clear":
            raise ClientEventError(
                "invalid_request_error",
                "output_audio_buffer.clear is for WebRTC/SIP, not WebSocket",
            )
        if event_type in UNSUPPORTED:
            raise ClientEventError(
                "unsupported_by_emulator",
                f"{event_type}: the emulator replays a recorded trace and cannot answer it",
            )
        raise ClientEventError(
            "invalid_request_error",
            f"unknown client event type {event_type!r:.60}; "
            f"expected one of {', '.join(CLIENT_EVENT_TYPES)}",
            "type",
        )

    def _session_update(self, event: Mapping[str, Any]) -> list[Event]:
        session = _field(event, "session", dict)
        if session.get("type") != "realtime":
            raise ClientEventError(
                "invalid_request_error",
                f"session.type must be 'realtime' (the GA API), got {session.get('type')!r:.40}",
                "session.type",
            )
        _check_session_shape(session)
        requested = output_format_of(session)
        if requested not in (None, ULAW):
            raise ClientEventError(
                "unsupported_audio_format",
                f"the emulator replays mu-law 8 kHz traces; the session asks for {requested!r} "
                "output (use audio/pcmu)",
                "session.audio.output.format",
            )
        merged = copy.deepcopy(self.config)
        _merge(merged, session)
        if len(json.dumps(merged)) > MAX_SESSION_CHARS:
            raise ClientEventError("invalid_request_error", f"the session would hold more than "
                                   f"{MAX_SESSION_CHARS} chars of configuration")  # fmt: skip
        self.config = merged
        self.replay_started = True
        return [self._event("session.updated", session=copy.deepcopy(self.config))]

    def _append(self, event: Mapping[str, Any]) -> list[Event]:
        text = _field(event, "audio", str)
        try:
            data = base64.b64decode(text.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error, ValueError):
            raise ClientEventError(
                "invalid_request_error", "input_audio_buffer.append: audio is not base64", "audio"
            ) from None
        if self._input_format() == PCM16 and len(data) % 2:
            raise ClientEventError(
                "invalid_request_error",
                f"input_audio_buffer.append: {len(data)} bytes of pcm16 is not whole samples",
                "audio",
            )
        self.input_audio_bytes += len(data)
        self._uncommitted_bytes += len(data)
        return []  # the server answers appends only through VAD events

    def _commit(self) -> list[Event]:
        if not self._uncommitted_bytes:
            raise ClientEventError(
                "input_audio_buffer_commit_empty", "input_audio_buffer.commit: the buffer is empty"
            )
        self._uncommitted_bytes = 0
        return [self._event("input_audio_buffer.committed", item_id=self._new_id("item_user"))]

    def _cancel(self, event: Mapping[str, Any]) -> list[Event]:
        wanted = _optional_field(event, "response_id", str)
        response = self._current if wanted is None else self._responses.get(wanted)
        if response is None or response.done:
            raise ClientEventError(
                "response_cancel_not_active",
                f"response.cancel: no active response{f' {wanted!r:.60}' if wanted else ''}",
                "response_id" if wanted else None,
            )
        response.cancelled = True
        self.cancelled_responses.append(response.response_id)
        return self._finish(response, status="cancelled", reason="client_cancelled")

    def _truncate(self, event: Mapping[str, Any], t_ms: float) -> list[Event]:
        item_id = _field(event, "item_id", str)
        content_index = _field(event, "content_index", int)
        audio_end_ms = _field(event, "audio_end_ms", int)
        item = self._items.get(item_id)
        if item is None or item.sent_bytes == 0:
            raise ClientEventError(
                "item_not_found",
                f"conversation.item.truncate: no audio item {item_id!r:.60}",
                "item_id",
            )
        if content_index != item.content_index:
            raise ClientEventError(
                "invalid_value",
                f"conversation.item.truncate: item {item_id!r:.60} has audio at content_index "
                f"{item.content_index}, not {content_index}",
                "content_index",
            )
        sent_ms = item.sent_bytes / BYTES_PER_MS
        if not 0 <= audio_end_ms <= sent_ms:
            raise ClientEventError(
                "invalid_value",
                f"conversation.item.truncate: audio_end_ms {audio_end_ms} is outside the "
                f"{sent_ms:g} ms of audio sent for {item_id!r:.60}",
                "audio_end_ms",
            )
        self.truncations.append(
            ClientTruncation(t_ms, item_id, content_index, audio_end_ms, sent_ms)
        )
        return [
            self._event(
                "conversation.item.truncated",
                item_id=item_id,
                content_index=content_index,
                audio_end_ms=audio_end_ms,
            )
        ]

    def _retrieve(self, event: Mapping[str, Any]) -> list[Event]:
        item_id = _field(event, "item_id", str)
        if item_id not in self._items:
            raise ClientEventError(
                "item_not_found", f"conversation.item.retrieve: no item {item_id!r:.60}", "item_id"
            )
        return [self._event("conversation.item.retrieved", item=self._item_json(item_id))]

    def _input_format(self) -> str | None:
        fmt = self.config["audio"]["input"].get("format")
        kind = fmt.get("type") if isinstance(fmt, dict) else fmt
        return {"audio/pcm": PCM16, "audio/pcmu": ULAW}.get(str(kind), str(kind))

    # ------------------------------------------------------------------ the replay

    def replay_due(self, t_ms: float) -> list[Event]:
        """Server events for every trace event due at or before ``t_ms``."""
        out: list[Event] = []
        events = self.trace.events
        while (
            self.replay_started and self._cursor < len(events) and events[self._cursor].t_ms <= t_ms
        ):
            out.extend(self._replay(self._cursor, events[self._cursor]))
            self._cursor += 1
        return out

    def _replay(self, index: int, event: TraceEvent) -> list[Event]:
        if event.type == "turn_started":
            return self._response_created(event.response_id)
        if event.type == "turn_ended":
            response = self._responses.get(event.response_id) or _Response(event.response_id)
            if response.done:
                return []  # the client cancelled it: its response.done is already sent
            status = "cancelled" if response.interrupted else "completed"
            return self._finish(response, status=status, reason="turn_detected")
        if event.type == "audio_interrupted":
            return self._speech_started(event)
        if event.type not in ("audio", "transcript_delta", "audio_done") or self._is_cancelled(
            event
        ):
            return []  # unknown types are skipped; a cancelled response says no more
        item_id = str(event.fields["item_id"])
        if event.type == "transcript_delta":
            out, item = self._item(item_id, event.response_id, 0)
            item.transcript += str(event.fields["delta"])
            out.append(
                self._item_event("transcript_delta", item_id, item, delta=event.fields["delta"])
            )
            return out
        content_index = int(event.fields["content_index"])
        if event.type == "audio":
            return self._audio_delta(index, event, (item_id, content_index))
        out, item = self._item(item_id, None, content_index)
        item.done = True
        out.append(self._item_event("audio_done", item_id, item))
        return out

    def _response_created(self, response_id: str | None) -> list[Event]:
        response = _Response(response_id)
        self._responses[response_id] = response
        self._current = response
        body = {
            "id": response_id,
            "object": "realtime.response",
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "output_modalities": ["audio"],
            "usage": None,
        }
        return [self._event(RESPONSE_CREATED, response=body)]

    def _audio_delta(self, index: int, event: TraceEvent, key: ItemKey) -> list[Event]:
        out, item = self._item(key[0], event.response_id, key[1])
        item.sent_bytes += len(event.audio)
        self._last_audio = key
        out.append(self._item_event("audio", key[0], item, delta=self._audio_b64(index)))
        return out

    def _speech_started(self, event: TraceEvent) -> list[Event]:
        """The caller barged in: VAD's ``speech_started``; the SDK interrupts its last item."""
        if event.key != self._last_audio:
            self.replay_notes.append(
                f"t={event.t_ms:g} ms: the trace interrupts {event.key}, the SDK will interrupt "
                f"{self._last_audio} (the item whose audio came last)"
            )
        if self._last_audio is not None:
            owner = self._items[self._last_audio[0]].response_id
            if (response := self._responses.get(owner)) is not None:
                response.interrupted = True
        self._last_audio = None
        started_ms = int(self.input_audio_bytes / BYTES_PER_MS)
        return [
            self._event(
                SPEECH_STARTED, audio_start_ms=started_ms, item_id=self._new_id("item_user")
            )
        ]

    def _finish(self, response: _Response, *, status: str, reason: str) -> list[Event]:
        response.done = True
        if self._current is response:
            self._current = None
        out = [
            self._event(
                "response.output_item.done",
                response_id=response.response_id or "",
                output_index=self._items[item_id].output_index,
                item=self._item_json(item_id),
            )
            for item_id in response.items
        ]
        details = {"type": status} if status == "completed" else {"type": status, "reason": reason}
        body = {
            "id": response.response_id,
            "object": "realtime.response",
            "status": status,
            "status_details": details,
            "output": [self._item_json(item_id) for item_id in response.items],
            "output_modalities": ["audio"],
            "usage": None,
        }
        out.append(self._event(RESPONSE_DONE, response=body))
        return out

    def _is_cancelled(self, event: TraceEvent) -> bool:
        response_id = event.response_id
        if response_id is None:  # audio_done names only the item, perhaps never announced
            response_id = self._item_responses.get(event.item_id or "")
        response = self._responses.get(response_id)
        return response is not None and response.cancelled

    def _item(
        self, item_id: str, response_id: str | None, content_index: int
    ) -> tuple[list[Event], _Item]:
        """The item, announced with ``response.output_item.added`` the first time it appears."""
        item = self._items.get(item_id)
        if item is not None:
            return [], item
        response = self._responses.get(response_id) if response_id is not None else self._current
        owner = response.response_id if response is not None else response_id
        output_index = len(response.items) if response is not None else 0
        item = _Item(owner, output_index, content_index)
        self._items[item_id] = item
        if response is not None:
            response.items.append(item_id)
        added = self._event(
            "response.output_item.added",
            response_id=owner or "",
            output_index=output_index,
            item=self._item_json(item_id),
        )
        return [added], item

    def _item_event(self, kind: str, item_id: str, item: _Item, **extra: Any) -> Event:
        return self._event(
            NAMES[kind],
            response_id=item.response_id or "",
            item_id=item_id,
            output_index=item.output_index,
            content_index=item.content_index,
            **extra,
        )

    def _item_json(self, item_id: str) -> Event:
        item = self._items[item_id]
        response = self._responses.get(item.response_id)
        finished = response is not None and response.done
        status = "in_progress" if not finished else "completed" if item.done else "incomplete"
        return {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": [{"type": "output_audio", "transcript": item.transcript}],
        }

    # ------------------------------------------------------------------ helpers

    def _event(self, event_type: str, **fields: Any) -> Event:
        return {"type": event_type, "event_id": f"event_emulator_{next(self._ids)}", **fields}

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    def _error(self, error: ClientEventError, client_event_id: str | None) -> Event:
        return self._event(
            "error",
            error={
                "type": "invalid_request_error",
                "code": error.code,
                "message": error.message,
                "param": error.param,
                "event_id": client_event_id,
            },
        )


def _parse(text: str) -> dict[str, Any]:
    try:
        event = json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError):
        raise ClientEventError("invalid_json", f"not JSON ({len(text)} chars)") from None
    if not isinstance(event, dict):
        raise ClientEventError("invalid_json", "a client event must be a JSON object")
    if not isinstance(event.get("type"), str):
        raise ClientEventError("missing_type", "a client event needs a string 'type'", "type")
    return event


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # NaN, Infinity: strict clients cannot read them


def _check_session_shape(session: Mapping[str, Any]) -> None:
    """The session's audio settings are objects where the protocol has objects, and no value
    nests deeper than MAX_SESSION_DEPTH (merging and echoing it is recursive)."""
    audio = session.get("audio")
    checks = [("session.audio", "audio" in session, audio)]
    if isinstance(audio, Mapping):
        checks += [(f"session.audio.{way}", way in audio, audio.get(way))
                   for way in ("input", "output")]  # fmt: skip
    for param, given, value in checks:
        if given and not isinstance(value, Mapping):
            raise ClientEventError("invalid_type", f"{param} must be an object", param)
    if isinstance(audio, Mapping) and "type" in audio:
        raise ClientEventError("invalid_type", "session.audio has no 'type'", "session.audio")
    for way in ("input", "output"):
        fmt = audio.get(way, {}).get("format") if isinstance(audio, Mapping) else None
        if fmt is not None and not isinstance(fmt, Mapping | str):
            param = f"session.audio.{way}.format"
            raise ClientEventError("invalid_type", f"{param} must be an object", param)
    if _depth(session) > MAX_SESSION_DEPTH:
        raise ClientEventError("invalid_request_error", f"session nests deeper than "
                               f"{MAX_SESSION_DEPTH} levels", "session")  # fmt: skip


def _depth(value: Any) -> int:
    """How deep ``value`` nests (iteratively: a deep value must not exhaust the stack here)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        deepest = max(deepest, level)
        if level > MAX_SESSION_DEPTH:
            break
        children = item.values() if isinstance(item, Mapping) else (
            item if isinstance(item, list) else ())  # fmt: skip
        todo += [(child, level + 1) for child in children]
    return deepest


_TYPE_NAMES = {str: "a string", int: "an integer", dict: "an object"}


def _field(event: Mapping[str, Any], name: str, kind: type) -> Any:
    if name not in event:
        raise ClientEventError(
            "missing_required_parameter", f"{event.get('type')}: missing '{name}'", name
        )
    value = event[name]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ClientEventError(
            "invalid_type", f"{event.get('type')}: '{name}' must be {_TYPE_NAMES[kind]}", name
        )
    return value


def _optional_field(event: Mapping[str, Any], name: str, kind: type) -> Any:
    return None if event.get(name) is None else _field(event, name, kind)


def _merge(into: dict[str, Any], update: Mapping[str, Any]) -> None:
    """Deep-merge a ``session.update`` into the session, as the server does field by field.

    An object with a ``type`` (a format, a turn detection) is one value and replaces the old one
    whole: ``{"type": "audio/pcmu"}`` must not keep the ``rate`` of the ``audio/pcm`` it replaces.
    """
    for key, value in update.items():
        typed = isinstance(value, Mapping) and "type" in value
        if isinstance(value, Mapping) and not typed and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)

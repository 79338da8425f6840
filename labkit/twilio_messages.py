"""Twilio Media Streams messages: parse and build every JSON text of the bidirectional protocol.

Sans-I/O: strings in, immutable records out, and back. The live handler parses what Twilio
sends (``parse``) and builds what goes to Twilio (``OutboundEncoder`` per stream; ``media_json``,
``mark_json``, ``clear_json``, ``encode_outbound`` for one message); the Twilio emulator does the
mirror image (``parse_to_twilio`` and the ``*_json`` builders of Twilio's own messages).
Protocol facts: DOMAIN.md section 2; the idea is shown in notebooks/04_live_call.ipynb.

Every rejection is a ``TwilioMessageError`` naming the event and the field at fault.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from labkit.outbound.base import Clear, Outbound

MAX_MESSAGE_BYTES = 64 * 1024  # one WebSocket text frame; anything larger is refused unparsed
# Largest decoded payload accepted or built: 32 KiB = 4.1 s of mu-law, far above any real delta
# and safely inside MAX_MESSAGE_BYTES once base64-encoded (4/3 growth) with the JSON around it.
MAX_PAYLOAD_BYTES = 32 * 1024

FROM_TWILIO_EVENTS = ("connected", "start", "media", "mark", "dtmf", "stop")
TO_TWILIO_EVENTS = ("media", "mark", "clear")


class TwilioMessageError(ValueError):
    """A frame that is not a valid Media Streams message; the text names the event and field."""


# ---------------------------------------------------------------------------- from Twilio


@dataclass(frozen=True, slots=True)
class ConnectedMsg:
    protocol: str = "Call"
    version: str = "1.0.0"


@dataclass(frozen=True, slots=True)
class StartMsg:
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    media_format: Mapping[str, Any]
    custom_parameters: Mapping[str, str]
    sequence_number: int


# The two messages a call receives by the thousand (a frame per 20 ms, an echo per mark) are
# NamedTuples: built in C, about a third of the cost of a frozen dataclass, whose __init__ writes
# each field through object.__setattr__ (the same choice as labkit.outbound.base).


class MediaMsg(NamedTuple):
    """Caller audio: ``timestamp_ms`` is media time since the stream started."""

    stream_sid: str
    track: str
    chunk: int
    timestamp_ms: int
    payload: bytes
    sequence_number: int


class MarkMsg(NamedTuple):
    """A mark echoed by Twilio: the audio sent before it has played, or ``clear`` dropped it."""

    name: str
    stream_sid: str = ""
    sequence_number: int = 0


@dataclass(frozen=True, slots=True)
class DtmfMsg:
    digit: str
    track: str
    stream_sid: str = ""
    sequence_number: int = 0


@dataclass(frozen=True, slots=True)
class StopMsg:
    stream_sid: str
    account_sid: str = ""
    call_sid: str = ""
    sequence_number: int = 0


FromTwilio = ConnectedMsg | StartMsg | MediaMsg | MarkMsg | DtmfMsg | StopMsg


# ---------------------------------------------------------------------------- to Twilio


@dataclass(frozen=True, slots=True)
class OutboundMediaMsg:
    """Agent audio sent to Twilio: played in order of arrival."""

    stream_sid: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class OutboundMarkMsg:
    stream_sid: str
    name: str


@dataclass(frozen=True, slots=True)
class ClearMsg:
    stream_sid: str


ToTwilio = OutboundMediaMsg | OutboundMarkMsg | ClearMsg


# ---------------------------------------------------------------------------- field readers


@dataclass(frozen=True, slots=True)
class _Where:
    """Which event is being read, so every error can name it."""

    event: str

    def error(self, field_name: str, problem: str) -> TwilioMessageError:
        return TwilioMessageError(f"Twilio '{self.event}' message: field '{field_name}' {problem}")


_WHERE = {event: _Where(event) for event in (*FROM_TWILIO_EVENTS, *TO_TWILIO_EVENTS)}


def _where(event: str) -> _Where:
    """Made once per known event: the parser asks for one per message."""
    return _WHERE.get(event) or _Where(event)


def _object(obj: Mapping[str, Any], key: str, where: _Where) -> Mapping[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise where.error(key, "is missing or not an object")
    return value


def _string(obj: Mapping[str, Any], key: str, where: _Where, path: str = "") -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise where.error(path + key, "is missing or not a string")
    return value


def _optional_string(obj: Mapping[str, Any], key: str, where: _Where, path: str = "") -> str:
    value = obj.get(key, "")
    if not isinstance(value, str):
        raise where.error(path + key, "is not a string")
    return value


def _integer(obj: Mapping[str, Any], key: str, where: _Where, path: str = "") -> int:
    """Twilio sends counters as decimal strings ("4"); plain JSON integers are accepted too."""
    value = obj.get(key)
    if isinstance(value, str) and value.isdigit() and value.isascii() and len(value) <= 18:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if value is None:
        raise where.error(path + key, "is missing")
    raise where.error(path + key, f"must be a non-negative integer string, got {value!r:.40}")


def _payload(obj: Mapping[str, Any], where: _Where, max_payload_bytes: int) -> bytes:
    text = _string(obj, "payload", where, "media.")
    if len(text) > (max_payload_bytes + 2) // 3 * 4:
        raise where.error("media.payload", f"exceeds the cap of {max_payload_bytes} bytes")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise where.error("media.payload", f"is not valid base64 ({exc})") from None
    if len(data) > max_payload_bytes:
        raise where.error("media.payload", f"exceeds the cap of {max_payload_bytes} bytes")
    return data


def _stream_sid(obj: Mapping[str, Any], where: _Where, expected: str | None) -> str:
    sid = _string(obj, "streamSid", where)
    if expected is not None and sid != expected:
        raise where.error("streamSid", f"is {sid!r:.40}, expected {expected!r}")
    return sid


def _load(frame: str | bytes) -> tuple[Mapping[str, Any], str]:
    """JSON object and its event name, after the frame-level checks."""
    if isinstance(frame, bytes | bytearray | memoryview):
        raise TwilioMessageError("binary frame: Media Streams messages are JSON text frames")
    if not isinstance(frame, str):
        raise TwilioMessageError(f"a frame is text, got {type(frame).__name__}")
    if len(frame) > MAX_MESSAGE_BYTES:  # chars <= bytes; checked exactly below when close
        raise TwilioMessageError(f"message of {len(frame)} chars exceeds {MAX_MESSAGE_BYTES} bytes")
    # "surrogatepass": a lone surrogate (no UTF-8 text holds one) is measured, then refused by
    # the JSON checks below, not raised here as a UnicodeEncodeError
    if (len(frame) * 4 > MAX_MESSAGE_BYTES
            and len(frame.encode(errors="surrogatepass")) > MAX_MESSAGE_BYTES):  # fmt: skip
        raise TwilioMessageError(f"message exceeds {MAX_MESSAGE_BYTES} bytes")
    try:
        obj = json.loads(frame)
    except RecursionError:  # e.g. 30 000 nested brackets fit in one frame
        raise TwilioMessageError("message is JSON nested too deeply") from None
    except ValueError as exc:
        raise TwilioMessageError(f"message is not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise TwilioMessageError(f"message is not a JSON object: {frame[:40]!r}")
    event = obj.get("event")
    if not isinstance(event, str):
        raise TwilioMessageError("message: field 'event' is missing or not a string")
    return obj, event


# ---------------------------------------------------------------------------- parse from Twilio


def parse(
    frame: str | bytes,
    expected_stream_sid: str | None = None,
    *,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
) -> FromTwilio:
    """One message Twilio sent to the server. ``expected_stream_sid`` (once ``start`` is known)
    rejects messages of another stream."""
    obj, event = _load(frame)
    where = _where(event)
    if event == "media":  # first: thousands per second
        return _parse_inbound_media(obj, where, expected_stream_sid, max_payload_bytes)
    if event == "mark":
        mark = _object(obj, "mark", where)
        return MarkMsg(
            name=_string(mark, "name", where, "mark."),
            stream_sid=_stream_sid(obj, where, expected_stream_sid),
            sequence_number=_integer(obj, "sequenceNumber", where),
        )
    if event == "start":
        return _parse_start(obj, where, expected_stream_sid)
    if event == "connected":
        return ConnectedMsg(
            protocol=_optional_string(obj, "protocol", where),
            version=_optional_string(obj, "version", where),
        )
    if event == "dtmf":
        dtmf = _object(obj, "dtmf", where)
        return DtmfMsg(
            digit=_string(dtmf, "digit", where, "dtmf."),
            track=_optional_string(dtmf, "track", where, "dtmf."),
            stream_sid=_stream_sid(obj, where, expected_stream_sid),
            sequence_number=_integer(obj, "sequenceNumber", where),
        )
    if event == "stop":
        stop = obj.get("stop", {})
        if not isinstance(stop, dict):
            raise where.error("stop", "is not an object")
        return StopMsg(
            stream_sid=_stream_sid(obj, where, expected_stream_sid),
            account_sid=_optional_string(stop, "accountSid", where, "stop."),
            call_sid=_optional_string(stop, "callSid", where, "stop."),
            sequence_number=_integer(obj, "sequenceNumber", where),
        )
    raise TwilioMessageError(
        f"unknown event {event!r:.40} from Twilio; expected one of {', '.join(FROM_TWILIO_EVENTS)}"
    )


def _parse_inbound_media(
    obj: Mapping[str, Any], where: _Where, expected: str | None, max_payload_bytes: int
) -> MediaMsg:
    media = _object(obj, "media", where)
    return MediaMsg(
        stream_sid=_stream_sid(obj, where, expected),
        track=_optional_string(media, "track", where, "media.") or "inbound",
        chunk=_integer(media, "chunk", where, "media."),
        timestamp_ms=_integer(media, "timestamp", where, "media."),
        payload=_payload(media, where, max_payload_bytes),
        sequence_number=_integer(obj, "sequenceNumber", where),
    )


def _parse_start(obj: Mapping[str, Any], where: _Where, expected: str | None) -> StartMsg:
    start = _object(obj, "start", where)
    sid = _stream_sid(obj, where, expected)
    inner_sid = start.get("streamSid", sid)
    if inner_sid != sid:
        raise where.error("start.streamSid", f"is {inner_sid!r:.40}, not streamSid {sid!r}")
    tracks = start.get("tracks", ["inbound"])
    if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
        raise where.error("start.tracks", "is not a list of strings")
    media_format = start.get("mediaFormat", {})
    if not isinstance(media_format, dict):
        raise where.error("start.mediaFormat", "is not an object")
    params = start.get("customParameters", {})
    if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
        raise where.error("start.customParameters", "is not an object of strings")
    return StartMsg(
        stream_sid=sid,
        call_sid=_string(start, "callSid", where, "start."),
        account_sid=_optional_string(start, "accountSid", where, "start."),
        tracks=tuple(tracks),
        media_format=dict(media_format),
        custom_parameters=dict(params),
        sequence_number=_integer(obj, "sequenceNumber", where),
    )


# ---------------------------------------------------------------------------- parse to Twilio


def parse_to_twilio(
    frame: str | bytes,
    expected_stream_sid: str | None = None,
    *,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
) -> ToTwilio:
    """One message a server sent to Twilio (what the Twilio emulator receives)."""
    obj, event = _load(frame)
    where = _where(event)
    sid = _stream_sid(obj, where, expected_stream_sid) if event in TO_TWILIO_EVENTS else ""
    if event == "media":
        media = _object(obj, "media", where)
        return OutboundMediaMsg(sid, _payload(media, where, max_payload_bytes))
    if event == "mark":
        return OutboundMarkMsg(sid, _string(_object(obj, "mark", where), "name", where, "mark."))
    if event == "clear":
        return ClearMsg(sid)
    raise TwilioMessageError(
        f"unknown event {event!r:.40} sent to Twilio; expected one of {', '.join(TO_TWILIO_EVENTS)}"
    )


# ---------------------------------------------------------------------------- build to Twilio


def _dumps(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _b64(payload: bytes) -> str:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise TwilioMessageError(
            f"media payload of {len(payload)} bytes exceeds the cap of {MAX_PAYLOAD_BYTES} bytes"
        )
    return base64.b64encode(payload).decode("ascii")


class OutboundEncoder:
    """The texts a server sends on one stream, built from templates made once per stream.

    The same bytes as ``json.dumps`` of the message with ``separators=(",", ":")`` (tested): the
    stream sid and mark names are JSON-escaped by ``json.dumps`` itself, base64 needs no escaping.
    A live call sends hundreds of messages per stream, so the stream sid is escaped once, not per
    message, and no dict is built and walked per message.
    """

    __slots__ = ("_clear", "_mark_prefix", "_media_prefix")

    def __init__(self, stream_sid: str) -> None:
        sid = json.dumps(stream_sid)
        self._media_prefix = '{"event":"media","streamSid":' + sid + ',"media":{"payload":"'
        self._mark_prefix = '{"event":"mark","streamSid":' + sid + ',"mark":{"name":'
        self._clear = '{"event":"clear","streamSid":' + sid + "}"

    def media(self, payload: bytes) -> str:
        return self._media_prefix + _b64(payload) + '"}}'

    def mark(self, name: str) -> str:
        return self._mark_prefix + json.dumps(name) + "}}"

    def clear(self) -> str:
        return self._clear

    def outbound(self, o: Outbound) -> list[str]:
        """The texts for one strategy output, in wire order: the media (payloads above
        MAX_PAYLOAD_BYTES split into several media messages) then one text per mark after it."""
        if isinstance(o, Clear):
            return [self._clear]
        payload = o.payload
        if len(payload) <= MAX_PAYLOAD_BYTES:  # one message, or none for marks only
            texts = [self.media(payload)] if payload else []
        else:
            texts = [self.media(payload[start : start + MAX_PAYLOAD_BYTES])
                     for start in range(0, len(payload), MAX_PAYLOAD_BYTES)]  # fmt: skip
        for mark in o.marks:
            texts.append(self._mark_prefix + json.dumps(mark.name) + "}}")
        return texts


def media_json(stream_sid: str, payload: bytes) -> str:
    return OutboundEncoder(stream_sid).media(payload)


def mark_json(stream_sid: str, name: str) -> str:
    return OutboundEncoder(stream_sid).mark(name)


def clear_json(stream_sid: str) -> str:
    return OutboundEncoder(stream_sid).clear()


def encode_outbound(o: Outbound, stream_sid: str) -> list[str]:
    """The texts for one strategy output (``OutboundEncoder.outbound``, for one message)."""
    return OutboundEncoder(stream_sid).outbound(o)


# ---------------------------------------------------------------------------- build from Twilio


def connected_json() -> str:
    return _dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def start_json(
    stream_sid: str,
    call_sid: str,
    account_sid: str,
    custom_parameters: Mapping[str, str] | None = None,
    sequence_number: int = 1,
    tracks: tuple[str, ...] = ("inbound",),
) -> str:
    return _dumps(
        {
            "event": "start",
            "sequenceNumber": str(sequence_number),
            "streamSid": stream_sid,
            "start": {
                "accountSid": account_sid,
                "streamSid": stream_sid,
                "callSid": call_sid,
                "tracks": list(tracks),
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": dict(custom_parameters or {}),
            },
        }
    )


def inbound_media_json(
    stream_sid: str,
    payload: bytes,
    *,
    chunk: int,
    timestamp_ms: int,
    sequence_number: int,
    track: str = "inbound",
) -> str:
    return _dumps(
        {
            "event": "media",
            "sequenceNumber": str(sequence_number),
            "streamSid": stream_sid,
            "media": {
                "track": track,
                "chunk": str(chunk),
                "timestamp": str(timestamp_ms),
                "payload": _b64(payload),
            },
        }
    )


def mark_echo_json(stream_sid: str, name: str, sequence_number: int) -> str:
    return _dumps(
        {
            "event": "mark",
            "sequenceNumber": str(sequence_number),
            "streamSid": stream_sid,
            "mark": {"name": name},
        }
    )


def dtmf_json(stream_sid: str, digit: str, sequence_number: int) -> str:
    return _dumps(
        {
            "event": "dtmf",
            "streamSid": stream_sid,
            "sequenceNumber": str(sequence_number),
            "dtmf": {"track": "inbound_track", "digit": digit},
        }
    )


def stop_json(stream_sid: str, account_sid: str, call_sid: str, sequence_number: int) -> str:
    return _dumps(
        {
            "event": "stop",
            "sequenceNumber": str(sequence_number),
            "streamSid": stream_sid,
            "stop": {"accountSid": account_sid, "callSid": call_sid},
        }
    )

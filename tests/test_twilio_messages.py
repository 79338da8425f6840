"""The Twilio codec: what Twilio sends parses into typed messages, what we build parses back,
and every malformed frame is refused with an error naming the event and field."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.outbound.base import Clear, Mark, Media
from labkit.twilio_messages import (
    MAX_MESSAGE_BYTES,
    MAX_PAYLOAD_BYTES,
    ClearMsg,
    ConnectedMsg,
    DtmfMsg,
    MarkMsg,
    MediaMsg,
    OutboundEncoder,
    OutboundMarkMsg,
    OutboundMediaMsg,
    StartMsg,
    StopMsg,
    TwilioMessageError,
    clear_json,
    connected_json,
    dtmf_json,
    encode_outbound,
    inbound_media_json,
    mark_echo_json,
    mark_json,
    media_json,
    parse,
    parse_to_twilio,
    start_json,
    stop_json,
)

SID = "MZ0123456789abcdef"

# Verbatim shapes from Twilio's documentation (DOMAIN.md section 2).
TWILIO_START = (
    '{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"accountSid":"AC1",'
    '"streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":'
    '"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"strategy":"paced"}}}'
)
TWILIO_MEDIA = (
    '{"event":"media","sequenceNumber":"4","streamSid":"MZ1","media":{"track":"inbound",'
    '"chunk":"2","timestamp":"5","payload":"' + base64.b64encode(b"\xff" * 160).decode() + '"}}'
)


def test_documented_twilio_messages_parse() -> None:
    assert parse('{"event":"connected","protocol":"Call","version":"1.0.0"}') == ConnectedMsg()
    start = parse(TWILIO_START)
    assert start == StartMsg(
        stream_sid="MZ1",
        call_sid="CA1",
        account_sid="AC1",
        tracks=("inbound",),
        media_format={"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        custom_parameters={"strategy": "paced"},
        sequence_number=1,
    )
    media = parse(TWILIO_MEDIA, expected_stream_sid="MZ1")
    assert media == MediaMsg("MZ1", "inbound", 2, 5, b"\xff" * 160, 4)
    mark = parse('{"event":"mark","sequenceNumber":"4","streamSid":"MZ1","mark":{"name":"m:1"}}')
    assert mark == MarkMsg("m:1", "MZ1", 4)
    dtmf = parse(
        '{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5",'
        '"dtmf":{"track":"inbound_track","digit":"1"}}'
    )
    assert dtmf == DtmfMsg("1", "inbound_track", "MZ1", 5)
    stop = parse(
        '{"event":"stop","sequenceNumber":"5","streamSid":"MZ1",'
        '"stop":{"accountSid":"AC1","callSid":"CA1"}}'
    )
    assert stop == StopMsg("MZ1", "AC1", "CA1", 5)


def test_twilio_side_builders_round_trip() -> None:
    assert parse(connected_json()) == ConnectedMsg()
    start = parse(start_json(SID, "CA9", "AC9", {"k": "v"}, sequence_number=1))
    assert isinstance(start, StartMsg)
    assert (start.stream_sid, start.call_sid, start.account_sid) == (SID, "CA9", "AC9")
    assert start.custom_parameters == {"k": "v"}
    assert start.media_format["encoding"] == "audio/x-mulaw"
    frame = bytes(range(160))
    media = parse(inbound_media_json(SID, frame, chunk=7, timestamp_ms=120, sequence_number=9))
    assert media == MediaMsg(SID, "inbound", 7, 120, frame, 9)
    assert parse(mark_echo_json(SID, "g0:x", 3)) == MarkMsg("g0:x", SID, 3)
    assert parse(dtmf_json(SID, "#", 4)) == DtmfMsg("#", "inbound_track", SID, 4)
    assert parse(stop_json(SID, "AC9", "CA9", 5)) == StopMsg(SID, "AC9", "CA9", 5)


@given(payload=st.binary(max_size=2000), name=st.text(max_size=60), sid=st.text(max_size=40))
def test_server_side_builders_round_trip(payload: bytes, name: str, sid: str) -> None:
    assert parse_to_twilio(media_json(sid, payload), sid) == OutboundMediaMsg(sid, payload)
    assert parse_to_twilio(mark_json(sid, name), sid) == OutboundMarkMsg(sid, name)
    assert parse_to_twilio(clear_json(sid), sid) == ClearMsg(sid)


def test_encode_outbound_sends_media_then_each_mark() -> None:
    marks = tuple(Mark(f"m{i}", "item:1", 0, i * 10, i * 10 + 10, 2, 0.0) for i in range(3))
    texts = encode_outbound(Media(b"\x01" * 30, "item:1", 0, 0, 2, marks), SID)
    parsed = [parse_to_twilio(t, SID) for t in texts]
    assert parsed == [
        OutboundMediaMsg(SID, b"\x01" * 30),
        OutboundMarkMsg(SID, "m0"),
        OutboundMarkMsg(SID, "m1"),
        OutboundMarkMsg(SID, "m2"),
    ]
    assert [parse_to_twilio(t) for t in encode_outbound(Clear(2), SID)] == [ClearMsg(SID)]


def test_encode_outbound_splits_payloads_above_the_cap_and_skips_empty_ones() -> None:
    payload = bytes(range(256)) * (MAX_PAYLOAD_BYTES // 256 * 2 + 1)
    texts = encode_outbound(Media(payload, "i", 0, 0, 0, ()), SID)
    assert all(len(t.encode()) <= MAX_MESSAGE_BYTES for t in texts)
    pieces = [parse_to_twilio(t) for t in texts]
    assert b"".join(p.payload for p in pieces if isinstance(p, OutboundMediaMsg)) == payload
    only_mark = encode_outbound(Media(b"", "i", 0, 0, 0, (Mark("m", "i", 0, 0, 0, 0, 0.0),)), SID)
    assert [parse_to_twilio(t) for t in only_mark] == [OutboundMarkMsg(SID, "m")]


def _media(**overrides: object) -> str:
    msg: dict[str, object] = json.loads(TWILIO_MEDIA)
    media = dict(msg["media"])  # type: ignore[call-overload]
    for key, value in overrides.items():
        if key in ("sequenceNumber", "streamSid"):
            target: dict[str, object] = msg
        else:
            target = media
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    msg["media"] = media
    return json.dumps(msg)


@pytest.mark.parametrize(
    ("frame", "expected_words"),
    [
        ("not json", ["not JSON"]),
        ("[1, 2]", ["not a JSON object"]),
        ('{"streamSid": "MZ1"}', ["'event'"]),
        ('{"event": "hello", "streamSid": "MZ1"}', ["unknown event", "'hello'"]),
        (_media(streamSid=None), ["'media'", "'streamSid'", "missing"]),
        (_media(payload="@@@notbase64"), ["'media'", "'media.payload'", "base64"]),
        (_media(payload=None), ["'media'", "'media.payload'"]),
        (_media(timestamp="5.5"), ["'media'", "'media.timestamp'", "integer"]),
        (_media(timestamp="-3"), ["'media'", "'media.timestamp'"]),
        (_media(chunk=True), ["'media'", "'media.chunk'"]),
        (_media(chunk=None), ["'media'", "'media.chunk'", "missing"]),
        (_media(sequenceNumber="x4"), ["'media'", "'sequenceNumber'"]),
        ('{"event":"media","streamSid":"MZ1","sequenceNumber":"1","media":3}', ["'media'"]),
        ('{"event":"mark","streamSid":"MZ1","sequenceNumber":"1","mark":{}}', ["'mark.name'"]),
        ('{"event":"start","streamSid":"M","sequenceNumber":"1","start":{}}', ["'start.callSid'"]),
        (
            '{"event":"start","streamSid":"MZ1","sequenceNumber":"1",'
            '"start":{"callSid":"CA","customParameters":{"a":1}}}',
            ["'start'", "'start.customParameters'"],
        ),
        ('{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"1","dtmf":{}}', ["'dtmf.digit'"]),
        ('{"event":"stop","sequenceNumber":"1"}', ["'stop'", "'streamSid'"]),
    ],
)
def test_malformed_messages_name_event_and_field(frame: str, expected_words: list[str]) -> None:
    with pytest.raises(TwilioMessageError) as caught:
        parse(frame)
    for word in expected_words:
        assert word in str(caught.value)


def test_wrong_stream_sid_is_refused_when_one_is_expected() -> None:
    assert isinstance(parse(TWILIO_MEDIA), MediaMsg)
    with pytest.raises(TwilioMessageError, match=r"'media'.*'streamSid'.*MZ2"):
        parse(TWILIO_MEDIA, expected_stream_sid="MZ2")
    with pytest.raises(TwilioMessageError, match=r"'clear'.*'streamSid'"):
        parse_to_twilio(clear_json("MZ1"), expected_stream_sid="MZ2")


def test_binary_frames_are_refused() -> None:
    with pytest.raises(TwilioMessageError, match="binary"):
        parse(TWILIO_MEDIA.encode())
    with pytest.raises(TwilioMessageError, match="binary"):
        parse_to_twilio(clear_json(SID).encode())


def test_oversized_messages_and_payloads_are_refused() -> None:
    huge = '{"event":"connected","pad":"' + "x" * MAX_MESSAGE_BYTES + '"}'
    with pytest.raises(TwilioMessageError, match="exceeds"):
        parse(huge)
    # Under the char limit but over the byte limit once UTF-8 encoded.
    wide = '{"event":"connected","pad":"' + "\u00e9" * (MAX_MESSAGE_BYTES // 2) + '"}'
    with pytest.raises(TwilioMessageError, match="exceeds"):
        parse(wide)
    big_payload = base64.b64encode(b"\xff" * 1000).decode()
    with pytest.raises(TwilioMessageError, match=r"'media\.payload'.*cap of 500"):
        parse(_media(payload=big_payload), max_payload_bytes=500)
    with pytest.raises(TwilioMessageError, match="cap"):
        media_json(SID, b"\x00" * (MAX_PAYLOAD_BYTES + 1))


def test_messages_to_twilio_reject_what_twilio_would() -> None:
    with pytest.raises(TwilioMessageError, match="unknown event 'start' sent to Twilio"):
        parse_to_twilio(TWILIO_START)
    with pytest.raises(TwilioMessageError, match=r"'mark'.*'mark'"):
        parse_to_twilio('{"event":"mark","streamSid":"MZ1"}')
    with pytest.raises(TwilioMessageError, match=r"'media'.*'media\.payload'.*base64"):
        parse_to_twilio('{"event":"media","streamSid":"MZ1","media":{"payload":"a"}}')


def _dumped(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


@given(
    sid=st.text(max_size=40),
    name=st.text(max_size=40),
    payload=st.binary(max_size=600),
)
def test_the_templates_build_exactly_what_json_dumps_builds(sid: str, name: str,
                                                            payload: bytes) -> None:  # fmt: skip
    """Quotes, backslashes, control and non-ASCII characters in a sid or a mark name included."""
    encoder = OutboundEncoder(sid)
    b64 = base64.b64encode(payload).decode()
    assert encoder.media(payload) == _dumped(
        {"event": "media", "streamSid": sid, "media": {"payload": b64}}
    )
    mark_message = {"event": "mark", "streamSid": sid, "mark": {"name": name}}
    assert encoder.mark(name) == _dumped(mark_message)
    assert encoder.clear() == _dumped({"event": "clear", "streamSid": sid})
    mark = Mark(name, "i", 0, 0, len(payload), 0, 0.0)
    texts = encoder.outbound(Media(payload, "i", 0, 0, 0, (mark,)))
    assert texts == [encoder.media(payload)] * bool(payload) + [encoder.mark(name)]


LONE_SURROGATE_FRAME = '{"event": "media", "x": "\ud800' + "a" * 17_000 + '"}'


@pytest.mark.parametrize("frame", [None, 5, LONE_SURROGATE_FRAME])
def test_every_refusal_of_a_frame_is_a_twilio_message_error(frame: object) -> None:
    """A long frame holding a lone surrogate raised UnicodeEncodeError; None a TypeError."""
    with pytest.raises(TwilioMessageError):
        parse(frame)

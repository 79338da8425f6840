"""Hostile input on ``/media-stream``: the server never crashes, a healthy call beside stays exact.

One real server (uvicorn, trace replay) runs in a background event loop for the whole test.
Hypothesis opens one connection per example and sends random and mutated Twilio messages: bad
JSON, wrong types, frames over 64 KiB, binary frames, deep nesting, wrong streamSid, unknown
events, events out of order. Meanwhile healthy ``TwilioPeer`` calls run back to back on the same
server; each must receive every byte of the trace, and every line the server logs stays one
printable line. The harness (``hostile_server``, ``LiveServer.healthy_beside``, ``ServerLog``) is
reused by test_hostile_server.py for the attacks of issue 14. See notebooks/04_live_call.ipynb.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from labkit import traces
from labkit import twilio_messages as tm
from labkit.live.peer import PeerRecording, TwilioPeer
from labkit.live.server import BackgroundServer, serve_in_background
from labkit.live.settings import CALL_PARAMETER_KEYS, CallSettings, ServerSettings
from labkit.traces import Trace, TraceEvent, audio_event, item_event, make_header, turn_event

SPEED = 4.0
HEALTHY_SID = "MZhealthy00000000000000000000000001"
HOSTILE_SID = "MZhostile00000000000000000000000001"
OTHER_SID = "MZother0000000000000000000000000001"
CALL_SID = "CA00000000000000000000000000000009"
ACCOUNT_SID = "AChostile000000000000000000000009"
SETTLE_S = 0.05  # let the handler read what was sent before looking at it
EXAMPLE_TIMEOUT_S = 10.0


def speech_trace() -> Trace:
    events: list[TraceEvent] = []
    for n, t0 in enumerate((0.0, 900.0)):
        events.append(turn_event("turn_started", t0, f"r{n}"))
        for k in range(16):
            payload = bytes((n * 89 + k * 13 + j) % 256 for j in range(320 + 37 * k))
            events.append(audio_event(t0 + 20.0 * k, f"r{n}", f"i{n}", 0, payload))
        events.append(item_event("audio_done", t0 + 330.0, f"i{n}", 0))
        events.append(turn_event("turn_ended", t0 + 330.0, f"r{n}"))
    return Trace(make_header("synthetic", "hostile input: the healthy call"), events)


# ---------------------------------------------------------------------- the shared server


class ServerLog(logging.Handler):
    """Every record the server logs (labkit and uvicorn, every level), kept rendered."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")

    def clear(self) -> None:
        self.records.clear()
        self.lines.clear()

    def crashes(self) -> list[str]:
        """ERRORs: a call ended by an exception, or an ASGI crash."""
        return [line for r, line in zip(self.records, self.lines, strict=True)
                if r.levelno >= logging.ERROR]  # fmt: skip

    def matching(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]


@dataclass
class LiveServer:
    loop: asyncio.AbstractEventLoop
    server: BackgroundServer
    audio: bytes
    errors: ServerLog
    healthy: list[PeerRecording] = field(default_factory=list)
    dial_headers: dict[str, str] = field(default_factory=dict)  # e.g. a Twilio signature
    speed: float = SPEED

    @property
    def log(self) -> ServerLog:
        return self.errors

    def run(self, coro: Any, timeout_s: float = EXAMPLE_TIMEOUT_S * 3) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=timeout_s)

    def hostile_handlers(self) -> list[Any]:
        return [h for h in self.server.app.state.live_calls if h.stream_sid != HEALTHY_SID]

    def healthy_peer(self, stream_sid: str = HEALTHY_SID) -> TwilioPeer:
        return TwilioPeer(self.server.ws_url, speed=self.speed, stream_sid=stream_sid,
                          headers=self.dial_headers)  # fmt: skip

    @contextlib.contextmanager
    def healthy_beside(self) -> Iterator[None]:
        """Healthy calls back to back while the block runs; each must be byte-exact."""
        self.healthy.clear()
        stop = self.run(make_event())
        calls = asyncio.run_coroutine_threadsafe(healthy_calls(self, stop), self.loop)
        try:
            yield
        finally:
            self.loop.call_soon_threadsafe(stop.set)
            calls.result(timeout=60)
        assert self.healthy, "no healthy call completed beside the attack"
        for recording in self.healthy:
            assert_byte_exact(self, recording)


def assert_byte_exact(live: LiveServer, recording: PeerRecording) -> None:
    assert recording.protocol_errors == []
    assert recording.closed_by == "server"
    assert recording.received_audio() == live.audio


def replay_settings(tmp_path: Path, **overrides: Any) -> tuple[ServerSettings, Trace]:
    trace = speech_trace()
    path = tmp_path / "speech.jsonl.gz"
    traces.write(trace, path)
    settings = ServerSettings(call=CallSettings(), replay_trace=path, replay_speed=SPEED)
    return dataclasses.replace(settings, **overrides), trace


@contextlib.contextmanager
def hostile_server(tmp_path: Path, **overrides: Any) -> Iterator[LiveServer]:
    """A real server (uvicorn, trace replay) in a background event loop, its log captured.
    ``overrides``: ServerSettings fields (limits, record_dir, tokens...)."""
    settings, trace = replay_settings(tmp_path, **overrides)
    log = ServerLog()
    loggers = [logging.getLogger(name) for name in ("labkit", "uvicorn")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(log)
        logger.setLevel(logging.DEBUG)
    loop = asyncio.new_event_loop()
    ready: Future[LiveServer] = Future()
    done = asyncio.Event()

    async def host() -> None:
        async with serve_in_background(settings) as server:
            audio = b"".join(trace.item_audio(key) for key in trace.items)
            ready.set_result(LiveServer(loop, server, audio, log, speed=settings.replay_speed))
            await done.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(host(),), daemon=True)
    thread.start()
    try:
        yield ready.result(timeout=10)
    finally:
        loop.call_soon_threadsafe(done.set)
        thread.join(timeout=10)
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(log)
            logger.setLevel(level)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with hostile_server(Path(tmp_path_factory.mktemp("hostile"))) as server:
        yield server


async def healthy_calls(live: LiveServer, stop: asyncio.Event) -> None:
    """Healthy calls back to back until ``stop``; each recording is kept."""
    while not stop.is_set():
        live.healthy.append(await asyncio.wait_for(live.healthy_peer().run(), 30))


# ---------------------------------------------------------------------- hostile frames


def valid_messages(sid: str) -> list[dict[str, Any]]:
    """One of each message Twilio sends (the ``stop`` is another stream's: it must be refused)."""
    texts = [
        tm.connected_json(),
        tm.start_json(sid, CALL_SID, ACCOUNT_SID, {"strategy": "paced"}),
        tm.inbound_media_json(sid, b"\x7f" * 160, chunk=3, timestamp_ms=40, sequence_number=4),
        tm.mark_echo_json(sid, "m1.g0", 5),
        tm.dtmf_json(sid, "7", 6),
        tm.stop_json(OTHER_SID, ACCOUNT_SID, CALL_SID, 7),
    ]
    return [json.loads(text) for text in texts]


json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def mutated_message(draw: st.DrawFn) -> str:
    """A valid message with one field removed, retyped, or pointed at another stream."""
    message: dict[str, Any] = draw(st.sampled_from(valid_messages(HOSTILE_SID)))
    target = message
    nested = [key for key, value in message.items() if isinstance(value, dict)]
    go_deeper: bool = draw(st.booleans())
    if nested and go_deeper:
        target = message[draw(st.sampled_from(nested))]
    if not target:
        return json.dumps(message)
    key = draw(st.sampled_from(sorted(target)))
    action = draw(st.sampled_from(["drop", "retype", "sid", "event"]))
    if action == "drop":
        del target[key]
    elif action == "retype":
        target[key] = draw(json_values)
    elif action == "sid":
        message["streamSid"] = draw(st.sampled_from([OTHER_SID, "", "MZ" + "9" * 400]))
    else:
        message["event"] = draw(st.text(max_size=12) | st.sampled_from(["clear", "Media", "START"]))
    return json.dumps(message)


def media_with_payload(size: int) -> str:
    payload = base64.b64encode(bytes([size % 256]) * size).decode()
    return json.dumps({"event": "media", "sequenceNumber": "9", "streamSid": HOSTILE_SID,
                       "media": {"track": "inbound", "chunk": "9", "timestamp": "180",
                                 "payload": payload}})  # fmt: skip


def start_with(params: dict[str, str], sid: str = HOSTILE_SID) -> str:
    return tm.start_json(sid, CALL_SID, ACCOUNT_SID, params)


hostile_frames: st.SearchStrategy[str | bytes] = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    json_values.map(json.dumps),
    mutated_message(),
    mutated_message().flatmap(lambda text: st.integers(0, len(text)).map(lambda n: text[:n])),
    st.integers(40_000, 200_000).map(media_with_payload),  # over the 32 KiB payload cap
    st.integers(65_000, 300_000).map(lambda n: "x" * n),  # over the 64 KiB frame cap
    st.integers(500, 30_000).map(lambda n: "[" * n + "]" * n),  # nested beyond recursion
    st.integers(500, 30_000).map(lambda n: '{"event":"media","media":' + "[" * n + "]" * n + "}"),
    st.dictionaries(st.sampled_from(CALL_PARAMETER_KEYS), st.text(max_size=12) | st.sampled_from(
        ["1e308", "-0", "nan", "inf", "1e-300", "none", "paced", "adaptive", "0"])).map(start_with),
    st.sampled_from(valid_messages(HOSTILE_SID)).map(json.dumps),  # out of order, repeated
    st.integers(0, 10**17).map(lambda ts: tm.inbound_media_json(
        HOSTILE_SID, b"\x00" * 160, chunk=1, timestamp_ms=ts, sequence_number=1)),
)  # fmt: skip


def ends_the_call(frames: list[str | bytes]) -> bool:
    """Whether a valid ``stop`` for the call (or before its ``start``) is among the frames."""
    sid: str | None = None
    for frame in frames:
        if isinstance(frame, bytes) or len(frame.encode()) > tm.MAX_MESSAGE_BYTES:
            continue
        try:
            message = tm.parse(frame, expected_stream_sid=sid)
        except tm.TwilioMessageError:
            continue
        if isinstance(message, tm.StopMsg):
            return True
        if isinstance(message, tm.StartMsg) and sid is None:
            sid = message.stream_sid
    return False


async def hostile_call(live: LiveServer, before: list[str | bytes], after: list[str | bytes],
                       send_start: bool) -> None:  # fmt: skip
    """Send the frames; unless one was a valid ``stop``, the call must still be up."""
    async with connect(live.server.ws_url, max_size=None, compression=None) as ws:
        await ws.send(tm.connected_json())
        frames = [*before, *([start_with({})] if send_start else []), *after]
        for frame in frames:
            await ws.send(frame)
        await asyncio.sleep(SETTLE_S)
        if not ends_the_call(frames):
            assert await only_one_hostile_call(live), "the hostile call must go on"
            assert ws.close_code is None
        crashes = live.errors.crashes()
        assert not crashes, f"the server logged errors: {crashes[:3]}"
        forged = [line for line in live.log.lines if not line.isprintable()]
        assert not forged, f"unescaped text in the log: {forged[:3]}"
    for _ in range(int(EXAMPLE_TIMEOUT_S / 0.01)):  # the caller hung up: the call winds down
        if not live.hostile_handlers():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the hostile call did not end after its caller hung up")


async def only_one_hostile_call(live: LiveServer) -> bool:
    """Whether exactly one call besides the healthy ones is up. A healthy call counts among
    the others for the few ms between its connection and its ``start`` (its stream sid is not
    known yet), and they run back to back: so look again until that window has passed."""
    for _ in range(int(EXAMPLE_TIMEOUT_S / 0.01)):
        if len(live.hostile_handlers()) == 1:
            return True
        await asyncio.sleep(0.01)
    return False


# The server thread's websockets draw masks from `random` while Hypothesis generates: harmless.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_hostile_frames_never_crash_the_server_and_a_healthy_call_stays_exact(
    live: LiveServer,
) -> None:
    live.errors.clear()

    @settings(max_examples=70, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(
        before=st.lists(hostile_frames, max_size=3),
        after=st.lists(hostile_frames, max_size=6),
        send_start=st.booleans(),
    )
    def fuzz(before: list[str | bytes], after: list[str | bytes], send_start: bool) -> None:
        live.run(hostile_call(live, before, after, send_start))

    with live.healthy_beside():
        fuzz()


async def make_event() -> asyncio.Event:
    return asyncio.Event()


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 20_000 + "]" * 20_000,
        b"\x00\x01binary",
        "x" * 70_000,
        media_with_payload(60_000),
        '{"event":"start"}',
        tm.start_json(HOSTILE_SID, CALL_SID, ACCOUNT_SID, {"threshold_ms": "1e308"}),
    ],
    ids=["deep_nesting", "binary", "over_64KiB", "payload_over_cap", "start_no_fields", "huge"],
)
def test_each_known_hostile_frame_is_survived(live: LiveServer, frame: str | bytes) -> None:
    live.errors.clear()
    live.run(hostile_call(live, [], [frame, start_with({}), frame], send_start=False))


def test_a_valid_stop_after_hostile_frames_still_ends_the_call(live: LiveServer) -> None:
    async def call() -> None:
        async with connect(live.server.ws_url, max_size=None) as ws:
            await ws.send(start_with({}))
            await ws.send(b"\xff" * 10)
            await ws.send("{bad json")
            await ws.send(tm.stop_json(HOSTILE_SID, ACCOUNT_SID, CALL_SID, 3))
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()

    live.run(asyncio.wait_for(call(), EXAMPLE_TIMEOUT_S))
    assert not live.hostile_handlers()

"""TwilioHandler: a real RealtimeSession (trace replay) bridged to a Twilio socket.

Unit tests drive the handler through an in-memory socket; loopback tests run the real server
(uvicorn) and dial it with the Twilio emulator (``TwilioPeer``) or a raw ``websockets`` client.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from agents.realtime.model import RealtimePlaybackTracker
from starlette.websockets import WebSocketState
from websockets.asyncio.client import connect

from labkit import traces
from labkit import twilio_messages as tm
from labkit.live.handler import TwilioHandler
from labkit.live.models import ModelChoice
from labkit.live.peer import TwilioPeer
from labkit.live.replay_model import TraceReplayModel
from labkit.live.server import serve_in_background
from labkit.live.settings import CallSettings, ServerSettings
from labkit.outbound import STRATEGY_NAMES
from labkit.traces import Trace, TraceEvent, audio_event, item_event, make_header, turn_event

pytestmark = pytest.mark.anyio

SPEED = 10.0
SID = "MZ00000000000000000000000000000001"
OTHER_SID = "MZ00000000000000000000000000000002"
DELTA_SIZES = (480, 96, 1200, 160, 333, 800, 64, 1024)  # irregular, like real model deltas


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def speech_trace(*, interrupt_second: bool = False) -> Trace:
    """Two responses; deltas of irregular sizes arriving 30 ms apart. Optionally the caller
    barges in on the second response after its fourth delta."""
    events: list[TraceEvent] = []
    for turn, (response, item, t0) in enumerate([("r1", "i1", 0.0), ("r2", "i2", 1000.0)]):
        events.append(turn_event("turn_started", t0, response))
        for k, size in enumerate(DELTA_SIZES):
            if interrupt_second and turn == 1 and k == 4:
                events.append(item_event("audio_interrupted", t0 + 30.0 * k, item, 0))
                break
            events.append(
                audio_event(t0 + 30.0 * k, response, item, 0, bytes([k + 16 * turn]) * size)
            )
        else:
            events.append(item_event("audio_done", t0 + 30.0 * len(DELTA_SIZES), item, 0))
        events.append(turn_event("turn_ended", t0 + 260.0, response))
    return Trace(make_header("synthetic", "handler tests"), events)


@pytest.fixture
def trace_path(tmp_path: Path) -> Path:
    path = tmp_path / "speech.jsonl.gz"
    traces.write(speech_trace(), path)
    return path


def settings_for(trace_path: Path, **call: Any) -> ServerSettings:
    return ServerSettings(
        call=CallSettings(**call), replay_trace=trace_path, replay_speed=SPEED, openai_api_key=None
    )


def trace_audio(trace: Trace) -> bytes:
    return b"".join(e.audio for e in trace.events if e.type == "audio")


# ---------------------------------------------------------------------- in-memory socket


class FakeTwilio:
    """The server side of a Twilio socket: feed frames in, see what was sent. With ``echo``
    every mark is echoed at once (as Twilio does when nothing is queued)."""

    def __init__(self, *, echo: bool = True) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[str] = []
        self.echo = echo
        self.application_state = WebSocketState.CONNECTED
        self.close_code: int | None = None

    def text(self, text: str) -> None:
        self.inbox.put_nowait({"type": "websocket.receive", "text": text})

    def binary(self, data: bytes) -> None:
        self.inbox.put_nowait({"type": "websocket.receive", "bytes": data})

    def disconnect(self) -> None:
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1006})

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send_text(self, text: str) -> None:
        self.sent.append(text)
        msg = tm.parse_to_twilio(text, SID)
        if self.echo and isinstance(msg, tm.OutboundMarkMsg):
            self.text(tm.mark_echo_json(SID, msg.name, len(self.sent)))

    async def close(self, code: int = 1000) -> None:
        self.application_state = WebSocketState.DISCONNECTED
        self.close_code = code

    def media_bytes(self) -> bytes:
        sent = [tm.parse_to_twilio(text, SID) for text in self.sent]
        return b"".join(m.payload for m in sent if isinstance(m, tm.OutboundMediaMsg))


def start(params: dict[str, str] | None = None, sid: str = SID) -> str:
    return tm.start_json(sid, "CA1", "AC1", params or {})


def stop(sid: str = SID) -> str:
    return tm.stop_json(sid, "AC1", "CA1", 99)


def media(payload: bytes = b"\xff" * 160, ts: int = 0, sid: str = SID) -> str:
    return tm.inbound_media_json(sid, payload, chunk=1, timestamp_ms=ts, sequence_number=2)


class CreditLog(RealtimePlaybackTracker):
    """A real tracker that also keeps every credit it got."""

    def __init__(self) -> None:
        super().__init__()
        self.credits: list[tuple[str, int, bytes]] = []

    def on_play_bytes(self, item_id: str, item_content_index: int, bytes: bytes) -> None:
        self.credits.append((item_id, item_content_index, bytes))
        super().on_play_bytes(item_id, item_content_index, bytes)


async def run_handler(socket: FakeTwilio, settings: ServerSettings) -> TwilioHandler:
    handler = TwilioHandler(socket, settings)  # type: ignore[arg-type]
    handler.tracker = CreditLog()
    await asyncio.wait_for(handler.run(), timeout=10)
    return handler


async def test_a_whole_call_sends_every_byte_and_credits_exactly_what_was_echoed(
    trace_path: Path,
) -> None:
    socket = FakeTwilio()
    socket.text(tm.connected_json())
    socket.text(start({"strategy": "rechunk"}))
    handler = await run_handler(socket, settings_for(trace_path))
    trace = traces.read(trace_path)
    assert socket.media_bytes() == trace_audio(trace)
    assert socket.close_code == 1000  # the model's stream ended: the handler hung up
    assert handler.stats.bytes_sent == len(trace_audio(trace))
    assert handler.stats.marks_credited_bytes == handler.stats.bytes_sent
    credits: dict[tuple[str, int], bytes] = {}
    assert isinstance(handler.tracker, CreditLog)
    for item_id, index, data in handler.tracker.credits:
        credits[(item_id, index)] = credits.get((item_id, index), b"") + data
    assert credits == {key: trace.item_audio(key) for key in trace.items}  # the real bytes


async def test_the_tracker_learns_mulaw_timing(trace_path: Path) -> None:
    socket = FakeTwilio()
    socket.text(start())
    handler = await run_handler(socket, settings_for(trace_path))
    state = handler.tracker.get_state()
    assert state["current_item_id"] == "i2"
    assert state["elapsed_ms"] == pytest.approx(sum(DELTA_SIZES) / 8)


async def test_custom_parameters_override_the_server_default(trace_path: Path) -> None:
    socket = FakeTwilio()
    socket.text(start({"strategy": "preroll", "threshold_ms": "80", "mark_every_ms": "none"}))
    handler = await run_handler(socket, settings_for(trace_path, strategy="forward"))
    assert handler.call_settings == CallSettings("preroll", 80.0, None, False)
    assert handler.strategy is not None and handler.strategy.name == "preroll"


async def test_invalid_custom_parameters_keep_the_default_and_are_logged(
    trace_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    socket = FakeTwilio()
    socket.text(start({"strategy": "bogus", "threshold_ms": "nan", "align_frames": "maybe"}))
    handler = await run_handler(socket, settings_for(trace_path, strategy="rechunk"))
    assert handler.call_settings == CallSettings("rechunk")
    text = caplog.text
    assert "customParameters.strategy" in text and "customParameters.threshold_ms" in text
    assert "customParameters.align_frames" in text
    assert socket.media_bytes() == trace_audio(traces.read(trace_path))


async def test_stop_before_start_ends_the_call_cleanly(trace_path: Path) -> None:
    socket = FakeTwilio()
    socket.text(tm.connected_json())
    socket.text(stop())
    before = asyncio.all_tasks()
    handler = await run_handler(socket, settings_for(trace_path))
    assert handler.stream_sid is None and socket.sent == []
    assert asyncio.all_tasks() == before


BAD_FRAMES: dict[str, Any] = {
    "oversize": lambda s: s.text(json.dumps({"event": "media", "pad": "x" * 70_000})),
    "binary": lambda s: s.binary(b"\x00\x01binary"),
    "malformed_json": lambda s: s.text("{not json"),
    "unknown_event": lambda s: s.text(json.dumps({"event": "hello", "streamSid": SID})),
    "wrong_stream_sid": lambda s: s.text(media(sid=OTHER_SID)),
    "invalid_fields": lambda s: s.text(json.dumps({"event": "media", "streamSid": SID})),
    "duplicate_start": lambda s: s.text(start()),
}


async def test_every_bad_frame_is_dropped_counted_and_the_call_goes_on(trace_path: Path) -> None:
    socket = FakeTwilio()
    socket.text(media())  # media before start
    socket.text(start())
    for inject in BAD_FRAMES.values():
        inject(socket)
    handler = await run_handler(socket, settings_for(trace_path))
    assert dict(handler.stats.dropped) == {"before_start": 1, **{k: 1 for k in BAD_FRAMES}}
    assert socket.media_bytes() == trace_audio(traces.read(trace_path))


async def test_caller_audio_reaches_the_model(trace_path: Path) -> None:
    socket = FakeTwilio()
    socket.text(start())
    for k in range(10):  # 200 ms of caller audio
        socket.text(media(ts=20 * k))
    handler = await run_handler(socket, settings_for(trace_path))
    assert handler.stats.caller_bytes_to_model == 1600  # 1200 B warm-up, then one 400 B chunk


async def test_media_on_another_track_never_reaches_the_model_as_the_caller(
        trace_path: Path) -> None:  # fmt: skip
    """An outbound-track frame was put on the caller's timeline, and the caller's own frame of the
    same timestamp then dropped as a duplicate: the model heard the agent, not the caller."""
    socket = FakeTwilio()
    socket.text(start())
    for k in range(10):
        socket.text(tm.inbound_media_json(SID, b"\xaa" * 160, chunk=k, timestamp_ms=20 * k,
                                          sequence_number=2 * k + 2, track="outbound"))
        socket.text(tm.inbound_media_json(SID, b"\x22" * 160, chunk=k, timestamp_ms=20 * k,
                                          sequence_number=2 * k + 3))
    handler = await run_handler(socket, settings_for(trace_path))
    assert handler.stats.caller_bytes_to_model == 1600  # the caller's 200 ms, as above
    assert handler.stats.dropped["wrong_track"] == 10
    assert handler.inbound.stats.duplicate_frames == 0


class FailingReplay(TraceReplayModel):
    async def _deliver(self, event: Any) -> None:
        if event.type == "audio":
            raise RuntimeError("model broke")
        await super()._deliver(event)


@pytest.mark.parametrize("ending", ["stop", "disconnect", "session_error", "model_end"])
async def test_no_task_is_left_running_after_the_call(trace_path: Path, ending: str) -> None:
    settings = settings_for(trace_path)
    settings = ServerSettings(
        call=settings.call, replay_trace=trace_path, replay_speed=0.5 if ending in ("stop",
        "disconnect") else SPEED,
    )  # fmt: skip
    models = ModelChoice(settings)
    if ending == "session_error":
        models.new_model = lambda: FailingReplay(traces.read(trace_path), speed=SPEED)  # type: ignore[method-assign]
    socket = FakeTwilio()
    socket.text(start())
    before = asyncio.all_tasks()
    handler = TwilioHandler(socket, settings, models=models)  # type: ignore[arg-type]
    running = asyncio.create_task(handler.run())
    await asyncio.sleep(0.15)
    if ending == "stop":
        socket.text(stop())
    elif ending == "disconnect":
        socket.disconnect()
    await asyncio.wait_for(running, timeout=10)
    assert asyncio.all_tasks() == before
    if ending == "session_error":
        assert socket.close_code == 1011


# ---------------------------------------------------------------------- real loopback calls


@pytest.mark.parametrize("strategy", [s for s in STRATEGY_NAMES])
async def test_loopback_call_conserves_bytes_for_each_strategy(
    trace_path: Path, strategy: str
) -> None:
    async with serve_in_background(settings_for(trace_path)) as server:
        peer = TwilioPeer(server.ws_url, custom_parameters={"strategy": strategy}, speed=SPEED)
        recording = await asyncio.wait_for(peer.run(), timeout=15)
        (handler,) = server.app.state.finished_calls
    trace = traces.read(trace_path)
    assert recording.closed_by == "server"
    assert recording.received_audio() == trace_audio(trace)
    assert recording.protocol_errors == []
    assert handler.strategy.name == strategy
    assert handler.stats.marks_credited_bytes == len(trace_audio(trace))
    assert not [e for e in recording.echoes if e.cleared]


async def test_barge_in_clears_and_the_model_truncates_at_what_was_heard(tmp_path: Path) -> None:
    path = tmp_path / "barge.jsonl.gz"
    traces.write(speech_trace(interrupt_second=True), path)
    async with serve_in_background(settings_for(path, strategy="preroll", threshold_ms=200)) as srv:
        recording = await asyncio.wait_for(TwilioPeer(srv.ws_url, speed=SPEED).run(), timeout=15)
        (handler,) = srv.app.state.finished_calls
    assert [a.kind for a in recording.arrivals].count("clear") == 1
    assert any(echo.cleared for echo in recording.echoes)
    first_item_bytes = sum(DELTA_SIZES)
    heard_i2_bytes = sum(len(p) for _, _, p in recording.segments) - first_item_bytes
    sent_i2_bytes = handler.stats.bytes_sent - first_item_bytes
    assert heard_i2_bytes < sent_i2_bytes  # the clear cut the caller off
    assert isinstance(handler.model, TraceReplayModel)
    # the barge-in comes before i2's first mark echoes (its pre-roll is one 222 ms message): the
    # tracker names i2 from when it started playing, so the model truncates i2, never keeps it
    # whole (it named the finished i1 before, and the SDK then sends no truncate at all)
    (truncation,) = handler.model.truncations
    assert truncation.item_id == "i2" and truncation.heard_ms is not None
    believed_bytes = truncation.heard_ms * 8
    assert believed_bytes <= heard_i2_bytes  # never credited audio the caller did not hear
    assert handler.stats.marks_credited_bytes == first_item_bytes + believed_bytes


async def misbehave(url: str) -> None:
    """A call that sends every kind of bad frame, then hangs up."""
    async with connect(url, max_size=None) as ws:
        await ws.send(media())  # before start
        await ws.send(start(sid=OTHER_SID))
        await ws.send(json.dumps({"event": "media", "pad": "x" * 70_000}))
        await ws.send(b"\x00binary")
        await ws.send("{not json")
        await ws.send(json.dumps({"event": "hello", "streamSid": OTHER_SID}))
        await ws.send(media(sid=SID))  # someone else's stream
        await ws.send(json.dumps({"event": "mark", "streamSid": OTHER_SID}))
        await asyncio.sleep(0.05)
        await ws.send(stop(OTHER_SID))
        with_timeout = asyncio.wait_for(ws.wait_closed(), timeout=5)
        await with_timeout


async def stop_before_start(url: str) -> None:
    async with connect(url) as ws:
        await ws.send(tm.connected_json())
        await ws.send(stop(OTHER_SID))
        await asyncio.wait_for(ws.wait_closed(), timeout=5)


async def test_bad_calls_beside_a_healthy_call_leave_it_byte_exact(trace_path: Path) -> None:
    async with serve_in_background(settings_for(trace_path, strategy="rechunk")) as server:
        peer = TwilioPeer(server.ws_url, speed=SPEED)
        healthy = asyncio.create_task(peer.run())
        await asyncio.sleep(0.02)
        await asyncio.gather(misbehave(server.ws_url), stop_before_start(server.ws_url))
        recording = await asyncio.wait_for(healthy, timeout=15)
        calls = list(server.app.state.finished_calls)
    assert recording.received_audio() == trace_audio(traces.read(trace_path))
    bad = next(h for h in calls if h.stream_sid == OTHER_SID)
    assert dict(bad.stats.dropped) == {
        "before_start": 1,
        "oversize": 1,
        "binary": 1,
        "malformed_json": 1,
        "unknown_event": 1,
        "wrong_stream_sid": 1,
        "invalid_fields": 1,
    }
    assert len(calls) == 3

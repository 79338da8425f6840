"""The Realtime emulator: a local server that the SDK's own ``OpenAIRealtimeWebSocketModel`` runs
against.

Sans-I/O tests drive ``EmulatedSession`` directly (every server event it makes must pass the SDK's
own validation); socket tests run a real ``RealtimeSession`` over a real WebSocket on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
from pathlib import Path
from typing import Any, ClassVar

import pydantic
import pytest
from agents.realtime import RealtimeAgent, RealtimeRunner, RealtimeSession
from agents.realtime.model import RealtimeModelConfig, RealtimePlaybackTracker
from agents.realtime.openai_realtime import (
    OpenAIRealtimeWebSocketModel,
    get_server_event_type_adapter,
)
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from labkit.live.models import initial_model_settings
from labkit.live.realtime_emulator import EMULATOR_API_KEY, EmulatedSession, RealtimeEmulator
from labkit.live.realtime_emulator import server as emulator_server
from labkit.live.settings import ServerSettings
from labkit.traces import Trace, TraceEvent, audio_event, item_event, make_header, read, shipped
from labkit.traces import turn_event as turn
from labkit.traces.realtime_log import SERVER_EVENT_NAMES

pytestmark = pytest.mark.anyio
SPEED = 10.0
TIMEOUT_S = 20.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def two_turns(*, interrupt_second: bool = False) -> Trace:
    """Two responses of irregular deltas; optionally the caller barges in on the second."""
    events: list[TraceEvent] = []
    for n, (response, item, t0) in enumerate([("r1", "i1", 0.0), ("r2", "i2", 400.0)]):
        events.append(turn("turn_started", t0, response))
        events.append(
            TraceEvent(
                t0,
                "transcript_delta",
                {"response_id": response, "item_id": item, "delta": "hi"},
            )
        )
        for k, size in enumerate((480, 96, 1200, 160, 333)):
            if interrupt_second and n == 1 and k == 3:
                events.append(item_event("audio_interrupted", t0 + 30.0 * k, item, 0))
                break
            events.append(audio_event(t0 + 30.0 * k, response, item, 0, bytes([k + 16 * n]) * size))
        else:
            events.append(item_event("audio_done", t0 + 160.0, item, 0))
        events.append(turn("turn_ended", t0 + 170.0, response))
    return Trace(make_header("synthetic", "emulator tests"), events)


UPDATE = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "audio": {
            "output": {"format": {"type": "audio/pcmu"}},
            "input": {"format": {"type": "audio/pcmu"}},
        },
    },
}


def started(trace: Trace) -> EmulatedSession:
    session = EmulatedSession(trace)
    session.opening()
    session.receive(json.dumps(UPDATE), 0.0)
    return session


def validate(event: dict[str, Any]) -> Any:
    """What the SDK's model does first with every server event (a GA type, else an error)."""
    return get_server_event_type_adapter().validate_python(event)


# ---------------------------------------------------------------------- sans-I/O session


def test_the_handshake_is_session_created_then_updated_with_the_merged_session() -> None:
    session = EmulatedSession(two_turns())
    (created,) = session.opening()
    assert created["type"] == "session.created"
    assert created["session"]["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session.next_due_ms() is None  # nothing plays before the client configured the session
    (updated,) = session.receive(json.dumps(UPDATE), 0.0)
    assert updated["type"] == "session.updated"
    assert updated["session"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}  # no rate left
    assert updated["session"]["audio"]["output"]["voice"] == "alloy"  # kept from the defaults
    assert session.next_due_ms() == 0.0
    for event in (created, updated):
        validate(event)


def test_the_replay_speaks_ga_events_the_sdk_validates_in_trace_order() -> None:
    trace = read(shipped("barge_in"))
    session = started(trace)
    sent = session.replay_due(trace.duration_ms)
    assert session.finished and session.next_due_ms() is None
    for event in sent:
        validate(event)
    names = SERVER_EVENT_NAMES["ga"]
    deltas = [e for e in sent if e["type"] == names["audio"]]
    assert b"".join(base64.b64decode(e["delta"]) for e in deltas) == b"".join(
        e.audio for e in trace.audio_events()
    )
    wanted = {
        "turn_started": "response.created",
        "turn_ended": "response.done",
        "audio_interrupted": "input_audio_buffer.speech_started",
        **names,
    }
    assert [wanted[e.type] for e in trace.events] == [
        e["type"] for e in sent if e["type"] in wanted.values()
    ]
    done = [e for e in sent if e["type"] == "response.done"]
    assert [d["response"]["status"] for d in done] == ["completed", "cancelled", "completed"]
    assert done[1]["response"]["status_details"]["reason"] == "turn_detected"
    assert session.replay_notes == []  # the trace interrupts the item that spoke last


def test_the_sdk_accepts_no_beta_audio_name() -> None:
    """Why the emulator speaks GA names only: SDK 0.24 validates against the GA union."""
    beta = {
        "type": "response.audio.delta",
        "event_id": "e1",
        "response_id": "r",
        "item_id": "i",
        "output_index": 0,
        "content_index": 0,
        "delta": "AA==",
    }
    with pytest.raises(pydantic.ValidationError):
        validate(beta)
    validate({**beta, "type": SERVER_EVENT_NAMES["ga"]["audio"]})


def test_bad_client_events_get_an_error_naming_the_code_and_param() -> None:
    session = started(two_turns())
    session.replay_due(100.0)  # i1 has sent 480 + 96 + 1200 + 160 bytes (242 ms) by t = 90 ms
    bad = [
        ("{not json", "invalid_json", None),
        ('["a list"]', "invalid_json", None),
        ('{"no": "type"}', "missing_type", "type"),
        ('{"type": "response.explode"}', "invalid_request_error", "type"),
        ('{"type": "input_audio_buffer.append"}', "missing_required_parameter", "audio"),
        ('{"type": "input_audio_buffer.append", "audio": 5}', "invalid_type", "audio"),
        (
            '{"type": "input_audio_buffer.append", "audio": "not base64!"}',
            "invalid_request_error",
            "audio",
        ),
        (
            '{"type": "conversation.item.truncate", "item_id": "nope", "content_index": 0, '
            '"audio_end_ms": 10}',
            "item_not_found",
            "item_id",
        ),
        (
            '{"type": "conversation.item.truncate", "item_id": "i1", "content_index": 0, '
            '"audio_end_ms": 9999}',
            "invalid_value",
            "audio_end_ms",
        ),
        (
            '{"type": "conversation.item.truncate", "item_id": "i1", "content_index": 1, '
            '"audio_end_ms": 10}',
            "invalid_value",
            "content_index",
        ),
        (
            '{"type": "conversation.item.truncate", "item_id": "i1", "content_index": true, '
            '"audio_end_ms": 10}',
            "invalid_type",
            "content_index",
        ),
        (
            '{"type": "response.cancel", "response_id": "r9"}',
            "response_cancel_not_active",
            "response_id",
        ),
        ('{"type": "input_audio_buffer.commit"}', "input_audio_buffer_commit_empty", None),
        ('{"type": "response.create", "event_id": "c7"}', "unsupported_by_emulator", None),
        (
            '{"type": "session.update", "session": {"type": "transcription"}}',
            "invalid_request_error",
            "session.type",
        ),
        (
            '{"type": "session.update", "session": {"type": "realtime", "audio": {"output": '
            '{"format": {"type": "audio/pcm", "rate": 24000}}}}}',
            "unsupported_audio_format",
            "session.audio.output.format",
        ),
    ]
    for text, code, param in bad:
        (reply,) = session.receive(text, 50.0)
        validate(reply)
        assert reply["type"] == "error"
        assert (reply["error"]["code"], reply["error"]["param"]) == (code, param), text
    assert [e.code for e in session.protocol_errors] == [code for _, code, _ in bad]
    assert session.protocol_errors[-3].message.startswith("response.create")
    assert (
        session.receive('{"type": "response.create", "event_id": "c7"}', 0)[0]["error"]["event_id"]
        == "c7"
    )
    assert session.refuse_binary(12, 60.0)[0]["error"]["message"].startswith("binary frame")
    # the session goes on: a valid truncate is answered and recorded
    (truncated,) = session.receive(
        '{"type": "conversation.item.truncate", "item_id": "i1", "content_index": 0, '
        '"audio_end_ms": 120}',
        70.0,
    )
    assert truncated["type"] == "conversation.item.truncated" and truncated["audio_end_ms"] == 120
    (truncation,) = session.truncations
    assert (truncation.item_id, truncation.audio_end_ms, truncation.sent_ms) == ("i1", 120, 242.0)


def test_response_cancel_ends_the_response_and_drops_the_rest_of_it() -> None:
    trace = two_turns()
    session = started(trace)
    before = session.replay_due(35.0)  # r1 has sent two deltas
    replies = session.receive('{"type": "response.cancel"}', 40.0)
    assert [e["type"] for e in replies][-1] == "response.done"
    assert replies[-1]["response"]["status_details"] == {
        "type": "cancelled",
        "reason": "client_cancelled",
    }
    after = session.replay_due(trace.duration_ms)
    for event in before + replies + after:
        validate(event)
    assert all(e.get("response_id") != "r1" for e in after)  # no audio, done or end of r1 follows
    assert sum(e["type"] == "response.done" for e in after) == 1  # r2's own
    assert session.cancelled_responses == ["r1"]
    (again,) = session.receive('{"type": "response.cancel", "response_id": "r1"}', 500.0)
    assert again["error"]["code"] == "response_cancel_not_active"


def test_caller_audio_is_counted_and_pcm16_must_be_whole_samples() -> None:
    session = started(two_turns())
    append = {
        "type": "input_audio_buffer.append",
        "audio": base64.b64encode(b"\xff" * 161).decode(),
    }
    assert session.receive(json.dumps(append), 0.0) == []
    assert session.input_audio_bytes == 161
    (committed,) = session.receive('{"type": "input_audio_buffer.commit"}', 0.0)
    validate(committed)
    pcm = {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}},
        },
    }
    session.receive(json.dumps(pcm), 0.0)
    (error,) = session.receive(json.dumps(append), 0.0)
    assert error["error"]["param"] == "audio" and session.input_audio_bytes == 161


# ---------------------------------------------------------------------- over a real WebSocket


def model_config(
    url: str, tracker: RealtimePlaybackTracker, **settings: Any
) -> RealtimeModelConfig:
    model_settings = initial_model_settings(ServerSettings())
    model_settings["audio"]["input"].update(settings)  # type: ignore[index]
    return {
        "url": url,
        "api_key": EMULATOR_API_KEY,
        "initial_model_settings": model_settings,
        "playback_tracker": tracker,
    }


async def open_session(
    url: str, tracker: RealtimePlaybackTracker, **settings: Any
) -> RealtimeSession:
    runner = RealtimeRunner(RealtimeAgent(name="test"), model=OpenAIRealtimeWebSocketModel())
    return await runner.run(model_config=model_config(url, tracker, **settings))


async def test_the_sdk_model_delivers_the_trace_and_the_stream_ends_with_it() -> None:
    trace = two_turns()
    tracker = RealtimePlaybackTracker()
    before = asyncio.all_tasks()
    async with RealtimeEmulator(trace, speed=SPEED, close_when_done=True) as emulator:
        session = await open_session(emulator.url, tracker)
        seen: list[TraceEvent] = []
        async with session:
            async with asyncio.timeout(TIMEOUT_S):
                async for event in session:
                    if event.type == "error":
                        raise AssertionError(f"the SDK refused a server event: {event.error}")
                    if event.type == "raw_model_event" and event.data.type != "raw_server_event":
                        data = event.data
                        kind = {
                            "audio_done": "audio_done",
                            "turn_started": "turn_started",
                            "turn_ended": "turn_ended",
                            "audio": "audio",
                            "transcript_delta": "transcript_delta",
                        }.get(data.type)
                        if kind:
                            seen.append(TraceEvent(0, kind, {}, getattr(data, "data", b"")))
        (emulated,) = emulator.sessions
    assert [e.type for e in seen] == [e.type for e in trace.events]
    assert b"".join(e.audio for e in seen) == b"".join(e.audio for e in trace.audio_events())
    assert tracker.get_state()["current_item_id"] is None  # nothing credited: nothing was heard
    tracker.on_play_bytes("i1", 0, b"\xff" * 160)
    assert tracker.get_state()["elapsed_ms"] == 20.0  # session.updated gave it mu-law
    assert emulated.protocol_errors == [] and emulated.client_events["session.update"] == 2
    assert asyncio.all_tasks() == before


async def test_interrupt_truncates_at_the_tracker_and_cancels_the_response() -> None:
    """``session.interrupt()`` with server VAD not cancelling: truncate, then response.cancel."""
    trace = two_turns()
    tracker = RealtimePlaybackTracker()
    async with RealtimeEmulator(trace, speed=1.0) as emulator:
        session = await open_session(
            emulator.url,
            tracker,
            turn_detection={"type": "server_vad", "interrupt_response": False},
        )
        kinds: list[str] = []
        async with session:
            async with asyncio.timeout(TIMEOUT_S):
                async for event in session:
                    kinds.append(event.type)
                    if event.type == "audio" and event.item_id == "i1" and "audio" in kinds[:-1]:
                        tracker.on_play_bytes("i1", 0, b"\xff" * 400)  # the caller heard 50 ms
                        await session.interrupt()
                    if event.type == "agent_end" and kinds.count("agent_end") == 2:
                        break
        (emulated,) = emulator.sessions
        while emulator.live_connections:  # the session's close reaches the server
            await asyncio.sleep(0.01)
    (truncation,) = emulated.truncations
    assert (truncation.item_id, truncation.audio_end_ms) == ("i1", 50)
    assert emulated.cancelled_responses == ["r1"]
    assert emulated.protocol_errors == []
    assert kinds.count("audio_interrupted") == 1
    after_interrupt = kinds[kinds.index("audio_interrupted") :]
    first_end = after_interrupt.index("agent_end")
    assert "audio" not in after_interrupt[:first_end]  # r1 said nothing more


class TrackerLog(RealtimePlaybackTracker):
    """A real tracker that keeps what it reported when each interruption reset it (and every
    instance made, for tests that let the handler make its own)."""

    made: ClassVar[list[TrackerLog]] = []

    def __init__(self) -> None:
        super().__init__()
        self.last_state: Any = None
        self.at_interruptions: list[Any] = []
        TrackerLog.made.append(self)

    def get_state(self) -> Any:
        self.last_state = super().get_state()
        return self.last_state

    def on_interrupted(self) -> None:
        self.at_interruptions.append(self.last_state)
        super().on_interrupted()


async def test_a_barge_in_in_the_trace_is_vad_speech_started(tmp_path: Path) -> None:
    trace = two_turns(interrupt_second=True)
    # speed 2: the test credits each delta long before the barge-in 20 ms later (trace time)
    async with RealtimeEmulator(trace, speed=2.0, close_when_done=True) as emulator:
        tracker = TrackerLog()
        session = await open_session(emulator.url, tracker)
        interrupted = []
        async with session:
            async with asyncio.timeout(TIMEOUT_S):
                async for event in session:
                    if event.type == "audio":
                        tracker.on_play_bytes(event.item_id, event.content_index, event.audio.data)
                    if event.type == "audio_interrupted":
                        interrupted.append(event.item_id)
    assert interrupted == ["i2"]
    (truncation,) = emulator.sessions[0].truncations
    (reported, *_) = tracker.at_interruptions  # the SDK resets the tracker again on close
    assert reported["current_item_id"] == truncation.item_id == "i2"
    assert truncation.audio_end_ms == round(reported["elapsed_ms"])  # what the tracker said
    assert 0 < truncation.audio_end_ms <= (480 + 96 + 1200) // 8  # at most what was sent


async def test_the_handshake_refuses_other_keys_and_paths_and_never_logs_a_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "placeholder-key-refused-and-never-logged-0123"
    caplog.set_level(logging.DEBUG)
    async with RealtimeEmulator(two_turns()) as emulator:
        with pytest.raises(InvalidStatus) as refused:
            await connect(emulator.url, additional_headers={"Authorization": f"Bearer {secret}"})
        assert refused.value.response.status_code == 401
        with pytest.raises(InvalidStatus) as lost:
            await connect(
                emulator.url.replace("/v1/realtime", "/nope"),
                additional_headers={"Authorization": f"Bearer {EMULATOR_API_KEY}"},
            )
        assert lost.value.response.status_code == 404
        assert emulator.refused_handshakes == 2 and emulator.sessions == []
    server_side = [r for r in caplog.records if not r.name.startswith("websockets.client")]
    assert server_side and not any(secret in r.getMessage() for r in server_side)
    assert "401" in caplog.text


async def test_protocol_errors_are_logged_and_the_session_goes_on(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.WARNING)
    headers = {"Authorization": f"Bearer {EMULATOR_API_KEY}"}
    emulator = RealtimeEmulator(two_turns(), speed=SPEED, log_dir=tmp_path)
    async with emulator, connect(emulator.url, additional_headers=headers) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
        await ws.send('{"type": "conversation.item.truncate", "item_id": 3}')
        error = json.loads(await ws.recv())
        assert error["type"] == "error" and error["error"]["param"] == "item_id"
        await ws.send(b"\x00\x01")
        assert json.loads(await ws.recv())["error"]["message"].startswith("binary frame")
        await ws.send(json.dumps(UPDATE))
        assert json.loads(await ws.recv())["type"] == "session.updated"
        first = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
        assert first["type"] == "response.created"
    assert "client conversation.item.truncate refused (invalid_type)" in caplog.text
    assert "binary frame of 2 bytes" in caplog.text
    log_lines = (tmp_path / "session-1.jsonl").read_text().splitlines()
    assert [json.loads(line)["event"]["type"] for line in log_lines[:4]] == [
        "session.created",
        "error",
        "error",
        "session.updated",
    ]


def test_the_emulator_binds_loopback_only_and_needs_a_positive_speed() -> None:
    with pytest.raises(ValueError, match="loopback"):
        RealtimeEmulator(two_turns(), host="0.0.0.0")
    for speed in (0.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="RealtimeEmulator: speed must be a finite number > 0"):
            RealtimeEmulator(two_turns(), speed=speed)


async def test_labkit_emulate_serves_a_trace_to_the_sdk_model(tmp_path: Path) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    emulate = subprocess.Popen(
        [sys.executable, "-m", "labkit", "emulate", "bursty", "--speed", "20", "--port", str(port),
         "--close-when-done", "--log", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ),
    )  # fmt: skip
    try:
        assert emulate.stdout is not None
        banner = ""
        while "Realtime emulator on" not in banner:  # after the log lines (merged stderr)
            banner = await asyncio.wait_for(asyncio.to_thread(emulate.stdout.readline), 60)
            assert banner, "labkit emulate ended before serving"
        assert f"ws://127.0.0.1:{port}/v1/realtime" in banner
        session = await open_session(
            f"ws://127.0.0.1:{port}/v1/realtime", RealtimePlaybackTracker()
        )
        audio = b""
        async with session, asyncio.timeout(TIMEOUT_S):
            async for event in session:
                if event.type == "audio":
                    audio += event.audio.data
    finally:
        emulate.send_signal(signal.SIGINT)
        output, _ = emulate.communicate(timeout=30)
    assert emulate.returncode == 0, output
    assert audio == b"".join(e.audio for e in read(shipped("bursty")).audio_events())
    assert (tmp_path / "session-1.jsonl").is_file()


async def test_a_long_running_emulator_keeps_only_its_latest_sessions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every session was kept for the server's life: ~4 KiB more per call, without end, behind
    ``labkit serve --realtime-emulator``."""
    monkeypatch.setattr(emulator_server, "SESSIONS_KEPT", 2)
    async with RealtimeEmulator(two_turns()) as emulator:
        for _ in range(3):
            async with connect(emulator.url, additional_headers={
                    "Authorization": f"Bearer {EMULATOR_API_KEY}"}) as ws:  # fmt: skip
                await ws.recv()  # session.created: the session is being served
        assert [session.number for session in emulator.sessions] == [2, 3]


def test_a_session_update_of_a_shape_no_client_sends_is_refused_and_the_session_goes_on(
) -> None:
    """``"audio": 5`` was merged, then the next append raised TypeError and the connection ended
    with 1011 and no error event; a 600-deep session exhausted the stack in the merge; NaN was
    merged and echoed as JSON no strict client reads; a client's own event names each took a
    counter and every error a list entry, without bound."""
    session = started(two_turns())
    deep: dict[str, Any] = {}
    for _ in range(600):
        deep = {"x": deep}
    for update, code in [({"audio": 5}, "invalid_type"),
                         ({"audio": {"input": None}}, "invalid_type"),
                         ({"audio": {"type": "x"}}, "invalid_type"),
                         ({"deep": deep}, "invalid_request_error")]:  # fmt: skip
        text = json.dumps({"type": "session.update", "session": {"type": "realtime", **update}})
        (reply,) = session.receive(text, 1.0)
        assert reply["type"] == "error" and reply["error"]["code"] == code, update
    assert session.receive('{"type": "session.update", "session": {"speed": NaN}}', 1.0)[0][
        "error"]["code"] == "invalid_json"  # fmt: skip
    append = {"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\x00" * 4).decode()}
    assert session.receive(json.dumps(append), 2.0) == []  # the session still takes audio
    for n in range(150):
        session.receive(json.dumps({"type": f"mine.{n}"}), 3.0)
    assert session.client_events["(other)"] == 150 and len(session.client_events) < 10
    assert len(session.protocol_errors) == 100 and session.protocol_errors_dropped > 50


async def test_old_logs_are_never_overwritten_and_a_duplicate_key_header_is_a_401(
    tmp_path: Path,
) -> None:
    """A log directory holding session-1.jsonl from an earlier run failed every new session after
    its handshake (1011); two Authorization headers raised inside the handshake (HTTP 500)."""
    (tmp_path / "session-1.jsonl").write_text("an earlier run's log\n")
    key = {"Authorization": f"Bearer {EMULATOR_API_KEY}"}
    async with RealtimeEmulator(two_turns(), log_dir=tmp_path) as emulator:
        async with connect(emulator.url, additional_headers=key) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
        with pytest.raises(InvalidStatus) as refused:
            await connect(emulator.url, additional_headers=[
                ("Authorization", f"Bearer {EMULATOR_API_KEY}"),
                ("Authorization", "Bearer sk-not-a-key")])  # fmt: skip
        assert refused.value.response.status_code == 401
    assert (tmp_path / "session-1.jsonl").read_text() == "an earlier run's log\n"
    assert "session.created" in (tmp_path / "session-2.jsonl").read_text()


def test_a_response_cancelled_before_its_first_delta_sends_nothing_more() -> None:
    """Cancelled between response.created and its first audio, the response still sent its
    item and its audio.done (with an empty response_id), after its own response.done."""
    events = [turn("turn_started", 0.0, "r1"), audio_event(50.0, "r1", "i1", 0, b"\x01" * 160),
              item_event("audio_done", 100.0, "i1", 0), turn("turn_ended", 110.0, "r1")]
    session = started(Trace(make_header("synthetic", "cancelled early"), events))
    assert [event["type"] for event in session.replay_due(10.0)] == ["response.created"]
    cancelled = session.receive(json.dumps({"type": "response.cancel"}), 20.0)
    assert [event["type"] for event in cancelled] == ["response.done"]
    assert session.replay_due(1000.0) == []

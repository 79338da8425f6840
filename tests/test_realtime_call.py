"""The whole live path offline: Twilio emulator -> ``labkit serve`` app -> the SDK's own
``OpenAIRealtimeWebSocketModel`` -> the Realtime emulator, every hop a real WebSocket on loopback.

Bytes arrive exact and once, marks are credited exactly, a barge-in's truncation reaches the
emulator at the audio end the playback tracker reported, the session is closed and every task
cancelled at the end, and a trace recorded on this path (or imported from the emulator's log)
equals the trace replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from agents.realtime.model import RealtimePlaybackTracker
from agents.realtime.openai_realtime import OpenAIRealtimeWebSocketModel
from test_realtime_emulator import TrackerLog

import labkit.live.handler as handler_module
from labkit.cli import main as cli_main
from labkit.live.call import loopback_call, with_barge_in
from labkit.live.models import ModelChoice
from labkit.live.peer import TwilioPeer
from labkit.live.realtime_emulator import EMULATOR_API_KEY, RealtimeEmulator
from labkit.live.server import serve_in_background
from labkit.live.settings import CallSettings, ServerSettings
from labkit.traces import Trace, TraceEvent, read, shipped, write
from labkit.traces.realtime_log import SERVER_EVENT_NAMES, import_log

pytestmark = pytest.mark.anyio
SPEED = 8.0
FAKE_KEY = "placeholder-key-for-tests-that-must-never-be-logged-0123"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def item_audio(trace: Trace) -> bytes:
    return b"".join(trace.item_audio(key) for key in trace.items)


def content(events: list[TraceEvent]) -> list[tuple[str, dict[str, Any], bytes]]:
    """A trace's events without their times: what and in which order."""
    return [(event.type, event.fields, event.audio) for event in events]


@contextlib.asynccontextmanager
async def served_through_the_sdk_model(
    name: str, strategy: str, tmp_path: Path, **emulator_options: Any
) -> AsyncIterator[tuple[Trace, RealtimeEmulator, Any]]:
    """``labkit serve`` replaying shipped trace ``name`` with ``strategy``, its model the SDK's
    own against a Realtime emulator of the same trace: (the trace, the emulator, the server)."""
    trace = read(shipped(name))
    path = tmp_path / f"{name}.jsonl.gz"
    write(trace, path)
    async with RealtimeEmulator(trace, speed=SPEED, **emulator_options) as emulator:
        settings = ServerSettings(
            call=CallSettings(strategy=strategy),
            replay_trace=path,
            replay_speed=SPEED,
            realtime_emulator_url=emulator.url,
        )
        async with serve_in_background(settings) as server:
            yield trace, emulator, server


async def the_finished_call(server: Any) -> Any:
    """The handler of the server's one call, once it has finished."""
    while not server.app.state.finished_calls:
        await asyncio.sleep(0.01)
    (handler,) = server.app.state.finished_calls
    return handler


# ---------------------------------------------------------------------- the model choice


def test_the_emulator_gets_the_placeholder_key_never_the_real_one() -> None:
    settings = ServerSettings(openai_api_key=FAKE_KEY, realtime_emulator_url="ws://127.0.0.1:9/x")
    models = ModelChoice(settings)
    config = models.model_config(RealtimePlaybackTracker())
    assert config["api_key"] == EMULATOR_API_KEY and config["url"] == "ws://127.0.0.1:9/x"
    assert FAKE_KEY not in repr(config) and FAKE_KEY not in models.description
    assert isinstance(models.new_model(), OpenAIRealtimeWebSocketModel)
    assert models.is_replay and models.trace is None  # the emulator holds the trace
    assert "Realtime emulator" in models.description


# ---------------------------------------------------------------------- whole calls


@pytest.mark.parametrize("strategy", ["forward", "rechunk", "paced", "preroll", "adaptive"])
async def test_bytes_arrive_exact_and_marks_are_credited_through_the_sdk_model(
    strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)  # the SDK must not fall back to it
    result = await loopback_call(
        shipped("tiny_deltas"), strategy, 60, speed=SPEED, realtime_emulator=True
    )
    recording, stats, realtime = result.recording, result.handler_stats, result.realtime
    assert realtime is not None and realtime.protocol_errors == []
    assert stats.session_errors == 0  # the SDK validated every server event the emulator sent
    assert recording.protocol_errors == []
    assert recording.received_audio() == item_audio(result.trace)
    assert stats.model_audio_bytes == stats.bytes_sent == recording.media_bytes
    assert not any(echo.cleared for echo in recording.echoes)
    assert stats.marks_sent == len(recording.echoes) == stats.marks_credited
    assert stats.marks_credited_bytes == recording.media_bytes
    # the caller's audio went the other way, every byte: Twilio -> handler -> SDK -> emulator
    assert realtime.input_audio_bytes == stats.caller_bytes_to_model > 0
    assert realtime.client_events["session.update"] == 2
    assert recording.closed_by == "peer"  # a Realtime session does not end: the caller hangs up


async def test_barge_in_truncation_reaches_the_emulator_at_the_trackers_audio_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(handler_module, "RealtimePlaybackTracker", TrackerLog)
    TrackerLog.made.clear()
    trace = read(shipped("bursty"))
    first = trace.items[0]
    barge_in_ms = float(trace.arrivals_ms(first)[0]) + 600.0
    result = await loopback_call(
        shipped("bursty"),
        "forward",
        50,
        speed=4.0,
        barge_in_at_ms=barge_in_ms,
        realtime_emulator=True,
    )
    realtime, recording, stats = result.realtime, result.recording, result.handler_stats
    assert realtime is not None and realtime.protocol_errors == [] and stats.session_errors == 0
    (truncation,) = realtime.truncations
    (tracker,) = TrackerLog.made
    reported = tracker.at_interruptions[0]  # the SDK resets the tracker again when it closes
    assert reported["current_item_id"] == truncation.item_id == first[0]
    assert truncation.audio_end_ms == round(reported["elapsed_ms"])  # the tracker's audio end
    later_bytes = sum(len(result.trace.item_audio(key)) for key in result.trace.items[1:])
    heard_first = sum(len(segment[2]) for segment in recording.segments) - later_bytes
    assert 0 < truncation.audio_end_ms * 8 <= heard_first  # never beyond what the caller heard
    assert truncation.audio_end_ms < truncation.sent_ms  # the caller was cut off mid-item
    kinds = [arrival.kind for arrival in recording.arrivals]
    assert kinds.count("clear") == 1
    assert stats.marks_credited_bytes <= truncation.audio_end_ms * 8 + later_bytes + 8 * 50


async def test_the_session_is_closed_and_every_task_cancelled_when_the_caller_hangs_up(
    tmp_path: Path,
) -> None:
    before = asyncio.all_tasks()
    async with served_through_the_sdk_model("multi_turn", "paced", tmp_path) as (
        trace, emulator, server,
    ):  # fmt: skip
        peer = TwilioPeer(server.ws_url, speed=SPEED)
        call = asyncio.create_task(peer.run())
        await asyncio.sleep(1.0)  # mid-call: the model is speaking
        assert emulator.live_connections == 1
        peer.hangup()
        recording = await asyncio.wait_for(call, timeout=15)
        handler = await the_finished_call(server)
        for _ in range(200):  # the session's close reaches the emulator as a close frame
            if not emulator.live_connections:
                break
            await asyncio.sleep(0.01)
        assert emulator.live_connections == 0
        assert isinstance(handler.model, OpenAIRealtimeWebSocketModel)
    assert recording.closed_by == "peer"
    assert 0 < handler.stats.bytes_sent < len(item_audio(trace))
    assert emulator.sessions[0].protocol_errors == []
    assert asyncio.all_tasks() == before


async def test_a_trace_recorded_through_the_sdk_model_equals_the_replayed_trace(
    tmp_path: Path,
) -> None:
    source = read(shipped("barge_in"))  # turns, transcripts, an interruption
    speed = 4.0
    result = await loopback_call(
        shipped("barge_in"),
        "rechunk",
        50,
        speed=speed,
        realtime_emulator=True,
        record_dir=tmp_path / "recorded",
        realtime_log_dir=tmp_path / "log",
    )
    (recorded_path,) = (tmp_path / "recorded").iterdir()
    recorded = read(recorded_path)
    assert content(recorded.events) == content(source.events)  # same audio, same order
    assert recorded.header["recorder"]["model"].startswith("SDK OpenAI model, Realtime emulator")
    # The emulator's own log of what it sent imports to the same trace, at the same times
    (log_path,) = (tmp_path / "log").iterdir()
    imported = import_log(log_path)
    assert content(imported.trace.events) == content(source.events)
    lateness_ms = [
        i.t_ms - s.t_ms for i, s in zip(imported.trace.events, source.events, strict=True)
    ]
    assert min(lateness_ms) >= 0 and max(lateness_ms) < 100.0 * speed  # sent on schedule
    assert imported.dialects == {"ga"}
    assert result.realtime is not None and len(result.realtime.truncations) == 1


async def test_a_log_with_beta_event_names_imports_to_the_same_trace(tmp_path: Path) -> None:
    trace = with_barge_in(read(shipped("realtime_jitter")), 1500.0)
    async with RealtimeEmulator(trace, speed=SPEED, log_dir=tmp_path, close_when_done=True) as emu:
        from agents.realtime import RealtimeAgent, RealtimeRunner

        from labkit.live.models import initial_model_settings

        runner = RealtimeRunner(RealtimeAgent(name="t"), model=OpenAIRealtimeWebSocketModel())
        config = {
            "url": emu.url,
            "api_key": EMULATOR_API_KEY,
            "initial_model_settings": initial_model_settings(ServerSettings()),
        }
        async with await runner.run(model_config=config) as session:  # type: ignore[arg-type]
            async with asyncio.timeout(20):
                async for _ in session:
                    pass
    ga_log = (tmp_path / "session-1.jsonl").read_text()
    beta_log = ga_log
    for kind, ga_name in SERVER_EVENT_NAMES["ga"].items():
        beta_log = beta_log.replace(f'"{ga_name}"', f'"{SERVER_EVENT_NAMES["beta"][kind]}"')
    assert beta_log != ga_log
    (tmp_path / "beta.jsonl").write_text(beta_log)
    ga, beta = import_log(tmp_path / "session-1.jsonl"), import_log(tmp_path / "beta.jsonl")
    assert (ga.dialects, beta.dialects) == ({"ga"}, {"beta"})
    assert content(beta.trace.events) == content(ga.trace.events) == content(trace.events)


async def test_lesson_04s_call_through_the_sdk_model_measures_what_the_simulator_predicts() -> None:
    # at real time, as lesson 04 runs it: deltas cross a socket and the SDK here, so a replay at
    # 4x can hold one past rechunk's flush deadline on a busy machine and split a message in two
    call = await loopback_call(
        shipped("tiny_deltas"), "rechunk", 50, speed=1.0, realtime_emulator=True
    )
    table = call.table()
    assert table.loc["media_messages", "measured"] == table.loc["media_messages", "simulated"]
    assert table.loc["played_ms", "measured"] == table.loc["played_ms", "simulated"]
    ttfa = table.loc["mean_time_to_first_audio_ms"]
    assert abs(ttfa["measured"] - ttfa["simulated"]) < 50


# ---------------------------------------------------------------------- the commands


def test_labkit_call_runs_the_sdk_model_with_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(
        [
            "call",
            "--trace",
            "tiny_deltas",
            "--strategy",
            "forward",
            "--speed",
            "8",
            "--realtime-emulator",
            "--json",
        ]
    )
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows["measured"]["bytes"] == rows["simulated"]["bytes"] > 0
    with pytest.raises(SystemExit, match="--realtime-log needs --realtime-emulator"):
        cli_main(["call", "--trace", "tiny_deltas", "--realtime-log", "x"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_labkit_serve_with_the_flag_bridges_a_call_to_the_sdk_model(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY}
    env.pop("TWILIO_AUTH_TOKEN", None)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labkit",
            "serve",
            "--replay",
            "tiny_deltas",
            "--speed",
            "8",
            "--realtime-emulator",
            "--port",
            str(port),
            "--strategy",
            "rechunk",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        peer = None
        for _ in range(300):  # the server starts in a few seconds (imports)
            try:
                peer = TwilioPeer(
                    f"ws://127.0.0.1:{port}/media-stream",
                    speed=8.0,
                    idle_hangup_ms=3000,
                    min_call_ms=9300,
                )
                recording = await asyncio.wait_for(peer.run(), timeout=30)
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("labkit serve did not start")
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert recording.received_audio() == item_audio(read(shipped("tiny_deltas")))
    assert "SDK OpenAI model, Realtime emulator ws://127.0.0.1:" in output
    assert FAKE_KEY not in output
    assert "refused" not in output  # the handshake carried the placeholder key


async def test_a_model_stream_closed_by_the_server_drains_what_the_caller_has_not_heard(
    tmp_path: Path,
) -> None:
    """OpenAI ends a session (its maximum duration), here the emulator at the trace's end: the
    caller still hears every byte already sent, its marks are credited, and the call ends with a
    normal close, not 1011 at the first caller frame the closed model socket refuses."""
    async with served_through_the_sdk_model("tiny_deltas", "forward", tmp_path,
                                            close_when_done=True) as (trace, emulator, server):
        recording = await asyncio.wait_for(TwilioPeer(server.ws_url, speed=SPEED).run(), 30)
        handler = await the_finished_call(server)
    stats = handler.stats
    assert recording.closed_by == "server"
    assert recording.received_audio() == item_audio(trace)
    assert stats.marks_credited == stats.marks_sent == len(recording.echoes) > 0
    assert stats.marks_credited_bytes == recording.media_bytes == len(item_audio(trace))
    assert stats.caller_frames_after_model_ended > 0  # the caller spoke on while the tail played
    assert emulator.sessions[0].input_audio_bytes == stats.caller_bytes_to_model > 0
    assert stats.session_errors == 0

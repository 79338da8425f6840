"""``record_session``: the trace of any ``openai-agents`` ``RealtimeSession``, in two lines.

Real sessions: one on ``TraceReplayModel``, one on the SDK's own ``OpenAIRealtimeWebSocketModel``
against the Realtime emulator. The recipe's lines are the README's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from agents.realtime import RealtimeAgent, RealtimeRunner
from agents.realtime.events import RealtimeEventInfo, RealtimeRawModelEvent
from agents.realtime.model import RealtimeModel
from agents.realtime.model_events import (
    RealtimeModelAudioDoneEvent,
    RealtimeModelAudioEvent,
    RealtimeModelRawServerEvent,
    RealtimeModelTurnStartedEvent,
)
from agents.realtime.openai_realtime import OpenAIRealtimeWebSocketModel
from agents.run_context import RunContextWrapper

from labkit.live.models import initial_model_settings
from labkit.live.realtime_emulator import EMULATOR_API_KEY, RealtimeEmulator
from labkit.live.replay_model import TraceReplayModel
from labkit.live.settings import ServerSettings
from labkit.traces import TraceEvent, read, record_session, shipped

pytestmark = pytest.mark.anyio
SPEED = 20.0
TIMEOUT_S = 20.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def content(events: list[TraceEvent]) -> list[tuple[str, dict[str, Any], bytes]]:
    return [(event.type, event.fields, event.audio) for event in events]


async def users_server(model: RealtimeModel, config: Any, record_to: Path) -> list[str]:
    """A user's own server loop, with the recipe's two lines added (import + the wrapped loop)."""
    runner = RealtimeRunner(RealtimeAgent(name="my agent"), model=model)
    seen = []
    async with await runner.run(model_config=config) as session:
        async with asyncio.timeout(TIMEOUT_S):
            async for event in record_session(session, record_to):
                seen.append(event.type)  # the user's own handling, unchanged
    return seen


async def test_a_replayed_session_is_recorded_whole(tmp_path: Path) -> None:
    trace = read(shipped("barge_in"))
    seen = await users_server(TraceReplayModel(trace, speed=SPEED), {}, tmp_path / "recorded")
    (path,) = (tmp_path / "recorded").iterdir()
    assert path.name.startswith("session-") and path.name.endswith(".jsonl.gz")
    recorded = read(path)
    assert content(recorded.events) == content(trace.events)
    assert recorded.source == "recorded"
    assert recorded.header["recorder"]["tool"] == "labkit.traces.record_session"
    assert seen.count("audio") == sum(1 for _ in trace.audio_events())  # every event passed on


async def test_the_sdks_own_model_is_recorded_whole(tmp_path: Path) -> None:
    """The real WebSocket model: pcm16 in session.created, then mu-law from session.updated."""
    trace = read(shipped("barge_in"))
    async with RealtimeEmulator(trace, speed=SPEED, close_when_done=True) as emulator:
        config = {
            "url": emulator.url,
            "api_key": EMULATOR_API_KEY,
            "initial_model_settings": initial_model_settings(ServerSettings()),
        }
        out = tmp_path / "mine.jsonl.gz"
        await users_server(OpenAIRealtimeWebSocketModel(), config, out)
    recorded = read(out)
    assert content(recorded.events) == content(trace.events)
    assert recorded.events[-1].t_ms == pytest.approx(trace.duration_ms / SPEED, abs=500)


async def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "kept.jsonl.gz"
    out.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="never overwrites"):
        record_session(events_of([]), out)
    assert out.read_bytes() == b"precious"


# ---------------------------------------------------------------------- without a model


def raw(data: Any) -> RealtimeRawModelEvent:
    return RealtimeRawModelEvent(data=data, info=RealtimeEventInfo(context=RunContextWrapper(None)))


def session_event(fmt: Any) -> RealtimeRawModelEvent:
    payload = {"type": "session.updated", "session": {"audio": {"output": {"format": fmt}}}}
    return raw(RealtimeModelRawServerEvent(data=payload))


def audio(data: bytes) -> RealtimeRawModelEvent:
    return raw(RealtimeModelAudioEvent(data=data, response_id="r", item_id="i", content_index=0))


async def events_of(events: list[Any]) -> AsyncIterator[Any]:
    for event in events:
        yield event


async def test_pcm16_sessions_are_recorded_as_mulaw(tmp_path: Path) -> None:
    events = [
        session_event({"type": "audio/pcm", "rate": 24000}),
        raw(RealtimeModelTurnStartedEvent(response_id="r")),
        audio(b"\x00\x01" * 4801),  # 4801 samples: 1600 at 8 kHz, one carried
        audio(b"\x00\x01" * 2),  # with the carried one: 1 more
        raw(RealtimeModelAudioDoneEvent(item_id="i", content_index=0)),
    ]
    out = tmp_path / "pcm.jsonl.gz"
    passed = [event async for event in record_session(events_of(events), out)]
    assert passed == events
    recorded = read(out)
    assert [len(e.audio) for e in recorded.audio_events()] == [1600, 1]
    assert recorded.header["recorder"]["sdk"].startswith("openai-agents 0.24")


async def test_a_recording_failure_never_disturbs_the_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events = [audio(b"\x01" * 80), session_event({"type": "audio/pcma"}), audio(b"\x02" * 80)]
    out = tmp_path / "alaw.jsonl.gz"
    recording = record_session(events_of(events), out)
    passed = [event async for event in recording]
    assert passed == events  # the call went on
    assert recording.failure is not None and "g711_alaw" in recording.failure
    assert "stopped (the call goes on)" in caplog.text
    assert read(out).item_audio(("i", 0)) == b"\x01" * 80  # what came before is kept


async def test_breaking_out_early_then_closing_leaves_a_whole_file(tmp_path: Path) -> None:
    events = [audio(b"\x01" * 80), audio(b"\x02" * 80), audio(b"\x03" * 80)]
    out = tmp_path / "early.jsonl.gz"
    with record_session(events_of(events), out) as recording:
        async for _ in recording:
            break
    assert read(out).item_audio(("i", 0)) == b"\x01" * 80

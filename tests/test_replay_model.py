"""TraceReplayModel inside a real openai-agents RealtimeSession."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest
from agents.realtime import RealtimeAgent, RealtimeRunner
from agents.realtime.model import RealtimePlaybackTracker

from labkit import traces
from labkit.live.replay_model import TraceReplayModel
from labkit.traces import Trace, TraceEvent, audio_event, item_event, make_header, turn_event

pytestmark = pytest.mark.anyio

SPEED = 10.0
LATE_TOLERANCE_S = 0.05  # real seconds an event may arrive after its slot on a busy machine
FRAME = bytes(range(160))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def two_turn_trace(*, interrupt_first: bool = False) -> Trace:
    """Two responses of 8 x 20 ms deltas each, 40 ms apart, the second starting at 1000 ms."""
    events: list[TraceEvent] = []
    for turn, (response, item, t0) in enumerate([("r1", "i1", 0.0), ("r2", "i2", 1000.0)]):
        events.append(turn_event("turn_started", t0, response))
        for k in range(8):
            if interrupt_first and turn == 0 and k == 4:
                events.append(item_event("audio_interrupted", t0 + 40.0 * k, item, 0))
                break
            events.append(audio_event(t0 + 40.0 * k, response, item, 0, bytes([k + 1]) * 160))
        else:
            events.append(item_event("audio_done", t0 + 320.0, item, 0))
        events.append(turn_event("turn_ended", t0 + 330.0, response))
    return Trace(make_header("synthetic", "two turns for tests"), events)


def write_and_read(trace: Trace, tmp_path: Path) -> Trace:
    path = tmp_path / "t.jsonl.gz"
    traces.write(trace, path)
    return traces.read(path)


async def run_session(
    model: TraceReplayModel,
    tracker: RealtimePlaybackTracker | None = None,
    on_event: Any = None,
) -> list[tuple[float, Any]]:
    """Every session event with its arrival time (s since the session was entered)."""
    loop = asyncio.get_running_loop()
    runner = RealtimeRunner(RealtimeAgent(name="test"), model=model)
    config: dict[str, Any] = {"playback_tracker": tracker} if tracker else {}
    seen: list[tuple[float, Any]] = []
    async with await runner.run(model_config=config) as session:  # type: ignore[arg-type]
        t0 = loop.time()
        async for event in session:
            seen.append((loop.time() - t0, event))
            if on_event is not None:
                await on_event(session, event)
    return seen


def audio_of(seen: list[tuple[float, Any]]) -> list[tuple[float, Any]]:
    return [(t, e) for t, e in seen if e.type == "audio"]


async def test_events_arrive_on_the_trace_schedule_without_drift(tmp_path: Path) -> None:
    trace = write_and_read(two_turn_trace(), tmp_path)
    seen = await run_session(TraceReplayModel(trace, speed=SPEED))
    audio = audio_of(seen)
    expected = [e for e in trace.events if e.type == "audio"]
    assert [e.audio.data for _, e in audio] == [e.audio for e in expected]
    for (arrived_s, _), event in zip(audio, expected, strict=True):
        due_s = event.t_ms / 1000 / SPEED
        assert due_s - 0.002 <= arrived_s <= due_s + LATE_TOLERANCE_S


async def test_session_sees_audio_end_turns_and_the_stream_ends(tmp_path: Path) -> None:
    trace = write_and_read(two_turn_trace(), tmp_path)
    model = TraceReplayModel(trace, speed=SPEED)
    types = [e.type for _, e in await run_session(model)]  # returns: end of stream was seen
    assert types.count("audio_end") == 2
    assert types.count("agent_start") == 2 and types.count("agent_end") == 2
    assert model.ended
    assert model.audio_bytes_emitted == 16 * 160


async def test_tracker_gets_the_mulaw_format(tmp_path: Path) -> None:
    trace = write_and_read(two_turn_trace(), tmp_path)
    tracker = RealtimePlaybackTracker()
    await run_session(TraceReplayModel(trace, speed=SPEED), tracker)
    tracker.on_play_bytes("x", 0, bytes(160))
    assert tracker.get_state()["elapsed_ms"] == pytest.approx(20.0)


async def test_interrupt_emits_audio_interrupted_and_stops_that_response(tmp_path: Path) -> None:
    trace = write_and_read(two_turn_trace(), tmp_path)
    tracker = RealtimePlaybackTracker()
    model = TraceReplayModel(trace, speed=SPEED)
    audio_seen = 0

    async def interrupt_after_three(session: Any, event: Any) -> None:
        nonlocal audio_seen
        if event.type == "audio" and event.item_id == "i1":
            audio_seen += 1
            tracker.on_play_bytes("i1", 0, event.audio.data)
            if audio_seen == 3:
                await session.interrupt()

    seen = await run_session(model, tracker, interrupt_after_three)
    types_items = [(e.type, getattr(e, "item_id", None)) for _, e in seen]
    cut = types_items.index(("audio_interrupted", "i1"))
    assert ("audio", "i1") not in types_items[cut:]  # no more audio of the interrupted response
    assert ("audio_end", "i1") not in types_items
    assert sum(1 for t in types_items if t == ("audio", "i2")) == 8  # the next turn plays whole
    assert model.truncations[0].item_id == "i1"
    assert model.truncations[0].heard_ms == pytest.approx(60.0)  # 3 credited deltas of 20 ms
    assert tracker.get_state()["current_item_id"] is None


async def test_the_traces_own_interrupts_are_emitted_at_their_time(tmp_path: Path) -> None:
    trace = write_and_read(two_turn_trace(interrupt_first=True), tmp_path)
    seen = await run_session(TraceReplayModel(trace, speed=SPEED))
    interrupted = [(t, e) for t, e in seen if e.type == "audio_interrupted"]
    assert [e.item_id for _, e in interrupted] == ["i1"]
    due_s = 160.0 / 1000 / SPEED
    assert due_s - 0.002 <= interrupted[0][0] <= due_s + LATE_TOLERANCE_S
    assert len([e for _, e in seen if e.type == "audio" and e.item_id == "i1"]) == 4


async def test_caller_audio_is_counted_not_interpreted(tmp_path: Path) -> None:
    trace = write_and_read(two_turn_trace(), tmp_path)
    model = TraceReplayModel(trace, speed=SPEED)

    async def talk(session: Any, event: Any) -> None:
        if event.type == "audio":
            await session.send_audio(FRAME)

    seen = await run_session(model, on_event=talk)
    assert model.audio_bytes_received == len(FRAME) * len(audio_of(seen))


async def test_one_model_serves_call_after_call_with_fresh_state(tmp_path: Path) -> None:
    trace = write_and_read(two_turn_trace(), tmp_path)
    model = TraceReplayModel(trace, speed=SPEED * 2)
    first = await run_session(model)
    second = await run_session(model)
    assert [e.audio.data for _, e in audio_of(first)] == [e.audio.data for _, e in audio_of(second)]
    assert model.audio_bytes_emitted == 16 * 160  # counted for the second call alone


async def test_connect_returns_at_once_and_close_cancels_the_playback(tmp_path: Path) -> None:
    trace = write_and_read(two_turn_trace(), tmp_path)
    model = TraceReplayModel(trace, speed=0.01)  # would take minutes
    before = len(asyncio.all_tasks())
    await asyncio.wait_for(model.connect({}), timeout=0.5)
    assert len(asyncio.all_tasks()) == before + 1
    await model.close()
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before


@pytest.mark.parametrize("speed", [0.0, -1.0, math.inf, math.nan])
def test_speed_must_be_a_finite_positive_number(speed: float) -> None:
    with pytest.raises(ValueError, match="TraceReplayModel: speed must be a finite number > 0"):
        TraceReplayModel(two_turn_trace(), speed=speed)

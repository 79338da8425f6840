"""`labkit serve --record DIR`: each call's trace, written by the TraceRecorder, no secrets."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import pytest

from labkit import traces
from labkit.live.peer import TwilioPeer
from labkit.live.server import serve_in_background
from labkit.live.settings import CallSettings, ServerSettings
from labkit.traces import Trace, audio_event, item_event, make_header, turn_event

pytestmark = pytest.mark.anyio

SPEED = 10.0
FAKE_KEY = "fake-openai-key-that-must-never-reach-a-trace-0123456789"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def two_item_trace() -> Trace:
    events = []
    for n, t0 in enumerate((0.0, 600.0)):
        response, item = f"r{n}", f"i{n}"
        events.append(turn_event("turn_started", t0, response))
        for k in range(6):
            events.append(audio_event(t0 + 25.0 * k, response, item, 0, bytes([n * 40 + k]) * 320))
        events.append(item_event("audio_done", t0 + 160.0, item, 0))
        events.append(turn_event("turn_ended", t0 + 170.0, response))
    return Trace(make_header("synthetic", "record test"), events)


async def test_a_recorded_call_reads_back_with_the_audio_the_model_sent(tmp_path: Path) -> None:
    source = tmp_path / "source.jsonl.gz"
    traces.write(two_item_trace(), source)
    record_dir = tmp_path / "recorded"
    settings = ServerSettings(
        call=CallSettings(strategy="rechunk", threshold_ms=50),
        replay_trace=source,
        replay_speed=SPEED,
        record_dir=record_dir,
        openai_api_key=FAKE_KEY,
    )
    async with serve_in_background(settings) as server:
        await asyncio.wait_for(TwilioPeer(server.ws_url, speed=SPEED).run(), timeout=15)

    (recorded_path,) = list(record_dir.iterdir())
    recorded = traces.read(recorded_path)
    original = traces.read(source)
    assert recorded.source == "recorded"
    assert "recorder" in recorded.header
    assert recorded.items == original.items
    for key in original.items:
        assert recorded.item_audio(key) == original.item_audio(key)
    assert recorded.done_items == original.done_items
    times = [e.t_ms for e in recorded.events]
    assert times == sorted(times)
    raw = gzip.decompress(recorded_path.read_bytes()).decode()
    assert FAKE_KEY not in raw

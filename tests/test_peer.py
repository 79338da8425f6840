"""TwilioPeer against a tiny in-test server: it speaks Twilio's side of the protocol, echoes marks
with Twilio's semantics (at once when nothing is queued, after playing otherwise, all pending on
clear) and records what arrived."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from labkit.live.peer import (
    Arrival,
    CallerScript,
    TwilioPeer,
    attribute_arrivals,
    speech_ulaw,
)
from labkit.twilio_messages import clear_json, mark_json, media_json, parse

pytestmark = pytest.mark.anyio
SID = "MZpeertest"
Script = Callable[[ServerConnection, "ServerLog"], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class ServerLog:
    """What the in-test server received, with its own arrival times (ms since start)."""

    loop: asyncio.AbstractEventLoop
    t0: float = 0.0
    received: list[tuple[float, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def now_ms(self) -> float:
        return (self.loop.time() - self.t0) * 1000

    def of(self, kind: type) -> list[tuple[float, Any]]:
        return [(t, m) for t, m in self.received if isinstance(m, kind)]


async def call(script: Script, **peer_options: Any) -> tuple[ServerLog, Any]:
    log = ServerLog(asyncio.get_running_loop())

    async def handler(ws: ServerConnection) -> None:
        log.t0 = log.loop.time()
        log.headers = dict(ws.request.headers) if ws.request else {}

        async def read() -> None:
            async for frame in ws:
                log.received.append((log.now_ms(), parse(frame)))

        reader = asyncio.create_task(read())
        await script(ws, log)
        await reader

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        peer = TwilioPeer(f"ws://127.0.0.1:{port}", stream_sid=SID, **peer_options)
        recording = await asyncio.wait_for(peer.run(), timeout=10)
    return log, recording


def echo_times(log: ServerLog) -> dict[str, float]:
    from labkit.twilio_messages import MarkMsg

    return {m.name: t for t, m in log.of(MarkMsg)}


async def test_mark_with_nothing_queued_is_echoed_at_once() -> None:
    async def script(ws: ServerConnection, log: ServerLog) -> None:
        await asyncio.sleep(0.05)
        sent_ms = log.now_ms()
        await ws.send(mark_json(SID, "empty"))
        await asyncio.sleep(0.1)
        await ws.close()
        log.received.append((sent_ms, "sent"))

    log, recording = await call(script)
    sent_ms = next(t for t, m in log.received if m == "sent")
    assert echo_times(log)["empty"] - sent_ms < 60
    assert recording.closed_by == "server"
    assert [e.cleared for e in recording.echoes] == [False]


@pytest.mark.parametrize("speed", [1.0, 4.0])
async def test_mark_after_audio_is_echoed_when_that_audio_has_played(speed: float) -> None:
    audio_ms = 300.0

    async def script(ws: ServerConnection, log: ServerLog) -> None:
        await asyncio.sleep(0.02)
        log.received.append((log.now_ms(), "sent"))
        await ws.send(media_json(SID, b"\x10" * int(audio_ms * 8)))
        await ws.send(mark_json(SID, "after"))
        await asyncio.sleep(audio_ms / speed / 1000 + 0.1)
        await ws.close()

    log, recording = await call(script, speed=speed)
    sent_ms = next(t for t, m in log.received if m == "sent")
    waited_real_ms = echo_times(log)["after"] - sent_ms
    assert audio_ms / speed - 5 <= waited_real_ms <= audio_ms / speed + 80
    assert recording.media_bytes == int(audio_ms * 8)
    assert recording.segments[0][2] == b"\x10" * int(audio_ms * 8)


async def test_clear_echoes_every_pending_mark_at_once_and_drops_the_queue() -> None:
    async def script(ws: ServerConnection, log: ServerLog) -> None:
        await asyncio.sleep(0.02)
        for name in ("a", "b"):
            await ws.send(media_json(SID, b"\x20" * 4000))  # 500 ms each
            await ws.send(mark_json(SID, name))
        await asyncio.sleep(0.1)
        log.received.append((log.now_ms(), "cleared"))
        await ws.send(clear_json(SID))
        await asyncio.sleep(0.05)
        await ws.send(mark_json(SID, "fresh"))  # queue is empty again: echoed at once
        await asyncio.sleep(0.1)
        await ws.close()

    log, recording = await call(script)
    cleared_ms = next(t for t, m in log.received if m == "cleared")
    echoes = echo_times(log)
    assert list(echoes) == ["a", "b", "fresh"]
    assert all(echoes[n] - cleared_ms < 60 for n in ("a", "b"))
    assert [(e.name, e.cleared) for e in recording.echoes] == [
        ("a", True), ("b", True), ("fresh", False),
    ]  # fmt: skip
    played = sum(len(seg[2]) for seg in recording.segments)
    assert 0.08 * 8000 <= played <= 0.25 * 8000  # only what played before the clear


async def test_peer_opens_like_twilio_and_streams_caller_frames_on_time() -> None:
    speech = speech_ulaw("sorry")[:800]

    async def script(ws: ServerConnection, log: ServerLog) -> None:
        await asyncio.sleep(0.25)

    log, recording = await call(
        script,
        custom_parameters={"strategy": "paced"},
        headers={"X-Twilio-Signature": "sig"},
        caller=CallerScript(((100.0, speech),)),
        idle_hangup_ms=200,
    )
    from labkit.twilio_messages import ConnectedMsg, MediaMsg, StartMsg, StopMsg

    kinds = [type(m) for _, m in log.received]
    assert kinds[:2] == [ConnectedMsg, StartMsg]
    assert kinds[-1] is StopMsg
    assert log.of(StartMsg)[0][1].custom_parameters == {"strategy": "paced"}
    assert log.headers.get("x-twilio-signature") == "sig"
    frames = [m for _, m in log.of(MediaMsg)]
    assert 8 <= len(frames) == recording.frames_sent
    assert [f.timestamp_ms for f in frames] == [20 * i for i in range(len(frames))]
    assert [f.chunk for f in frames] == list(range(1, len(frames) + 1))
    sequence = [m.sequence_number for _, m in log.received if hasattr(m, "sequence_number")]
    assert sequence == list(range(1, len(sequence) + 1))
    caller = b"".join(f.payload for f in frames)
    assert caller[800 : 800 + len(speech)] == speech[: len(caller) - 800]
    assert set(caller[:800]) == {0xFF}
    # Absolute clock: frame i leaves near 20 i ms, never drifting behind.
    times = [t for t, m in log.of(MediaMsg)]
    assert all(abs(t - times[0] - 20 * i) < 60 for i, t in enumerate(times))
    assert recording.closed_by == "peer"
    assert recording.ping_rtt_ms and 0 <= recording.one_way_delay_ms < 50


def test_caller_script_places_speech_across_frame_boundaries() -> None:
    script = CallerScript(((10.0, b"\x01" * 200),))
    frames = [script.frame(i) for i in range(3)]
    assert frames[0] == b"\xff" * 80 + b"\x01" * 80
    assert frames[1] == b"\x01" * 120 + b"\xff" * 40
    assert frames[2] == b"\xff" * 160


def test_attribution_follows_item_lengths_and_clears() -> None:
    items = [(("a", 0), 160), (("b", 0), 100), (("c", 1), 50)]
    arrivals = [
        Arrival("media", 1.0, 100),
        Arrival("media", 2.0, 60),
        Arrival("mark", 2.0, mark_name="m1.g0"),
        Arrival("media", 3.0, 40),  # "a" is complete: this starts "b"
        Arrival("clear", 4.0),  # "b" abandoned after 40 of its 100 bytes
        Arrival("mark", 4.5, mark_name="m2.g1"),
        Arrival("media", 5.0, 50),
        Arrival("media", 6.0, 10),  # more than the trace held
    ]
    rows = attribute_arrivals(arrivals, items)
    summary = [(r["kind"], r["item_id"], r["offset"], r["size"], r["generation"]) for r in rows]
    assert summary == [
        ("media", "a", 0, 100, 0),
        ("media", "a", 100, 60, 0),
        ("mark", "a", 160, 0, 0),
        ("media", "b", 0, 40, 0),
        ("clear", "b", 40, 0, 0),
        ("mark", "c", 0, 0, 1),
        ("media", "c", 0, 50, 1),
        ("media", "unexpected", 0, 10, 1),
    ]
    assert rows[2]["name"] == "m1.g0"
    assert rows[6]["content_index"] == 1


def test_attribution_without_items_makes_one_item_per_generation() -> None:
    arrivals = [Arrival("media", 1.0, 10), Arrival("clear", 2.0), Arrival("media", 3.0, 5)]
    rows = attribute_arrivals(arrivals, None)
    assert [(r["item_id"], r["offset"], r["generation"]) for r in rows] == [
        ("g0", 0, 0), ("g0", 10, 0), ("g1", 0, 1),
    ]  # fmt: skip


def test_bad_speed_and_unknown_speech_are_refused() -> None:
    for speed in (0.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="TwilioPeer: speed must be a finite number > 0"):
            TwilioPeer("ws://x", speed=speed)
    with pytest.raises(FileNotFoundError, match=r"no speech 'nope'.*sorry"):
        speech_ulaw("nope")

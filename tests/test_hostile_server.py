"""The attacks that broke ``labkit serve`` (issue 14), each through the real server on loopback.

Every test runs a real uvicorn server in a background loop (``hostile_server``, the harness of
test_hostile_input.py) and, beside each attack, healthy Twilio calls that must stay byte-exact.
Attack loops are bounded in count and time and target 127.0.0.1 only. The gzip bomb, the eighth
break, is in test_trace_bombs.py (it hit ``labkit simulate``, not the server).
See README, "Bad input", and notebooks/04_live_call.ipynb.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_hostile_input import (
    ACCOUNT_SID,
    CALL_SID,
    HEALTHY_SID,
    HOSTILE_SID,
    LiveServer,
    assert_byte_exact,
    hostile_server,
    start_with,
)
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from labkit import traces
from labkit import twilio_messages as tm
from labkit.live.handler import (
    DROPS_LOGGED_PER_REASON,
    LATENESS_SAMPLES_KEPT,
    HandlerStats,
    TwilioHandler,
)
from labkit.live.models import ModelChoice
from labkit.live.recording import CallRecordings
from labkit.live.settings import DEFAULT_MAX_FRAME_BYTES, ServerLimits, ServerSettings
from labkit.traces.recorder import TraceRecorder, create_recorder, trace_file_stem

README = Path(__file__).resolve().parents[1] / "README.md"
TOKEN = "test-auth-token-0123456789abcdef"
STATS_TOKEN = "stats-token-for-the-test-0123456789"
WAIT_S = 10.0  # the longest any test waits for the server to act


async def wait_until(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the server did not get there in time")


def finished(live: LiveServer, sid: str | None) -> list[TwilioHandler]:
    calls: list[TwilioHandler] = live.server.app.state.finished_calls
    return [h for h in calls if h.stream_sid == sid]


async def drain_until_closed(ws: ClientConnection) -> None:
    """Read (and drop) what the server sends until it closes: an unread socket stalls its close."""
    async def drain() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass

    await asyncio.wait_for(drain(), WAIT_S)


async def quiet(live: LiveServer) -> None:
    """Every call's handler but the healthy ones' has wound down (recorders closed, stats
    final). Healthy calls beside an attack run back to back: waiting for no call at all passes
    only if a poll falls between two of them, so under load it can wait out WAIT_S."""

    def only_healthy_left() -> bool:
        calls: set[TwilioHandler] = live.server.app.state.live_calls
        # a healthy call is nameless for the few ms before its start arrives
        return all(handler.stream_sid in (HEALTHY_SID, None) for handler in calls)

    await wait_until(only_healthy_left)


# ---------------------------------------------------------------------- 1. the recorder

COLLIDING_SIDS = (
    "MZa/b", "MZa.b", "MZa_b",  # one name once sanitised
    "MZ" + "x" * 62 + "1", "MZ" + "x" * 62 + "2",  # 64 leading characters in common
    "MZ../../escape", "MZ\ud800", "",
)  # fmt: skip
SAME_SID = "MZsame000000000000000000000000000001"  # two calls at once with one sid


def test_every_call_records_its_own_trace_and_none_is_overwritten(tmp_path: Path) -> None:
    record_dir = tmp_path / "recorded"
    sids = [*COLLIDING_SIDS, SAME_SID, SAME_SID]
    with hostile_server(tmp_path, record_dir=record_dir) as live:

        async def calls() -> list[Any]:
            peers = [live.healthy_peer(sid) for sid in sids]
            recordings = await asyncio.gather(*(asyncio.wait_for(p.run(), 30) for p in peers))
            await quiet(live)
            return recordings

        for recording in live.run(calls(), timeout_s=60):
            assert_byte_exact(live, recording)
    files = sorted(record_dir.iterdir())
    assert len(files) == len(sids), [f.name for f in files]
    recorded_sids = []
    for path in files:
        assert path.parent == record_dir and path.name.endswith(".jsonl.gz")
        trace = traces.read(path)  # strict: whole, written by one call
        recorded_sids.append(trace.header["recorder"]["stream_sid"])
        assert b"".join(trace.item_audio(key) for key in trace.items) == live.audio
    assert sorted(recorded_sids) == sorted(sids)


def test_a_full_record_directory_stops_recording_with_one_log_line(tmp_path: Path) -> None:
    record_dir = tmp_path / "recorded"
    record_dir.mkdir()
    kept = record_dir / "kept.bin"
    kept.write_bytes(b"k" * 100)
    limits = ServerLimits(record_max_bytes=100)
    with hostile_server(tmp_path, record_dir=record_dir, limits=limits) as live:

        async def call(sid: str) -> Any:
            recording = await asyncio.wait_for(live.healthy_peer(sid).run(), 30)
            await quiet(live)
            return recording

        for n in range(3):
            assert_byte_exact(live, live.run(call(f"MZfull{n}")))
        assert sorted(record_dir.iterdir()) == [kept] and kept.read_bytes() == b"k" * 100
        assert len(live.log.matching("at or over its cap of 100 bytes")) == 1
        kept.unlink()  # space freed: the next call is recorded again
        assert_byte_exact(live, live.run(call("MZfree")))
    (recorded,) = record_dir.iterdir()
    assert traces.read(recorded).header["recorder"]["stream_sid"] == "MZfree"
    assert len(live.log.matching("under its cap again")) == 1


def test_a_recorder_never_overwrites_a_file(tmp_path: Path) -> None:
    path = tmp_path / "taken.jsonl.gz"
    path.write_bytes(b"someone's trace")
    with pytest.raises(FileExistsError):
        TraceRecorder(path, description="", recorder={})
    assert path.read_bytes() == b"someone's trace"
    started = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    first = tmp_path / f"{trace_file_stem('MZ1', started)}.jsonl.gz"
    first.write_bytes(b"an earlier call")
    with create_recorder(tmp_path, "MZ1", started, description="", recorder={}) as recorder:
        assert recorder.path.name == f"{trace_file_stem('MZ1', started)}-1.jsonl.gz"
    assert first.read_bytes() == b"an earlier call"


@given(st.text(max_size=300), st.text(max_size=300))
def test_trace_file_names_are_safe_and_distinct(label: str, other: str) -> None:
    started = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    name = trace_file_stem(label, started)
    assert re.fullmatch(r"20250102T030405Z_[A-Za-z0-9_-]{1,40}_[0-9a-f]{16}", name), name
    if other != label:
        assert trace_file_stem(other, started) != name


# ---------------------------------------------------------------------- 3. sockets with no start


async def never_start(live: LiveServer, how: str) -> tuple[int | None, float]:
    """One socket that never sends a valid start; (the server's close code, seconds it took)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    async with connect(live.server.ws_url, max_size=None, compression=None) as ws:
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            if how == "connected":
                await ws.send(tm.connected_json())
            while how == "trickle" and loop.time() - t0 < WAIT_S:
                await ws.send(tm.inbound_media_json(HOSTILE_SID, b"\x7f" * 160, chunk=1,
                                                    timestamp_ms=0, sequence_number=1))  # fmt: skip
                await ws.send("{not json")
                await asyncio.sleep(0.05)
            await drain_until_closed(ws)
        return ws.close_code, loop.time() - t0


def test_sockets_that_never_send_start_are_closed_after_the_start_timeout(tmp_path: Path) -> None:
    limits = ServerLimits(start_timeout_s=0.5)
    hows = ["silent", "connected", "trickle"] * 10
    with hostile_server(tmp_path, limits=limits) as live, live.healthy_beside():

        async def attack() -> list[tuple[int | None, float]]:
            closes = await asyncio.gather(*(never_start(live, how) for how in hows))
            await wait_until(lambda: not live.hostile_handlers())
            return closes

        closes = live.run(attack(), timeout_s=60)
    assert [code for code, _ in closes] == [1008] * len(hows)
    assert all(seconds < WAIT_S for _, seconds in closes)
    timed_out = finished(live, None)
    assert len(timed_out) == len(hows) and all(h.stats.start_timed_out for h in timed_out)
    assert len(live.log.matching("no valid start within 0.5 s")) == len(hows)


def test_handshakes_over_the_stream_cap_get_503_and_the_calls_inside_go_on(
    tmp_path: Path,
) -> None:
    limits = ServerLimits(max_streams=6, start_timeout_s=60)
    with hostile_server(tmp_path, limits=limits, replay_speed=1.0) as live:
        url = live.server.ws_url

        async def refused() -> tuple[int, str | None]:
            with pytest.raises(InvalidStatus) as caught:
                await connect(url, open_timeout=WAIT_S)
            response = caught.value.response
            return response.status_code, response.headers.get("Retry-After")

        async def attack() -> tuple[list[tuple[int, str | None]], Any, bool]:
            idle: list[ClientConnection] = [await connect(url) for _ in range(5)]
            healthy = asyncio.create_task(asyncio.wait_for(live.healthy_peer().run(), 30))
            calls = live.server.app.state.live_calls
            await wait_until(lambda: any(h.stream_sid == HEALTHY_SID for h in calls))
            refusals = list(await asyncio.gather(*(refused() for _ in range(20))))
            healthy_was_live = any(h.stream_sid == HEALTHY_SID for h in calls)
            recording = await healthy
            await wait_until(lambda: len(calls) == 5)
            idle.append(await connect(url))  # the healthy call's place is free again
            for ws in idle:
                assert ws.close_code is None
                await ws.close()
            return refusals, recording, healthy_was_live

        refusals, recording, healthy_was_live = live.run(attack(), timeout_s=60)
    assert healthy_was_live, "the refusals must come while the healthy call is up"
    assert refusals == [(503, "1")] * 20
    assert_byte_exact(live, recording)
    assert len(live.log.matching("at the cap of 6")) == 1
    assert len(live.log.matching("under the cap again; 20 handshakes were refused")) == 1


# ---------------------------------------------------------------------- 4. slowloris

SLOW_HEAD = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
SLOW_BODY = (b"POST /incoming-call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n"
             b"Content-Type: application/x-www-form-urlencoded\r\n\r\n")  # fmt: skip
SECOND_SLOW_HEAD = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + SLOW_HEAD


async def trickle(live: LiveServer, first: bytes, then: bytes) -> float:
    """Send ``first``, then ``then`` every 0.1 s; seconds until the server closed (inf: never)."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(live.server.host, live.server.port)
    t0 = loop.time()
    try:
        writer.write(first)
        while loop.time() - t0 < 3.0:
            writer.write(then)
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                if not await asyncio.wait_for(reader.read(4096), 0.1):
                    return loop.time() - t0
    except (ConnectionResetError, BrokenPipeError):
        return loop.time() - t0
    finally:
        writer.close()
    return math.inf


async def in_time(live: LiveServer) -> bytes:
    """A request whose head comes in two writes 0.1 s apart: well inside the deadline."""
    reader, writer = await asyncio.open_connection(live.server.host, live.server.port)
    writer.write(SLOW_HEAD)
    await asyncio.sleep(0.1)
    writer.write(b"Connection: close\r\n\r\n")
    response = await asyncio.wait_for(reader.read(), WAIT_S)
    writer.close()
    return response


def test_requests_that_trickle_in_are_cut_off_at_the_request_timeout(tmp_path: Path) -> None:
    limits = ServerLimits(request_timeout_s=0.5, start_timeout_s=30)
    attacks = [(SLOW_HEAD, b"X-Slow: 1\r\n")] * 20 + [(b"", b"")] * 5 + [(SLOW_BODY, b"a")] * 5
    attacks += [(SECOND_SLOW_HEAD, b"X-Slow: 1\r\n")] * 5
    with hostile_server(tmp_path, limits=limits) as live, live.healthy_beside():

        async def attack() -> tuple[list[float], bytes, int | None]:
            async with connect(live.server.ws_url) as ws:  # a WebSocket outlives the deadline
                await ws.send(tm.connected_json())
                closes = await asyncio.gather(*(trickle(live, a, b) for a, b in attacks))
                response = await in_time(live)
                return list(closes), response, ws.close_code

        closes, response, ws_close = live.run(attack(), timeout_s=60)
    assert all(seconds < 2.0 for seconds in closes), closes
    assert response.startswith(b"HTTP/1.1 200")
    assert ws_close is None


# ---------------------------------------------------------------------- 5. log injection

FORGED = "\nERROR labkit.live.server: forged line\x1b[31m red\r\u2028\x85\x00"


async def injecting_call(live: LiveServer, sid: str) -> None:
    async with connect(live.server.ws_url, max_size=None, compression=None) as ws:
        await ws.send(tm.start_json(sid, CALL_SID, ACCOUNT_SID,
                                    {"strategy": FORGED, "threshold_ms": FORGED}))  # fmt: skip
        for frame in (
            tm.mark_echo_json(sid, FORGED, 2),
            tm.mark_echo_json(FORGED, "m", 3),
            f'{{"event": "{FORGED.encode("unicode_escape").decode()}"}}',
            '{"event": "media", "media": "\\u001b[2J"}',
            tm.start_json(FORGED, CALL_SID, ACCOUNT_SID),
        ):
            await ws.send(frame)
        await ws.send(tm.stop_json(sid, ACCOUNT_SID, CALL_SID, 9))
        await drain_until_closed(ws)


def test_what_a_caller_sends_is_logged_escaped(tmp_path: Path) -> None:
    with hostile_server(tmp_path, record_dir=tmp_path / "rec") as live, live.healthy_beside():

        async def attack() -> None:
            for sid in ("MZ" + FORGED, "MZ\ud800 lone surrogate", "MZ" + "\x1b[1m" * 500):
                await injecting_call(live, sid)
            await quiet(live)

        live.run(attack(), timeout_s=60)
    forged = [line for line in live.log.lines if not line.isprintable()]
    assert not forged, forged[:3]
    assert live.log.matching("forged line")  # it was logged, escaped
    assert len(live.log.matching("customParameters.strategy")) == 3


# ---------------------------------------------------------------------- 6. log flooding


async def flooding_call(live: LiveServer, bad_json: int) -> None:
    async with connect(live.server.ws_url, max_size=None, compression=None) as ws:
        await ws.send(start_with({}))
        for _ in range(bad_json):
            await ws.send("x")
        for _ in range(100):
            await ws.send(b"\x00")
            await ws.send('{"event": "nope"}')
        await ws.send(tm.stop_json(HOSTILE_SID, ACCOUNT_SID, CALL_SID, 9))
        await drain_until_closed(ws)


def test_a_flood_of_bad_frames_logs_a_few_lines_and_one_summary(tmp_path: Path) -> None:
    with hostile_server(tmp_path) as live, live.healthy_beside():

        async def attack() -> None:
            await flooding_call(live, 5000)
            await quiet(live)

        live.run(attack(), timeout_s=60)
    (handler,) = finished(live, HOSTILE_SID)
    expected = {"malformed_json": 5000, "binary": 100, "unknown_event": 100}
    assert dict(handler.stats.dropped) == expected
    lines = live.log.matching(HOSTILE_SID)
    assert len(live.log.matching("dropped a message")) == DROPS_LOGGED_PER_REASON * len(expected)
    assert live.log.matching("dropped 5200 bad messages in all "
                             "(binary 100, malformed_json 5000, unknown_event 100)")  # fmt: skip
    assert len(lines) <= DROPS_LOGGED_PER_REASON * len(expected) + 4, lines


# ---------------------------------------------------------------------- 7. /stats


def get_stats(live: LiveServer, authorization: str | None = None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization else {}
    return httpx.get(f"{live.server.http_url}/stats", headers=headers, timeout=WAIT_S)


async def signed_bad_call(live: LiveServer) -> None:
    async with connect(live.server.ws_url, additional_headers=live.dial_headers,
                       max_size=None, compression=None) as ws:  # fmt: skip
        await ws.send(start_with({}))
        await ws.send("x" * (tm.MAX_MESSAGE_BYTES + 1))
        await ws.send("y" * (tm.MAX_MESSAGE_BYTES + 1))
        await ws.send(b"\x01")
        await ws.send(tm.stop_json(HOSTILE_SID, ACCOUNT_SID, CALL_SID, 9))
        await drain_until_closed(ws)
    await quiet(live)


def test_stats_are_closed_to_strangers_and_the_drop_counts_serialise(tmp_path: Path) -> None:
    secrets = {"twilio_auth_token": TOKEN, "stats_token": STATS_TOKEN}
    with hostile_server(tmp_path, **secrets) as live:
        signature = RequestValidator(TOKEN).compute_signature(live.server.ws_url, {})
        live.dial_headers = {"X-Twilio-Signature": str(signature)}
        with live.healthy_beside():
            live.run(signed_bad_call(live))
            strangers = [get_stats(live, auth) for auth in
                         (None, "Bearer wrong", f"Basic {STATS_TOKEN}", f"Bearer {STATS_TOKEN}x",
                          f"bearer  {STATS_TOKEN}", TOKEN, f"Bearer {TOKEN}")]  # fmt: skip
            allowed = get_stats(live, f"Bearer {STATS_TOKEN}")
    for response in strangers:
        assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
        assert "MZ" not in response.text
    assert allowed.status_code == 200
    calls = allowed.json()["calls"]
    (hostile,) = [call for call in calls if call["stream_sid"] == HOSTILE_SID]
    assert hostile["dropped"] == {"oversize": 2, "binary": 1}
    healthy = [call for call in calls if call["stream_sid"] == HEALTHY_SID]
    assert healthy and all(call["dropped"] == {} for call in healthy)


@pytest.mark.parametrize(
    ("secrets", "status"),
    [({"twilio_auth_token": TOKEN}, 403), ({}, 200)],
    ids=["twilio_token_only_closed", "no_secret_open"],
)
def test_stats_without_a_stats_token(tmp_path: Path, secrets: dict[str, str], status: int) -> None:
    with hostile_server(tmp_path, **secrets) as live:
        assert get_stats(live).status_code == status
        assert get_stats(live, f"Bearer {TOKEN}").status_code == status


# ---------------------------------------------------------------------- 8. frames over 1 MiB


async def big_frames(live: LiveServer) -> tuple[int | None, int | None, TwilioHandler]:
    """Frames at and under the socket's cap, then one over it; the close codes seen on the way."""
    cap = DEFAULT_MAX_FRAME_BYTES
    async with connect(live.server.ws_url, max_size=None, compression=None) as ws:
        await ws.send(start_with({}))
        for size in (tm.MAX_MESSAGE_BYTES + 1, cap // 2, cap):  # dropped, counted: the call goes on
            await ws.send("x" * size)
        await wait_until(lambda: any(h.stats.dropped["oversize"] == 3
                                     for h in live.hostile_handlers()))  # fmt: skip
        going_on = ws.close_code
        await ws.send("x" * (cap + 1))  # beyond the socket's cap: this call ends, no other
        await drain_until_closed(ws)
    await quiet(live)
    (handler,) = finished(live, HOSTILE_SID)
    return going_on, ws.close_code, handler


def test_frames_up_to_the_cap_are_dropped_and_a_larger_one_ends_only_its_call(
    tmp_path: Path,
) -> None:
    with hostile_server(tmp_path) as live, live.healthy_beside():
        going_on, ended, handler = live.run(big_frames(live), timeout_s=60)
    assert going_on is None and ended == 1009
    assert dict(handler.stats.dropped) == {"oversize": 3}
    assert handler.stats.close_code == 1009
    assert len(live.log.matching(f"a frame over {DEFAULT_MAX_FRAME_BYTES} bytes")) == 1


def test_the_readme_promises_what_the_server_does() -> None:
    text = README.read_text()
    bad_input = text[text.index("## Bad input") :]
    bad_input = bad_input[: bad_input.index("\n## ", 1)]
    assert "1 MiB" in bad_input and "1009" in bad_input and DEFAULT_MAX_FRAME_BYTES == 1 << 20
    assert "any oversize frame" not in bad_input


def test_counting_the_record_directory_never_stops_the_other_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cap's count listed the directory on the event loop as each call started: with
    200,000 traces there, ~1 s in which every call's timers and sends waited. It runs in a
    thread now, and calls starting together share one count."""
    counts: list[float] = []

    def slow_count(self: CallRecordings) -> int:
        counts.append(time.monotonic())
        time.sleep(0.5)  # a large directory, listed
        return 0

    monkeypatch.setattr(CallRecordings, "used_bytes", slow_count)
    models = ModelChoice(ServerSettings(replay_trace=traces.shipped("barge_in")))
    recordings = CallRecordings(tmp_path, 10**9, models)

    async def starts_and_a_call_beside() -> tuple[list[Any], float]:
        loop = asyncio.get_running_loop()
        worst_s = 0.0

        async def beside() -> None:  # a call's timer, due every 20 ms meanwhile
            nonlocal worst_s
            for _ in range(20):
                due = loop.time() + 0.02
                await asyncio.sleep(0.02)
                worst_s = max(worst_s, loop.time() - due)

        opened = await asyncio.gather(recordings.open("MZa"), recordings.open("MZb"), beside())
        return opened[:2], worst_s

    opened, worst_s = asyncio.run(starts_and_a_call_beside())
    for recorder in opened:
        assert recorder is not None
        recorder.close()
    assert len(counts) == 1, "two calls starting together count once"
    assert worst_s < 0.25, f"a timer beside waited {worst_s:.2f} s for the count"


def test_a_calls_timer_lateness_is_kept_in_bounded_memory() -> None:
    """Each 20 ms timer firing appended a float for the whole call (an hour's call: 180,000),
    kept for 256 finished calls and sent whole by /stats. Now: the count, the maximum, and a
    uniform sample of at most LATENESS_SAMPLES_KEPT firings."""
    stats = HandlerStats()
    firings = 3 * LATENESS_SAMPLES_KEPT
    for n in range(firings):
        stats.add_timer_lateness(float(n))
    assert stats.timer_firings == firings and stats.timer_lateness_max_ms == firings - 1
    kept = stats.timer_lateness_ms
    assert len(kept) == LATENESS_SAMPLES_KEPT and len(set(kept)) == LATENESS_SAMPLES_KEPT
    assert sum(value >= LATENESS_SAMPLES_KEPT for value in kept) > LATENESS_SAMPLES_KEPT // 2
    as_json = stats.as_json()
    assert as_json["timer_firings"] == firings and "_sampler" not in as_json


def test_a_text_frame_that_is_not_utf8_is_one_warning_line_not_an_error(tmp_path: Path) -> None:
    """uvicorn's websockets-sansio layer closes such a socket but logged an ERROR with a
    traceback, for any caller to repeat; beside it, a healthy call stays exact."""
    mask = b"\x01\x02\x03\x04"
    data = b'{"event":"\xff"}'
    frame = bytes([0x81, 0x80 | len(data)]) + mask + bytes(
        byte ^ mask[k % 4] for k, byte in enumerate(data))  # fmt: skip

    async def send_raw(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /media-stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\n\r\n")  # fmt: skip
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)  # 101 Switching Protocols
        writer.write(frame)
        answer = await asyncio.wait_for(reader.read(4096), 10)
        while b"\x88" not in answer:  # until the server's close frame
            answer += await asyncio.wait_for(reader.read(4096), 10)
        writer.close()

    with hostile_server(tmp_path) as live, live.healthy_beside():
        live.run(send_raw(live.server.port))  # answered with a close frame
        live.run(quiet(live))
    assert live.log.crashes() == []
    (line,) = live.log.matching("not UTF-8")
    assert line.startswith("WARNING") and not any(r.exc_info for r in live.log.records)

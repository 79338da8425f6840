"""A live session killed mid-call leaves a trace that reads back everything up to the kill.

``labkit serve --record DIR`` runs in a subprocess and records each call's model events as they
arrive (``labkit.traces.TraceRecorder``, one flushed line at a time). The Twilio emulator dials it;
halfway through the agent's audio the server is killed with SIGKILL (no cleanup, no gzip trailer).
The strict reader must refuse the file saying it was cut short and where; ``read(salvage=True)``
must return every event written before the kill, including all audio the caller already received.
See notebooks/04_live_call.ipynb and notebooks/00_traces.ipynb.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit import traces
from labkit.live.peer import TwilioPeer
from labkit.traces import TraceFormatError

SPEED = 2.0
KILL_AFTER_AUDIO_BYTES = 3 * 8000  # 3 s of agent audio received by the caller
STARTUP_TIMEOUT_S = 30.0
STREAM_SID = "MZkilled000000000000000000000000001"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_health(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"labkit serve exited with {server.returncode}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
            return
        time.sleep(0.1)
    raise AssertionError("labkit serve did not answer /health")


@pytest.fixture
def recording_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port, record_dir = free_port(), tmp_path / "calls"
    command = [sys.executable, "-m", "labkit", "serve", "--port", str(port), "--replay",
               "multi_turn", "--speed", str(SPEED), "--record", str(record_dir)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_health(port, server)
        yield server, port, record_dir
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(timeout=10)
        log.close()


async def call_until_killed(port: int, server: subprocess.Popen[bytes]) -> bytes:
    """Dial like Twilio; SIGKILL the server once the caller has heard enough."""
    peer = TwilioPeer(f"ws://127.0.0.1:{port}/media-stream", speed=SPEED, stream_sid=STREAM_SID)
    call = asyncio.create_task(peer.run())
    while peer.recording.media_bytes < KILL_AFTER_AUDIO_BYTES:
        assert not call.done(), "the call ended before the kill"
        await asyncio.sleep(0.01)
    os.kill(server.pid, signal.SIGKILL)
    server.wait(timeout=10)
    recording = await asyncio.wait_for(call, 10)
    assert recording.closed_by == "server"
    return recording.received_audio()


def test_a_call_killed_mid_call_reads_back_up_to_the_kill(
    recording_server: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    server, port, record_dir = recording_server
    received = asyncio.run(call_until_killed(port, server))
    assert server.returncode == -signal.SIGKILL
    files = sorted(record_dir.iterdir())
    assert len(files) == 1 and f"_{STREAM_SID}_" in files[0].name, f"one trace, not {files}"
    path = files[0]

    with pytest.raises(TraceFormatError) as strict:
        traces.read(path)
    message = str(strict.value)
    assert str(path) in message and "cut short" in message, message

    salvaged = traces.read(path, salvage=True)
    assert salvaged.cut is not None and "cut short" in salvaged.cut
    assert salvaged.header["source"] == "recorded"
    recorded_audio = b"".join(e.audio for e in salvaged.events if e.type == "audio")
    # The session records each event before the handler forwards it: everything the caller
    # received was on disk when the process died.
    assert len(recorded_audio) >= len(received) >= KILL_AFTER_AUDIO_BYTES
    assert recorded_audio.startswith(received)
    original = traces.read(traces.shipped("multi_turn"))
    original_audio = b"".join(e.audio for e in original.events if e.type == "audio")
    assert original_audio.startswith(recorded_audio), "what was salvaged is what the model said"
    assert len(recorded_audio) < len(original_audio), "the kill came mid-call"

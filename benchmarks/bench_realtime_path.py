"""CPU per loopback call: the SDK's own OpenAI model + Realtime emulator vs ``TraceReplayModel``.

One call = the Twilio emulator (``TwilioPeer``) dialling the real server (``serve_in_background``)
on loopback, the same trace at the same speed, the same strategy; the simulator comparison of
``labkit call`` is left out (it is the same for both). Three ways to answer the call:

- ``replay``: ``TraceReplayModel`` hands the trace's events to the session (no model WebSocket);
- ``emulator``: the SDK's ``OpenAIRealtimeWebSocketModel`` over a WebSocket to a
  ``RealtimeEmulator`` running in this process (what ``labkit call --realtime-emulator`` does);
- ``emulator-proc``: the same, the emulator in its own process (``labkit emulate``), so this
  process holds only what a real call's server holds: peer, server, handler, SDK model.

Per call it measures this process's CPU time (``time.process_time``: user + system, all threads)
and, for ``emulator-proc``, the emulator process's (``/proc/<pid>/stat``). Every call ends the same
way: the caller hangs up after ``IDLE_HANGUP_MS`` of silence (the replay model's server hangs up at
about the same time). Rounds alternate the ways, after one warm-up call each; medians are reported.

Usage: .venv/bin/python benchmarks/bench_realtime_path.py [--trace tiny_deltas] [--speed 4]
       [--rounds 5] [--strategy rechunk]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from labkit.live.peer import TwilioPeer
from labkit.live.realtime_emulator import RealtimeEmulator
from labkit.live.server import serve_in_background
from labkit.live.settings import CallSettings, ServerSettings
from labkit.traces import Trace, read, shipped, write

WAYS = ("replay", "emulator", "emulator-proc")
IDLE_HANGUP_MS = 500.0
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass
class CallCost:
    way: str
    cpu_s: float  # this process
    emulator_cpu_s: float  # the emulator's own process (emulator-proc only)
    wall_s: float
    bytes_heard: int


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S  # utime + stime


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def emulator_process(trace_path: Path, speed: float) -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "labkit", "emulate", str(trace_path), "--speed", str(speed),
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Realtime emulator on ws://... replaying ..."
        url = line.split(" on ", 1)[1].split()[0]
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def one_call(
    way: str, trace: Trace, trace_path: Path, speed: float, call: CallSettings,
    emulator_proc: tuple[str, int] | None,
) -> CallCost:  # fmt: skip
    async with AsyncExitStack() as stack:
        url = None
        if way == "emulator":
            url = (await stack.enter_async_context(RealtimeEmulator(trace, speed=speed))).url
        elif way == "emulator-proc":
            assert emulator_proc is not None
            url = emulator_proc[0]
        settings = ServerSettings(
            call=call, replay_trace=trace_path, replay_speed=speed, realtime_emulator_url=url
        )
        server = await stack.enter_async_context(serve_in_background(settings))
        peer = TwilioPeer(
            server.ws_url, custom_parameters=call.as_parameters(), speed=speed,
            idle_hangup_ms=IDLE_HANGUP_MS, min_call_ms=trace.duration_ms,
        )  # fmt: skip
        emu_before = proc_cpu_s(emulator_proc[1]) if emulator_proc and url else 0.0
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        recording = await asyncio.wait_for(peer.run(), trace.duration_ms / speed / 1000 + 60)
        while not server.app.state.finished_calls:
            await asyncio.sleep(0.005)
        cpu_s, wall_s = time.process_time() - cpu_before, time.perf_counter() - wall_before
        emu_s = proc_cpu_s(emulator_proc[1]) - emu_before if emulator_proc and url else 0.0
    return CallCost(way, cpu_s, emu_s, wall_s, recording.media_bytes)


async def main(args: argparse.Namespace) -> None:
    trace = read(shipped(args.trace))
    call = CallSettings(strategy=args.strategy, threshold_ms=args.threshold_ms)
    with tempfile.TemporaryDirectory() as tmp:
        trace_path = Path(tmp) / "trace.jsonl.gz"
        write(trace, trace_path)
        async with emulator_process(trace_path, args.speed) as proc:
            costs: list[CallCost] = []
            for round_number in range(args.rounds + 1):
                for way in WAYS:
                    cost = await one_call(way, trace, trace_path, args.speed, call, proc)
                    if round_number:  # round 0 warms up every way
                        costs.append(cost)
    audio_s = trace.audio_ms / 1000
    print(f"{args.trace} ({audio_s:.1f} s of audio over {trace.duration_ms / 1000:.1f} s), "
          f"x{args.speed:g}, {args.strategy}, {args.rounds} rounds; medians per call:")  # fmt: skip
    replay_cpu = statistics.median(c.cpu_s for c in costs if c.way == "replay")
    for way in WAYS:
        mine = [c for c in costs if c.way == way]
        cpu = statistics.median(c.cpu_s for c in mine)
        emu = statistics.median(c.emulator_cpu_s for c in mine)
        wall = statistics.median(c.wall_s for c in mine)
        heard = {c.bytes_heard for c in mine}
        print(
            f"  {way:<14} this process {cpu * 1000:7.1f} ms CPU ({cpu / replay_cpu:4.2f}x replay)"
            f"  emulator process {emu * 1000:6.1f} ms  wall {wall:5.2f} s"
            f"  ({cpu / audio_s * 1000:5.1f} ms CPU per s of audio)  bytes heard {sorted(heard)}"
        )
    runs = {way: [round(c.cpu_s * 1000) for c in costs if c.way == way] for way in WAYS}
    print(f"  every round (ms CPU, this process): {runs}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trace", default="tiny_deltas")
    parser.add_argument("--speed", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--strategy", default="rechunk")
    parser.add_argument("--threshold-ms", type=float, default=50.0)
    asyncio.run(main(parser.parse_args()))

"""What three attacks cost a real `labkit serve` / `labkit simulate` (issue 14's figures).

1. idle sockets: N WebSockets (default 300) open on `/media-stream` and never send `start`, in
   ``--waves`` waves (default 2). The server's RSS and open file descriptors (/proc/<pid>/fd) are
   read at rest, 1 s after each wave opened, and again after the start timeout has passed
   (``--wait-s``, default 12 s). Handshakes the server refuses (HTTP 503 over its stream cap) are
   counted.
2. gzip bomb: a ~1 MB `.jsonl.gz` of newlines (about 1 GB decompressed) given to
   `labkit simulate`; the child's peak RSS (``ru_maxrss`` from ``os.wait4``), its exit code and
   the last line of its error. For scale: the same command on the shipped `tiny_deltas` trace,
   and on a trace of small valid events just over the default size cap (the most memory a trace
   can take before the reader refuses it).
3. log flood: one call sends `start`, then ``--frames`` (default 10,000) one-byte bad frames,
   then `stop`; the server's log grows by how many bytes (minus the same call with no bad frame).

Every socket targets 127.0.0.1. Usage: .venv/bin/python benchmarks/bench_hostile.py [--part ...]
(to measure another checkout, e.g. the code before the fixes: PYTHONPATH=/that/checkout, parts
idle, log and the newline bomb). See README.md ("Bad input") for the limits these figures check.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from bench_load import free_port, rss_bytes, start_server
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from labkit import twilio_messages as tm
from labkit.traces import make_header, shipped

MIB = 1 << 20
BOMB_COMPRESSED_BYTES = 1_000_000
BOMB_FEED_BYTES = 16 * MIB
SID = "MZbench0000000000000000000000000001"


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def server_state(pid: int) -> dict[str, float]:
    return {"rss_mib": round(rss_bytes(pid) / MIB, 1), "fds": open_fds(pid)}


# ---------------------------------------------------------------------- 1. idle sockets


async def open_idle(url: str, n: int) -> tuple[list[ClientConnection], dict[int, int]]:
    async def one() -> ClientConnection | int:
        try:
            return await connect(url, open_timeout=30, ping_interval=None)
        except InvalidStatus as refused:
            return refused.response.status_code

    results = await asyncio.gather(*(one() for _ in range(n)))
    sockets = [r for r in results if not isinstance(r, int)]
    refused: dict[int, int] = {}
    for r in results:
        if isinstance(r, int):
            refused[r] = refused.get(r, 0) + 1
    return sockets, refused


async def idle_wave(port: int, pid: int, n: int, wait_s: float) -> dict[str, Any]:
    sockets, refused = await open_idle(f"ws://127.0.0.1:{port}/media-stream", n)
    await asyncio.sleep(1.0)
    opened = server_state(pid)
    await asyncio.sleep(wait_s)
    later = server_state(pid)
    closed_by_server = sum(1 for ws in sockets if ws.close_code is not None)
    for ws in sockets:
        with contextlib.suppress(Exception):
            await ws.close()
    return {"sockets": n, "accepted": len(sockets), "refused": refused, "after_1s": opened,
            f"after_{wait_s:g}s": later, "closed_by_server": closed_by_server}  # fmt: skip


async def idle_sockets(port: int, pid: int, n: int, wait_s: float, waves: int) -> dict[str, Any]:
    rest = server_state(pid)
    return {"at_rest": rest, "waves": [await idle_wave(port, pid, n, wait_s) for _ in range(waves)]}


# ---------------------------------------------------------------------- 2. gzip bomb


def write_bomb(path: Path) -> int:
    """~1 MB of gzip holding newlines only; returns the decompressed size."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block, size, written = b"\n" * BOMB_FEED_BYTES, 0, 0
    with path.open("wb") as out:
        while written < BOMB_COMPRESSED_BYTES:
            piece = packer.compress(block)
            out.write(piece)
            written += len(piece)
            size += len(block)
        out.write(packer.flush())
    return size


def write_events_to_cap(path: Path) -> int:
    """A header, then small valid events until just past the reader's default size cap."""
    from labkit.traces.limits import DEFAULT_MAX_TRACE_BYTES  # here: older code has no caps

    header = json.dumps(make_header("synthetic", "events to the cap")).encode() + b"\n"
    event = b'{"t_ms":0.0,"type":"transcript_delta","response_id":"r","item_id":"i","delta":"x"}\n'
    block = event * (BOMB_FEED_BYTES // len(event))
    packer, size = zlib.compressobj(9, zlib.DEFLATED, 31), len(header)
    with path.open("wb") as out:
        out.write(packer.compress(header))
        while size <= DEFAULT_MAX_TRACE_BYTES:
            out.write(packer.compress(block))
            size += len(block)
        out.write(packer.flush())
    return size


def simulate_peak(trace: Path | str) -> dict[str, Any]:
    command = [sys.executable, "-m", "labkit", "simulate", str(trace), "--json"]
    start = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    err = child.stderr.read()  # read before waiting: a full pipe would stall the child
    child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    error = err.decode(errors="replace").strip().splitlines()
    return {"peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "exit_code": os.waitstatus_to_exitcode(status),
            "wall_s": round(time.monotonic() - start, 2),
            "error": error[-1][:200] if error else ""}  # fmt: skip


def bomb(workdir: Path) -> dict[str, Any]:
    path, events = workdir / "bomb.jsonl.gz", workdir / "events.jsonl.gz"
    decompressed = write_bomb(path)
    events_size = write_events_to_cap(events)
    return {
        "newlines": {"compressed_bytes": path.stat().st_size,
                     "decompressed_bytes": decompressed, **simulate_peak(path)},
        "events_past_the_size_cap": {"compressed_bytes": events.stat().st_size,
                                     "decompressed_bytes": events_size, **simulate_peak(events)},
        "reference_tiny_deltas": simulate_peak("tiny_deltas"),
    }  # fmt: skip


# ---------------------------------------------------------------------- 3. log flood


async def one_call(port: int, bad_frames: int) -> None:
    async with connect(f"ws://127.0.0.1:{port}/media-stream", max_size=None) as ws:
        await ws.send(tm.start_json(SID, "CA1", "AC1"))
        for _ in range(bad_frames):
            await ws.send("x")
        await ws.send(tm.stop_json(SID, "AC1", "CA1", 2))
        with contextlib.suppress(Exception):
            while True:
                await asyncio.wait_for(ws.recv(), 30)


async def log_growth(port: int, log: Path, bad_frames: int) -> int:
    before = log.stat().st_size
    await one_call(port, bad_frames)
    await asyncio.sleep(1.0)  # the handler logs its summary as the call winds down
    return log.stat().st_size - before


async def log_flood(port: int, log: Path, frames: int) -> dict[str, Any]:
    quiet = await log_growth(port, log, 0)
    loud = await log_growth(port, log, frames)
    return {"bad_frames": frames, "log_bytes_call_without": quiet,
            "log_bytes_call_with": loud, "log_bytes_added": loud - quiet}  # fmt: skip


# ---------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", nargs="+", choices=["idle", "bomb", "log"],
                        default=["idle", "bomb", "log"])  # fmt: skip
    parser.add_argument("--sockets", type=int, default=300)
    parser.add_argument("--wait-s", type=float, default=12.0)
    parser.add_argument("--waves", type=int, default=2)
    parser.add_argument("--frames", type=int, default=10_000)
    return parser.parse_args(argv)


async def serve_parts(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    port, log = free_port(), workdir / "serve.log"
    server = start_server(shipped("multi_turn"), 1.0, port, log)
    try:
        await asyncio.sleep(1.0)
        if "idle" in args.part:
            results["idle"] = await idle_sockets(port, server.pid, args.sockets, args.wait_s,
                                                 args.waves)  # fmt: skip
        if "log" in args.part:
            results["log"] = await log_flood(port, log, args.frames)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="labkit-hostile-") as tmp:
        workdir = Path(tmp)
        served = {"idle", "log"} & set(args.part)
        results = asyncio.run(serve_parts(args, workdir)) if served else {}
        if "bomb" in args.part:
            results["bomb"] = bomb(workdir)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

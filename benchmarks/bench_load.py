"""Load benchmark of the live path: N concurrent loopback calls against ONE `labkit serve` process.

The server is a subprocess (`python -m labkit serve --replay TRACE ...`): real handler, real
WebSockets, the replay model through the real SDK session. The callers are `TwilioPeer` emulators
in this process (or spread over `--peer-procs` worker processes). Per N it reports:

- server CPU per call-second of audio (utime + stime of the server from /proc/<pid>/stat);
- p50 / p99 / max lateness of the handler's timers (paced calls; read from the server's GET /stats);
- calls that were not byte-exact, and underruns the server added: each call's concealment measured
  from its arrivals (`labkit.sim.metrics.measure`, FIFO playout) minus the simulator's prediction
  for the same strategy over an ideal constant-delay link (forward on a bursty trace predicts none);
- server RSS growth per call (peak RSS during the calls minus idle RSS, divided by N);
- the callers' own event-loop lag, so that a lag on the measuring side is not blamed on the server.

Usage: .venv/bin/python benchmarks/bench_load.py --n 10 50 100 200 [--write-readme]
See benchmarks/README.md for figures and notebooks/04_live_call.ipynb for the live path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labkit.live.handler import build_strategy
from labkit.live.peer import TwilioPeer, trace_items
from labkit.live.settings import CallSettings
from labkit.sim import measure, simulate
from labkit.traces import Trace, read, shipped

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
IDLE_HANGUP_MS = 3000.0
CALL_MARGIN_S = 60.0
LAG_PROBE_S = 0.01
README = Path(__file__).with_name("README.md")
TARGET_CALLS = 100
TARGET_LATENESS_P99_MS = 10.0


# ---------------------------------------------------------------------- the server process


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES


def http_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
        return json.loads(response.read())


def start_server(trace: Path, speed: float, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "labkit", "serve", "--port", str(port), "--replay",
               str(trace), "--speed", str(speed)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    server = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"labkit serve exited ({server.returncode}); see {log}")
        try:
            http_json(port, "/health")
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("labkit serve did not answer /health")


class RssSampler:
    """The server's peak RSS while the calls run, sampled from a thread every 0.2 s."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))


# ---------------------------------------------------------------------- the callers


@dataclass
class PeerJob:
    port: int
    trace_path: str
    speed: float
    calls: list[tuple[str, dict[str, str]]]  # (stream sid, customParameters)
    ramp_s: float
    nice: int = 0


@dataclass
class CallOutcome:
    sid: str
    strategy: str
    byte_exact: bool = False
    received_bytes: int = 0
    protocol_errors: int = 0
    closed_by: str = ""
    concealed_ms: float = math.nan
    concealment_events: int = -1
    one_way_delay_ms: float = math.nan
    error: str = ""


@dataclass
class PeerSide:
    outcomes: list[CallOutcome] = field(default_factory=list)
    cpu_s: float = 0.0
    lag_ms: list[float] = field(default_factory=list)


async def one_call(job: PeerJob, trace: Trace, sid: str, params: dict[str, str],
                   delay_s: float) -> CallOutcome:  # fmt: skip
    await asyncio.sleep(delay_s)
    outcome = CallOutcome(sid, params["strategy"])
    peer = TwilioPeer(f"ws://127.0.0.1:{job.port}/media-stream", custom_parameters=params,
                      speed=job.speed, idle_hangup_ms=IDLE_HANGUP_MS,
                      min_call_ms=trace.duration_ms, stream_sid=sid)  # fmt: skip
    timeout_s = (trace.duration_ms + trace.audio_ms) / job.speed / 1000 + CALL_MARGIN_S
    try:
        recording = await asyncio.wait_for(peer.run(), timeout_s)
    except Exception as exc:  # one failed call is a finding, not the end of the benchmark
        outcome.error = f"{type(exc).__name__}: {exc}"[:200]
        return outcome
    audio = b"".join(trace.item_audio(key) for key in trace.items)
    outcome.received_bytes = len(recording.received_audio())
    outcome.byte_exact = recording.received_audio() == audio
    outcome.protocol_errors = len(recording.protocol_errors)
    outcome.closed_by = recording.closed_by
    outcome.one_way_delay_ms = recording.one_way_delay_ms
    metrics = measure(recording.schedule(trace_items(trace)), "fifo")
    outcome.concealed_ms = metrics.concealed_ms
    outcome.concealment_events = metrics.concealment_events
    return outcome


async def probe_lag(lag_ms: list[float], stop: asyncio.Event) -> None:
    """How late this process's own event loop wakes up (the measuring side's health)."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + LAG_PROBE_S
        await asyncio.sleep(LAG_PROBE_S)
        lag_ms.append((loop.time() - due) * 1000)


async def run_peers(job: PeerJob) -> PeerSide:
    trace = read(job.trace_path)
    side, stop = PeerSide(), asyncio.Event()
    prober = asyncio.create_task(probe_lag(side.lag_ms, stop))
    cpu_before = sum(os.times()[:2])
    spacing_s = job.ramp_s / max(len(job.calls), 1)
    side.outcomes = list(await asyncio.gather(*(
        one_call(job, trace, sid, params, k * spacing_s)
        for k, (sid, params) in enumerate(job.calls)
    )))  # fmt: skip
    stop.set()
    await prober
    side.cpu_s = sum(os.times()[:2]) - cpu_before
    return side


def peer_process(job: PeerJob) -> PeerSide:
    if job.nice:
        os.nice(job.nice)  # the emulated callers yield the cores to the server under test
    return asyncio.run(run_peers(job))


# ---------------------------------------------------------------------- one load level


@dataclass
class LoadResult:
    n: int
    ok_calls: int
    byte_exact: int
    calls_with_added_underruns: int
    added_underruns_by_strategy: dict[str, int]  # calls with added underruns, per strategy
    added_concealed_ms_max: float
    server_cpu_ms_per_call_s: float
    server_cpu_core_pct: float
    lateness_p50_ms: float
    lateness_p99_ms: float
    lateness_max_ms: float
    lateness_samples: int
    rss_per_call_kib: float
    peer_cpu_core_pct: float
    peer_lag_p99_ms: float
    wall_s: float
    errors: list[str]


def predicted_concealment(trace: Trace, strategy: str, threshold_ms: float,
                          delay_ms: float) -> tuple[float, int]:  # fmt: skip
    call = CallSettings(strategy=strategy, threshold_ms=threshold_ms)
    result = simulate(trace, build_strategy(call), link="constant", playout="fifo",
                      link_params={"delay_ms": delay_ms})  # fmt: skip
    arrivals = result.schedule.drop(columns=["sent_ms"]).assign(sent_ms=math.nan)
    metrics = measure(arrivals, "fifo")
    return metrics.concealed_ms, metrics.concealment_events


def call_plan(
    n: int, strategies: list[str], threshold_ms: float
) -> list[tuple[str, dict[str, str]]]:
    plan = []
    for k in range(n):
        params = CallSettings(strategy=strategies[k % len(strategies)],
                              threshold_ms=threshold_ms).as_parameters()  # fmt: skip
        plan.append((f"MZbench{n:05d}{k:06d}".ljust(34, "0"), params))
    return plan


def run_level(n: int, args: argparse.Namespace, trace: Trace, workdir: Path) -> LoadResult:
    port = free_port()
    server = start_server(args.trace_path, args.speed, port, workdir / f"server_{n}.log")
    try:
        time.sleep(0.5)  # let the server's import-time allocations settle
        rss_idle, cpu_before = rss_bytes(server.pid), cpu_s(server.pid)
        plan = call_plan(n, args.strategies, args.threshold_ms)
        shares = [plan[w :: args.peer_procs] for w in range(args.peer_procs)]
        jobs = [PeerJob(port, str(args.trace_path), args.speed, share, args.ramp_s, args.peer_nice)
                for share in shares if share]  # fmt: skip
        started = time.monotonic()
        with RssSampler(server.pid) as rss:
            if args.peer_procs == 1:
                sides = [peer_process(jobs[0])]
            else:
                with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
                    sides = pool.map(peer_process, jobs)
        wall_s = time.monotonic() - started
        cpu_used_s = cpu_s(server.pid) - cpu_before
        stats = http_json(port, "/stats")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return summarise(n, args, trace, sides, stats, cpu_used_s, rss.peak - rss_idle, wall_s)


def summarise(n: int, args: argparse.Namespace, trace: Trace, sides: list[PeerSide],
              stats: dict[str, Any], cpu_used_s: float, rss_growth: int,
              wall_s: float) -> LoadResult:  # fmt: skip
    outcomes = [o for side in sides for o in side.outcomes]
    ok = [o for o in outcomes if not o.error]
    delays = [o.one_way_delay_ms for o in ok if not math.isnan(o.one_way_delay_ms)]
    delay_ms = statistics.median(delays) if delays else 0.5
    predicted = {s: predicted_concealment(trace, s, args.threshold_ms, delay_ms)
                 for s in args.strategies}  # fmt: skip
    added = [o.concealed_ms - predicted[o.strategy][0] for o in ok]
    added_events = [o.concealment_events - predicted[o.strategy][1] for o in ok]
    worse = [e > 0 or a > 1.0 for a, e in zip(added, added_events, strict=True)]
    by_strategy = {s: sum(w for o, w in zip(ok, worse, strict=True) if o.strategy == s)
                   for s in args.strategies}  # fmt: skip
    lateness = np.array([x for call in stats["calls"] for x in call["timer_lateness_ms"]])
    lag = np.array([x for side in sides for x in side.lag_ms])
    call_audio_s = trace.audio_ms / 1000
    peer_cpu_s = sum(side.cpu_s for side in sides)
    return LoadResult(
        n=n,
        ok_calls=len(ok),
        byte_exact=sum(o.byte_exact for o in ok),
        calls_with_added_underruns=sum(worse),
        added_underruns_by_strategy=by_strategy,
        added_concealed_ms_max=max(added, default=math.nan),
        server_cpu_ms_per_call_s=cpu_used_s * 1000 / (n * call_audio_s / args.speed),
        server_cpu_core_pct=100 * cpu_used_s / wall_s,
        lateness_p50_ms=_percentile(lateness, 50),
        lateness_p99_ms=_percentile(lateness, 99),
        lateness_max_ms=float(lateness.max()) if lateness.size else math.nan,
        lateness_samples=int(lateness.size),
        rss_per_call_kib=rss_growth / n / 1024,
        peer_cpu_core_pct=100 * peer_cpu_s / wall_s,
        peer_lag_p99_ms=_percentile(lag, 99),
        wall_s=wall_s,
        errors=[f"{o.sid}: {o.error}" for o in outcomes if o.error][:5],
    )


def _percentile(values: np.ndarray[Any, Any], q: float) -> float:
    return float(np.percentile(values, q)) if values.size else math.nan


# ---------------------------------------------------------------------- report


HEADER = ("| N | calls ok | byte-exact | calls w/ added underruns | server CPU ms per call-s "
          "| server CPU % core | timer lateness p50 / p99 / max ms | RSS KiB per call "
          "| peers CPU % | peer loop lag p99 ms | wall s |")  # fmt: skip


def table(results: list[LoadResult]) -> str:
    rows = [HEADER, _rule()]
    for r in results:
        rows.append(
            f"| {r.n} | {r.ok_calls} | {r.byte_exact} | {_with_breakdown(r)} "
            f"| {r.server_cpu_ms_per_call_s:.2f} | {r.server_cpu_core_pct:.0f} "
            f"| {r.lateness_p50_ms:.2f} / {r.lateness_p99_ms:.2f} / {r.lateness_max_ms:.1f} "
            f"| {r.rss_per_call_kib:.0f} | {r.peer_cpu_core_pct:.0f} | {r.peer_lag_p99_ms:.1f} "
            f"| {r.wall_s:.1f} |"
        )
    return "\n".join(rows)


def _with_breakdown(r: LoadResult) -> str:
    """Calls with added underruns, and which strategies they ran (when there are any)."""
    if not r.calls_with_added_underruns:
        return "0"
    parts = ", ".join(f"{s} {k}" for s, k in r.added_underruns_by_strategy.items())
    return f"{r.calls_with_added_underruns} ({parts})"


def _rule() -> str:
    return "|" + "---|" * (HEADER.count("|") - 1)


def verdict(results: list[LoadResult]) -> str:
    """The largest N that met every target (all byte-exact, no added underrun, p99 <= 10 ms)."""
    held = [r.n for r in results if r.ok_calls == r.n and r.byte_exact == r.n
            and r.calls_with_added_underruns == 0
            and not r.lateness_p99_ms > TARGET_LATENESS_P99_MS]  # fmt: skip
    best = max(held, default=0)
    target = "met" if best >= TARGET_CALLS else "NOT met"
    if max(r.n for r in results) < TARGET_CALLS:
        target = "not measured in this run"
    return f"Largest N meeting every target: {best or 'none'} (target {TARGET_CALLS}: {target})."


def write_readme(results: list[LoadResult], args: argparse.Namespace) -> None:
    marker = "<!-- bench_load -->"
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    text = text.split(marker)[0].rstrip() + "\n\n"
    load = os.getloadavg()
    section = "\n".join([
        marker,
        "## Load: concurrent loopback calls against one `labkit serve` (bench_load.py)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores "
        f"(load average {load[0]:.2f} at the end). Trace `{args.trace}` "
        f"({args.trace_obj.audio_ms / 1000:.1f} s of agent audio per call) replayed at "
        f"x{args.speed:g}; strategies {', '.join(args.strategies)} alternating "
        f"(threshold {args.threshold_ms:g} ms), calls started over {args.ramp_s:g} s, callers in "
        f"{args.peer_procs} process(es). Underruns added = concealment measured at the caller "
        "minus the simulator's prediction for an ideal link (a call counts if it has one more "
        "concealment event, or > 1 ms more concealment). Timer lateness: the handler's own "
        "samples (`GET /stats`, paced calls), real ms.",
        "",
        table(results),
        "",
        verdict(results),
        "",
        "Command: `.venv/bin/python benchmarks/bench_load.py --n "
        + " ".join(str(r.n) for r in results)
        + f" --peer-procs {args.peer_procs} --write-readme`",
        "",
    ])  # fmt: skip
    README.write_text(text + section)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10])
    parser.add_argument("--trace", default="bursty", help="shipped trace name or path")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--strategies", default="paced,forward")
    parser.add_argument("--threshold-ms", type=float, default=200.0)
    parser.add_argument("--ramp-s", type=float, default=1.0, help="spread call starts over this")
    parser.add_argument("--peer-procs", type=int, default=1)
    parser.add_argument("--peer-nice", type=int, default=0,
                        help="niceness of the caller processes: on a real call Twilio's "
                        "side runs elsewhere, here it shares the cores")  # fmt: skip
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    args.strategies = args.strategies.split(",")
    path = Path(args.trace)
    args.trace_path = path if path.is_file() else shipped(args.trace)
    args.trace_obj = read(args.trace_path)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        for n in args.n:
            result = run_level(n, args, args.trace_obj, Path(tmp))
            results.append(result)
            print(table([result]).splitlines()[-1], flush=True)
            for error in result.errors:
                print("   ", error, flush=True)
    print(table(results))
    print(verdict(results))
    if args.write_readme:
        write_readme(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

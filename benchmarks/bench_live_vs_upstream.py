"""Server CPU per call: `labkit serve` vs the openai-agents Twilio example, side by side.

Both servers answer the same calls: N emulated Twilio callers (`TwilioPeer`, in `--peer-procs`
processes of their own) dial one server at a time, the same trace replayed at the same speed, the
same caller audio (one 20 ms frame per 20 ms, echoes of every mark). Rounds alternate the servers
(labkit first in odd rounds, the example first in even ones) and every process keeps running
across rounds, so both are measured in the same run under the same load of the machine.

Processes, each measured alone from `/proc/<pid>/stat` (utime + stime, all threads):

- the Realtime side, shared by both servers (`--model`):
  - `emulator` (default): `labkit emulate TRACE --speed S` in a process of its own. Each server
    runs the SDK's own `OpenAIRealtimeWebSocketModel` against it: the code a real call runs (a
    WebSocket, JSON and a pydantic validation of every server event, base64 both ways, caller
    audio sent as `input_audio_buffer.append`). Chosen as the default because it is the
    production path: a server's CPU per call includes its model client.
  - `replay`: no model socket; each server hands the trace to its session through the lab's
    `TraceReplayModel` (cheaper, and it leaves the SDK's model client out of both).
- labkit: what `labkit serve --replay TRACE --speed S --strategy X [--labkit-flag ...]` runs
  (its own flag parser, settings, app and uvicorn config; marks every 100 ms by default), with
  the emulator's URL set on its settings (as `--realtime-emulator-url URL` does), in a process of
  its own. `--labkit-pythonpath DIR` runs that server from another checkout (the code before a
  change), everything else from this one.
- the example: this script with `--serve-upstream`, in a process of its own. It imports the
  handler at run time from `upstream_head_twilio_handler.py` of the reference directory
  (`--reference`; the example as of openai-agents-python 7f7a44f8d, never copied into this repo)
  and serves it from a minimal FastAPI app shaped like the example's own `server.py` (one
  WebSocket route: `TwilioHandler(ws)`, `start()`, `wait_until_done()`), with `uvicorn.run`'s
  defaults as the example does. The handler hard-codes its model config (a model name, its key
  from `OPENAI_API_KEY`); the reference file is not edited: in that process `OPENAI_API_KEY` is
  set to the emulator's placeholder key and `RealtimeRunner.run` is wrapped so that its
  `model_config` also gets the emulator's `url` and placeholder `api_key` (`--model emulator`),
  or so that the runner's model is a `TraceReplayModel` of the trace (`--model replay`).
- the callers: `--peer-procs` processes of `TwilioPeer`s.

Per server and round: the server's CPU over the batch of calls (from before the first call to
1 s after the last ended, so closing handshakes count), divided per call; "% of a core per call"
is that CPU over the call's own wall time. Every call is checked byte-exact (the audio received
equals the trace's), and the messages each server sent to Twilio are counted per call.
The example never closes its Realtime sessions (nor does its `server.py`): they idle on in its
process after each call, costing nothing measurable between rounds.

`--profile-s S` also records each server with py-spy for S seconds in the first round and sums
the samples by layer (permessage-deflate, WebSocket layers, JSON, the SDK, the handler...).

Usage: .venv/bin/python benchmarks/bench_live_vs_upstream.py [--n 50] [--rounds 3]
       [--trace multi_turn] [--model emulator|replay] [--profile-s 20]
See benchmarks/README.md for the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib.util
import json
import math
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# At module level: FastAPI resolves a route's (postponed) annotations in this module's globals;
# a WebSocket annotation it cannot resolve would be taken for a query parameter.
from fastapi import WebSocket, WebSocketDisconnect

REPO = Path(__file__).resolve().parents[1]
REFERENCE_CANDIDATES = (REPO.parent / "shared" / "reference", Path("/work/shared/reference"))
UPSTREAM_FILE = "upstream_head_twilio_handler.py"
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
HANGUP_AFTER_HEARD_MS = 500.0  # media ms after the last byte played
POLL_S = 0.1
CALL_MARGIN_S = 60.0
SETTLE_S = 1.0
SERVERS = ("labkit", "upstream")


# ---------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


def wait_for_http(port: int, proc: subprocess.Popen[bytes], log: Path, path: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text()[-2000:]
            raise RuntimeError(f"server exited ({proc.returncode}):\n{tail}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5):
                return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server on port {port} did not answer {path}; see {log}")


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "TWILIO_AUTH_TOKEN")}
    return {**env, **extra}


def start_emulator(trace: Path, speed: float, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "labkit", "emulate", str(trace), "--speed", str(speed),
               "--port", str(port)]  # fmt: skip
    proc = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env=child_env())  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"labkit emulate exited; see {log}")
        text = log.read_text()
        if " on ws://" in text:
            return proc, "ws://" + text.split(" on ws://", 1)[1].split()[0]
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"labkit emulate did not start; see {log}")


def start_labkit(args: argparse.Namespace, emulator_url: str | None,
                 log: Path) -> tuple[subprocess.Popen[bytes], int]:  # fmt: skip
    port = free_port()
    command = [sys.executable, __file__, "--serve-labkit", str(port), "--trace",
               str(args.trace_path), "--speed", str(args.speed), "--strategy", args.strategy,
               "--threshold-ms", str(args.threshold_ms)]  # fmt: skip
    command += [f"--labkit-flag={flag}" for flag in args.labkit_flag]
    if emulator_url is not None:
        command += ["--realtime-url", emulator_url]
    env = child_env(PYTHONPATH=args.labkit_pythonpath) if args.labkit_pythonpath else child_env()
    proc = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    wait_for_http(port, proc, log, "/health")
    return proc, port


def serve_labkit(args: argparse.Namespace) -> None:
    """What `labkit serve --replay TRACE ...` runs, with the Realtime emulator's URL set on the
    settings: its own flag parser, settings, app, heap freeze and uvicorn config. (Built here
    rather than with `labkit serve --realtime-emulator-url` so that a checkout older than that
    flag, e.g. the code before a change, is measured by the same harness: PYTHONPATH=<checkout>.)
    """
    import logging
    from dataclasses import replace

    import uvicorn

    from labkit.cli import serve
    from labkit.live.server import create_app, freeze_long_lived_heap, uvicorn_config

    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    serve.register(subparsers)
    argv = ["serve", "--port", str(args.serve_labkit), "--replay", str(args.trace_path),
            "--speed", str(args.speed), "--strategy", args.strategy, "--threshold-ms",
            str(args.threshold_ms), *args.labkit_flag]  # fmt: skip
    settings = serve.settings_from_args(parser.parse_args(argv))
    if args.realtime_url is not None:
        settings = replace(settings, realtime_emulator_url=args.realtime_url)
    logging.basicConfig(level=logging.INFO)
    app = create_app(settings)
    print(app.state.models.description, flush=True)
    freeze_long_lived_heap()
    uvicorn.Server(uvicorn_config(app, "127.0.0.1", args.serve_labkit, log_level="info")).run()


def start_upstream(args: argparse.Namespace, emulator_url: str | None,
                   log: Path) -> tuple[subprocess.Popen[bytes], int]:  # fmt: skip
    port = free_port()
    command = [sys.executable, __file__, "--serve-upstream", str(port), "--reference",
               str(args.reference), "--trace", str(args.trace_path), "--speed", str(args.speed)]
    if emulator_url is not None:
        command += ["--realtime-url", emulator_url]
    proc = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env=child_env())  # fmt: skip
    wait_for_http(port, proc, log, "/")
    return proc, port


# ---------------------------------------------------------------------- the example's server


def serve_upstream(port: int, reference: Path, realtime_url: str | None, trace_path: str,
                   speed: float) -> None:  # fmt: skip
    """The SDK example's handler behind a minimal FastAPI app (its server.py's shape)."""
    import uvicorn
    from agents.realtime import RealtimeRunner
    from fastapi import FastAPI

    from labkit.live.realtime_emulator import EMULATOR_API_KEY

    os.environ["OPENAI_API_KEY"] = EMULATOR_API_KEY  # the handler refuses to start without one
    spec = importlib.util.spec_from_file_location("upstream_twilio_handler",
                                                  reference / UPSTREAM_FILE)  # fmt: skip
    assert spec is not None and spec.loader is not None
    upstream = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(upstream)
    original_run = RealtimeRunner.run

    if realtime_url is not None:

        async def run(self: Any, *, context: Any = None, model_config: Any = None) -> Any:
            config = {**(model_config or {}), "url": realtime_url, "api_key": EMULATOR_API_KEY}
            return await original_run(self, context=context, model_config=config)

    else:
        from labkit.live.replay_model import TraceReplayModel
        from labkit.traces import read

        trace = read(trace_path)

        async def run(self: Any, *, context: Any = None, model_config: Any = None) -> Any:
            self._model = TraceReplayModel(trace, speed=speed)
            return await original_run(self, context=context, model_config=model_config)

    RealtimeRunner.run = run  # type: ignore[method-assign]
    app = FastAPI()

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"message": "upstream example under test"}

    @app.websocket("/media-stream")
    async def media_stream(websocket: WebSocket) -> None:
        try:
            handler = upstream.TwilioHandler(websocket)
            await handler.start()
            await handler.wait_until_done()
        except WebSocketDisconnect:
            print("WebSocket disconnected")
        except Exception as exc:
            print(f"WebSocket error: {exc}")

    uvicorn.run(app, host="127.0.0.1", port=port)


# ---------------------------------------------------------------------- the callers


@dataclass
class PeerJob:
    port: int
    trace_path: str
    speed: float
    sids: list[str]
    params: dict[str, str]
    ramp_s: float
    offer_deflate: bool


@dataclass
class CallOutcome:
    sid: str
    byte_exact: bool = False
    media: int = 0
    marks: int = 0
    clears: int = 0
    wall_s: float = math.nan
    error: str = ""


@dataclass
class PeerSide:
    outcomes: list[CallOutcome] = field(default_factory=list)
    cpu_s: float = 0.0


async def one_call(job: PeerJob, audio: bytes, min_call_ms: float, sid: str,
                   delay_s: float) -> CallOutcome:  # fmt: skip
    from labkit.live.peer import TwilioPeer

    await asyncio.sleep(delay_s)
    outcome = CallOutcome(sid)
    peer = TwilioPeer(f"ws://127.0.0.1:{job.port}/media-stream", custom_parameters=job.params,
                      speed=job.speed, stream_sid=sid,
                      offer_deflate=job.offer_deflate)  # fmt: skip
    started = time.monotonic()
    hangup = asyncio.create_task(hang_up_when_heard(peer, len(audio)))
    try:
        recording = await asyncio.wait_for(peer.run(), min_call_ms / job.speed / 1000 + 60)
    except Exception as exc:  # a failed call is a finding, not the end of the benchmark
        outcome.error = f"{type(exc).__name__}: {exc}"[:200]
        return outcome
    finally:
        hangup.cancel()
    outcome.wall_s = time.monotonic() - started
    outcome.byte_exact = recording.received_audio() == audio
    kinds = collections.Counter(arrival.kind for arrival in recording.arrivals)
    outcome.media, outcome.marks, outcome.clears = kinds["media"], kinds["mark"], kinds["clear"]
    return outcome


async def hang_up_when_heard(peer: Any, audio_bytes: int) -> None:
    """Hang up once the whole trace has arrived and played, plus ``HANGUP_AFTER_HEARD_MS``: every
    call lasts as long as its server takes to deliver the trace, whatever the model's start."""
    while True:
        await asyncio.sleep(POLL_S)
        heard_ms = peer.playing_until_ms() + HANGUP_AFTER_HEARD_MS
        if peer.recording.media_bytes >= audio_bytes and peer.now_ms() >= heard_ms:
            peer.hangup()
            return


async def run_peers(job: PeerJob) -> PeerSide:
    from labkit.traces import read

    trace = read(job.trace_path)
    audio = b"".join(trace.item_audio(key) for key in trace.items)
    cpu_before = sum(os.times()[:2])
    spacing_s = job.ramp_s / max(len(job.sids), 1)
    outcomes = await asyncio.gather(*(
        one_call(job, audio, trace.duration_ms, sid, k * spacing_s)
        for k, sid in enumerate(job.sids)
    ))  # fmt: skip
    return PeerSide(list(outcomes), sum(os.times()[:2]) - cpu_before)


def peer_process(job: PeerJob) -> PeerSide:
    return asyncio.run(run_peers(job))


# ---------------------------------------------------------------------- one batch


@dataclass
class Batch:
    server: str
    round: int
    n: int
    cpu_s: float
    emulator_cpu_s: float
    peers_cpu_s: float
    wall_s: float
    outcomes: list[CallOutcome]

    @property
    def ok(self) -> list[CallOutcome]:
        return [o for o in self.outcomes if not o.error]

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * self.cpu_s / self.n

    @property
    def core_pct_per_call(self) -> float:
        """The server's CPU over the calls' own wall time, per call."""
        call_s = statistics.mean(o.wall_s for o in self.ok) if self.ok else math.nan
        return 100 * self.cpu_s / (self.n * call_s)

    def per_call(self, name: str) -> float:
        return statistics.mean(getattr(o, name) for o in self.ok) if self.ok else math.nan


def run_batch(server: str, port: int, pid: int, emulator_pid: int | None, round_number: int,
              args: argparse.Namespace, pool: Any) -> Batch:  # fmt: skip
    from labkit.live.settings import CallSettings

    params = CallSettings(strategy=args.strategy, threshold_ms=args.threshold_ms).as_parameters()
    sids = [f"MZ{server[:2]}{round_number:03d}{k:06d}".ljust(34, "0") for k in range(args.n)]
    jobs = [PeerJob(port, str(args.trace_path), args.speed, sids[w :: args.peer_procs], params,
                    args.ramp_s, args.callers_offer_deflate)
            for w in range(args.peer_procs) if sids[w :: args.peer_procs]]  # fmt: skip
    time.sleep(SETTLE_S)
    cpu_before = cpu_s(pid)
    emu_before = cpu_s(emulator_pid) if emulator_pid else 0.0
    started = time.monotonic()
    sides: list[PeerSide] = pool.map(peer_process, jobs)
    wall_s = time.monotonic() - started
    time.sleep(SETTLE_S)  # closing handshakes and the handler's wind-down count too
    return Batch(
        server=server,
        round=round_number,
        n=args.n,
        cpu_s=cpu_s(pid) - cpu_before,
        emulator_cpu_s=(cpu_s(emulator_pid) - emu_before) if emulator_pid else 0.0,
        peers_cpu_s=sum(side.cpu_s for side in sides),
        wall_s=wall_s,
        outcomes=[o for side in sides for o in side.outcomes],
    )


# ---------------------------------------------------------------------- profile


LAYERS = (  # first match wins, searched from the innermost frame outwards
    ("permessage-deflate", ("permessage_deflate", "zlib")),
    ("JSON", ("json/", "json.", "encoder.py", "decoder.py")),
    ("pydantic", ("pydantic",)),
    ("base64", ("base64",)),
    ("WebSocket protocol (websockets, wsproto)", ("websockets/", "wsproto/")),
    ("uvicorn", ("uvicorn/",)),
    ("Starlette/FastAPI", ("starlette/", "fastapi/")),
    ("openai-agents SDK", ("agents/",)),
    ("labkit strategy (labkit/outbound, marks)", ("labkit/outbound/", "labkit/marks.py")),
    ("labkit codec (twilio_messages)", ("twilio_messages",)),
    ("labkit handler and inbound", ("labkit/live/", "labkit/inbound.py")),
    ("the example's handler", ("upstream_head_twilio_handler",)),
    ("asyncio event loop and transports", ("asyncio/", "selectors.py", "uvloop")),
)


def profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy not found: pip install py-spy", flush=True)
        return None
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate",
               "200", "--format", "raw", "--output", str(out), "--nonblocking"]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


JOBS = (  # what the server was doing: the first job whose frame is on the stack
    ("caller audio to the model (SDK append: pydantic, JSON, base64, socket)", ("send_audio",)),
    ("model events in, Twilio messages out", ("_listen_for_messages", "_read_session",
                                               "_realtime_session_loop")),
    ("Twilio messages in: receive, parse, marks", ("_read_twilio", "_twilio_message_loop")),
    ("socket reads and WebSocket frame parsing", ("_read_ready", "data_received")),
    ("timers (labkit's one timer; the example's 50 ms flush loop)", ("_run_timer",
                                                                     "_buffer_flush_loop")),
    ("event loop: epoll and scheduling", ("select", "_run_once", "run_forever")),
)


def layer_shares(collapsed: Path) -> dict[str, float]:
    """Share of samples per layer: a stack counts for its innermost frame's layer."""
    return _shares(collapsed, _layer)


def job_shares(collapsed: Path) -> dict[str, float]:
    """Share of samples per job of the server (``JOBS``)."""
    return _shares(collapsed, _job)


def _shares(collapsed: Path, classify: Any) -> dict[str, float]:
    counts: collections.Counter[str] = collections.Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        counts[classify(stack.split(";"))] += int(number)
    total = sum(counts.values()) or 1
    return {name: n / total for name, n in counts.most_common()}


def _job(frames: list[str]) -> str:
    names = [frame.split(" (")[0] for frame in frames]
    for job, needles in JOBS:
        if any(needle in name for name in names for needle in needles):
            return job
    return "unattributed (a stack py-spy read cut short, mostly WebSocket frames and writes)"


def _layer(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, needles in LAYERS:
            if any(needle in frame for needle in needles):
                return name
    return "other"


# ---------------------------------------------------------------------- report


def summary(batches: list[Batch]) -> str:
    rows = ["| server | round | calls ok | byte-exact | CPU ms per call | % of a core per call "
            "| media + marks + clears per call | emulator CPU ms per call | callers CPU s |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for b in batches:
        rows.append(
            f"| {b.server} | {b.round} | {len(b.ok)}/{b.n} | {sum(o.byte_exact for o in b.ok)} "
            f"| {b.cpu_ms_per_call:.1f} | {b.core_pct_per_call:.3f} "
            f"| {b.per_call('media'):.0f} + {b.per_call('marks'):.0f} + "
            f"{b.per_call('clears'):.0f} | {1000 * b.emulator_cpu_s / b.n:.1f} "
            f"| {b.peers_cpu_s:.1f} |"
        )
    return "\n".join(rows)


def ratios(batches: list[Batch]) -> str:
    by_round: dict[int, dict[str, Batch]] = collections.defaultdict(dict)
    for b in batches:
        by_round[b.round][b.server] = b
    per_round = [r["labkit"].cpu_s / r["upstream"].cpu_s for r in by_round.values()
                 if len(r) == 2]  # fmt: skip
    pct = {s: statistics.median(b.core_pct_per_call for b in batches if b.server == s)
           for s in SERVERS}  # fmt: skip
    return (f"median % of a core per call: labkit {pct['labkit']:.3f}, upstream "
            f"{pct['upstream']:.3f}; labkit / upstream CPU per round: "
            f"{', '.join(f'{r:.2f}' for r in per_round)} (median "
            f"{statistics.median(per_round):.2f})")  # fmt: skip


# ---------------------------------------------------------------------- what deflate would save


DEFLATE_WINDOW_BITS = 12  # what uvicorn's websockets-sansio layer negotiates (memLevel 5)
DEFLATE_MEM_LEVEL = 5
SYNC_FLUSH_TAIL_BYTES = 4  # RFC 7692 7.2.1: the 00 00 ff ff a sender strips


def deflated(texts: list[str]) -> tuple[int, int, float]:
    """(bytes, bytes on the wire with permessage-deflate, CPU us per message to compress) for
    one stream's messages, with context takeover as uvicorn and websockets negotiate it."""
    import zlib

    encoder = zlib.compressobj(wbits=-DEFLATE_WINDOW_BITS, memLevel=DEFLATE_MEM_LEVEL)
    raw = wire = 0
    started = time.process_time()
    for text in texts:
        data = text.encode()
        raw += len(data)
        wire += len(encoder.compress(data) + encoder.flush(zlib.Z_SYNC_FLUSH))
        wire -= SYNC_FLUSH_TAIL_BYTES
    return raw, wire, (time.process_time() - started) * 1e6 / max(len(texts), 1)


def deflate_gain(trace_path: Path) -> str:
    """What permessage-deflate saves on a call's messages, both ways."""
    from labkit import twilio_messages as tm
    from labkit.live.peer import AUDIO_DIR
    from labkit.traces import read

    sid = "MZ" + "0" * 32
    encoder = tm.OutboundEncoder(sid)
    outbound = []  # as the SDK's example sends them: a media and a mark per delta
    for event in read(trace_path).events:
        if event.audio:
            outbound += [encoder.media(event.audio), encoder.mark(str(len(outbound)))]
    speech = b"".join(path.read_bytes() for path in sorted(AUDIO_DIR.glob("*.ulaw")))
    frames = [speech[k : k + 160] for k in range(0, len(speech) - 159, 160)]
    spoken = [tm.inbound_media_json(sid, frame, chunk=k, timestamp_ms=20 * k, sequence_number=k)
              for k, frame in enumerate(frames)]  # fmt: skip
    silent = [tm.inbound_media_json(sid, b"\xff" * 160, chunk=k, timestamp_ms=20 * k,
                                    sequence_number=k) for k in range(len(frames))]  # fmt: skip
    rows = []
    for name, texts in [("to Twilio (the trace, media + mark per delta)", outbound),
                        ("from Twilio, caller speech (data/audio)", spoken),
                        ("from Twilio, caller silence (0xFF)", silent)]:  # fmt: skip
        raw, wire, us = deflated(texts)
        rows.append(f"  {name}: {raw} -> {wire} bytes ({wire / raw:.2f}), {us:.1f} us CPU "
                    f"per message to compress")  # fmt: skip
    return "permessage-deflate (uvicorn's window 12 bits, memLevel 5):\n" + "\n".join(rows)


# ---------------------------------------------------------------------- main


def find_reference(given: str | None) -> Path:
    candidates = [Path(given)] if given else list(REFERENCE_CANDIDATES)
    for candidate in candidates:
        if (candidate / UPSTREAM_FILE).is_file():
            return candidate
    raise SystemExit(f"no {UPSTREAM_FILE} in {', '.join(map(str, candidates))} (--reference)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50, help="concurrent calls per batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trace", default="multi_turn", help="shipped trace name or path")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--model", choices=("emulator", "replay"), default="emulator")
    parser.add_argument("--strategy", default="forward", help="labkit's strategy")
    parser.add_argument("--threshold-ms", type=float, default=50.0)
    parser.add_argument("--labkit-flag", action="append", default=[],
                        help="an extra `labkit serve` argument (repeatable)")  # fmt: skip
    parser.add_argument("--labkit-pythonpath", metavar="DIR",
                        help="run the labkit server from this checkout (e.g. the code before a "
                        "change); the callers and the emulator stay this one's")  # fmt: skip
    parser.add_argument("--ramp-s", type=float, default=1.0, help="spread call starts over this")
    parser.add_argument("--peer-procs", type=int, default=2)
    parser.add_argument("--callers-offer-deflate", action="store_true",
                        help="callers offer permessage-deflate (Twilio's choice is undocumented)")
    parser.add_argument("--only", choices=SERVERS, help="measure one server only")
    parser.add_argument("--profile-s", type=float, default=0.0, help="py-spy each server, round 1")
    parser.add_argument("--profile-dir", type=Path, help="keep the py-spy output here")
    parser.add_argument("--reference", help="directory holding " + UPSTREAM_FILE)
    parser.add_argument("--json", type=Path, help="write every batch here")
    # internal: this script as the example's server process
    parser.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--serve-labkit", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--realtime-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.reference = find_reference(args.reference)
    path = Path(args.trace)
    if not path.is_file():
        from labkit.traces import shipped

        path = Path(shipped(args.trace))
    args.trace_path = path
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_labkit:
        serve_labkit(args)
        return 0
    if args.serve_upstream:
        serve_upstream(args.serve_upstream, args.reference, args.realtime_url,
                       str(args.trace_path), args.speed)  # fmt: skip
        return 0
    servers = (args.only,) if args.only else SERVERS
    batches: list[Batch] = []
    shares: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-vs-upstream-") as tmp:
        logs = Path(tmp)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            emulator_pid, url = None, None
            if args.model == "emulator":
                emulator, url = start_emulator(args.trace_path, args.speed, logs / "emulator.log")
                procs.append(emulator)
                emulator_pid = emulator.pid
            started: dict[str, tuple[int, int]] = {}
            for name in servers:
                start = start_labkit if name == "labkit" else start_upstream
                proc, port = start(args, url, logs / f"{name}.log")
                procs.append(proc)
                started[name] = (proc.pid, port)
            with multiprocessing.get_context("spawn").Pool(args.peer_procs) as pool:
                for round_number in range(1, args.rounds + 1):
                    order = servers if round_number % 2 else servers[::-1]
                    for name in order:
                        pid, port = started[name]
                        spy = None
                        out = logs / f"{name}.collapsed"
                        if args.profile_s and round_number == 1:
                            spy = profile(pid, args.profile_s, out)
                        batch = run_batch(name, port, pid, emulator_pid, round_number, args, pool)
                        if spy is not None:
                            spy.wait(timeout=args.profile_s + 60)
                            if out.exists():
                                shares[name] = layer_shares(out)
                                shares[f"{name}, by job"] = job_shares(out)
                                if args.profile_dir:
                                    args.profile_dir.mkdir(parents=True, exist_ok=True)
                                    shutil.copy(out, args.profile_dir / out.name)
                        batches.append(batch)
                        print(summary([batch]).splitlines()[-1], flush=True)
                        for o in batch.outcomes:
                            if o.error:
                                print("   ", o.sid, o.error, flush=True)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print(f"\n{args.trace} x{args.speed:g}, {args.n} calls per batch, model {args.model}, "
          f"labkit from {args.labkit_pythonpath or REPO}, "
          f"labkit {args.strategy} {' '.join(args.labkit_flag)}, callers offer deflate: "
          f"{args.callers_offer_deflate}, load average "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip
    print(summary(batches))
    print(deflate_gain(args.trace_path))
    if len(servers) == 2:
        print(ratios(batches))
    for name, layer in shares.items():
        print(f"\npy-spy, {name} ({args.profile_s:g} s of round 1):")
        for layer_name, share in layer.items():
            print(f"  {100 * share:5.1f} %  {layer_name}")
    if args.json:
        rows = [{**{k: v for k, v in vars(b).items() if k != "outcomes"},
                 "calls_ok": len(b.ok), "byte_exact": sum(o.byte_exact for o in b.ok),
                 "media_per_call": b.per_call("media"), "marks_per_call": b.per_call("marks"),
                 "cpu_ms_per_call": b.cpu_ms_per_call,
                 "core_pct_per_call": b.core_pct_per_call} for b in batches]  # fmt: skip
        args.json.write_text(json.dumps({"batches": rows, "profile": shares}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A loopback call: the real server and handler dialled by the Twilio emulator, beside the sim.

``loopback_call`` starts the live server in this event loop on a free loopback port, with the
trace replayed through the real SDK session and the real ``TwilioHandler``. The model is a
``TraceReplayModel`` by default; with ``realtime_emulator=True`` it is the SDK's own
``OpenAIRealtimeWebSocketModel``, unmodified, talking the Realtime protocol over a real WebSocket to
a ``RealtimeEmulator`` that replays the trace (what a call with a key runs, minus OpenAI).
A ``TwilioPeer`` dials it exactly as Twilio would, plays what arrives through a playout model and
records every arrival. The measured metrics come from those arrivals
(``labkit.sim.metrics.measure``); the prediction is ``labkit.simulate`` on the same trace, with
the very strategy the handler builds, over a ``constant`` link of the measured loopback delay.
Both sides are measured the same way, from arrival times only (the simulator's own arrivals go
through ``measure`` too), so a difference between them is one of behaviour, not of definitions.
See notebooks/04_live_call.ipynb and notebooks/05_barge_in_and_marks.ipynb.

Time base: the peer records media ms (real ms times ``speed``), the trace's own clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.live.peer import (
    MS_PER_S,
    CallerScript,
    PeerRecording,
    TwilioPeer,
    speech_ulaw,
    trace_items,
)
from labkit.outbound.base import BYTES_PER_MS
from labkit.traces import Trace, TraceEvent, TraceLimits, read, write

if TYPE_CHECKING:
    import pandas as pd

    from labkit.live.realtime_emulator import EmulatedSession
    from labkit.sim import Metrics, SimResult

BARGE_IN_SPEECH = "sorry"  # what the emulated caller says when barging in (data/audio)
IDLE_HANGUP_MS = 3000.0  # media ms of silence after the trace ended before the peer hangs up
TIMEOUT_MARGIN_S = 30.0  # real seconds beyond the trace before the call is abandoned
CALL_OPTIONS = ("mark_every_ms", "align_frames")
DELAY_FALLBACK_MS = 0.5  # if no ping came back: loopback is well under a millisecond
# The fastest replay a loopback call compares: the measured loopback delay is in media ms (real
# ms times the speed), so beyond it a few real ms of a busy machine are seconds of media time,
# the comparison measures the machine rather than the strategy, and a delay soon exceeds the
# longest the simulator's links model (labkit.sim.params.MAX_MS).
MAX_CALL_SPEED = 1000.0


@dataclass
class CallResult:
    """A loopback call: what the peer observed, and what the simulator predicted for it."""

    trace: Trace
    strategy: str
    threshold_ms: float
    playout: str
    speed: float
    recording: PeerRecording
    schedule: pd.DataFrame
    measured: Metrics
    simulated: Metrics
    simulation: SimResult
    loopback_delay_ms: float
    handler_stats: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    realtime: EmulatedSession | None = None  # the emulator's side of the call, if one served it

    def table(self) -> pd.DataFrame:
        """Measured and simulated metrics side by side (rows: metric names)."""
        import pandas as pd

        return pd.DataFrame(
            {"measured": self.measured.as_row(), "simulated": self.simulated.as_row()}
        )

    def arrivals(self) -> pd.DataFrame:
        """Each media message the caller received, with when its first byte arrived and when
        the simulator has that byte arrive (``arrivals_side_by_side``)."""
        return arrivals_side_by_side(self.schedule, self.simulation.schedule)

    def as_json(self) -> dict[str, dict[str, Any]]:
        from labkit.sim.metrics import json_row

        return {"measured": json_row(self.measured.as_row()),
                "simulated": json_row(self.simulated.as_row())}


def arrivals_side_by_side(measured: pd.DataFrame, simulated: pd.DataFrame) -> pd.DataFrame:
    """Per media message of ``measured`` (in arrival order): ``item_id``, ``offset``, ``size``,
    ``media_s`` (the audio received before it, s), ``measured_ms``, ``simulated_ms`` (when the
    simulated message holding the same first byte arrived; NaN if the simulation never sent that
    byte) and ``difference_ms``. Matched by byte, not by message: a strategy that rechunks may
    cut the live stream where the simulation did not, since deltas arrive when the wire says."""
    import numpy as np
    import pandas as pd

    got = measured[(measured["kind"] == "media") & (measured["size"] > 0)]
    sent = simulated[(simulated["kind"] == "media") & (simulated["size"] > 0)]
    by_item = {item: (rows["offset"].to_numpy(), rows["arrived_ms"].to_numpy(dtype=float))
               for item, rows in sent.groupby("item_id", sort=False)}  # fmt: skip
    expected = np.full(len(got), math.nan)
    for k, (item, offset) in enumerate(zip(got["item_id"], got["offset"], strict=True)):
        if item in by_item:
            offsets, arrived = by_item[item]
            holder = int(np.searchsorted(offsets, offset, side="right")) - 1
            expected[k] = arrived[holder] if holder >= 0 else math.nan
    sizes = got["size"].to_numpy(dtype=float)
    table = pd.DataFrame({
        "item_id": got["item_id"].to_numpy(), "offset": got["offset"].to_numpy(),
        "size": got["size"].to_numpy(),
        "media_s": (np.cumsum(sizes) - sizes) / BYTES_PER_MS / MS_PER_S,
        "measured_ms": got["arrived_ms"].to_numpy(dtype=float), "simulated_ms": expected,
    })  # fmt: skip
    return table.assign(difference_ms=table["measured_ms"] - table["simulated_ms"])


def check_call_speed(speed: float) -> float:
    """``speed`` when a loopback call can compare at it: the replay's rule
    (``labkit.live.settings.check_replay_speed``) and at most MAX_CALL_SPEED; else a ValueError."""
    from labkit.live.settings import check_replay_speed

    check_replay_speed("speed", speed)
    if speed > MAX_CALL_SPEED:
        raise ValueError(
            f"speed must be at most {MAX_CALL_SPEED:g} for a loopback call (the measured "
            f"loopback delay is real ms times the speed), got {speed:g}"
        )
    return speed


def with_barge_in(trace: Trace, at_ms: float) -> Trace:
    """``trace`` with the caller barging in at ``at_ms``: the response then speaking is interrupted.

    The item whose audio last arrived at or before ``at_ms`` gets an ``audio_interrupted`` event at
    ``at_ms`` and its response delivers nothing more (as the model stops on a real barge-in).
    """
    if not math.isfinite(at_ms):
        raise ValueError(f"with_barge_in: at_ms must be a finite number of ms, got {at_ms!r}")
    spoken = [e for e in trace.events if e.type == "audio" and e.t_ms <= at_ms]
    if not spoken:
        raise ValueError(f"with_barge_in: no agent audio before {at_ms:g} ms to interrupt")
    if at_ms > trace.duration_ms:  # the call would wait for it after the trace has ended
        raise ValueError(f"with_barge_in: the trace ends at {trace.duration_ms:.0f} ms, "
                         f"before {at_ms:g} ms")  # fmt: skip
    last = spoken[-1]
    key, response = last.key, last.response_id
    assert key is not None

    def stopped(event: TraceEvent) -> bool:
        if event.t_ms <= at_ms or event.type not in ("audio", "audio_done", "transcript_delta"):
            return False
        same_response = response is not None and event.response_id == response
        return same_response or event.key == key

    events = [e for e in trace.events if not stopped(e)]
    fields = {"item_id": key[0], "content_index": key[1]}
    interrupted = TraceEvent(at_ms, "audio_interrupted", fields)
    position = next((i for i, e in enumerate(events) if e.t_ms > at_ms), len(events))
    events.insert(position, interrupted)
    header = {**trace.header, "description": f"{trace.description} + barge-in at {at_ms:g} ms"}
    return Trace(header, events)


async def loopback_call(
    trace_path: str | Path,
    strategy: str,
    threshold_ms: float,
    *,
    speed: float = 1.0,
    playout: str = "fifo",
    barge_in_at_ms: float | None = None,
    playout_params: dict[str, float] | None = None,
    trace_limits: TraceLimits | None = None,
    realtime_emulator: bool = False,
    record_dir: str | Path | None = None,
    realtime_log_dir: str | Path | None = None,
    **options: Any,
) -> CallResult:
    """One call through the real server and handler; ``options``: mark_every_ms, align_frames.

    The trace is read within ``trace_limits`` (``labkit.traces.limits``; None: the defaults).
    ``realtime_emulator``: run the SDK's own OpenAI model against a local Realtime emulator
    instead of ``TraceReplayModel``; ``realtime_log_dir``: where the emulator writes the Realtime
    log of what it sent (``labkit import`` reads it). ``record_dir``: where the handler records the
    call's trace, as ``labkit serve --record`` does.
    """
    from labkit.live.server import serve_in_background
    from labkit.live.settings import CallSettings, ServerSettings

    check_call_speed(speed)
    unknown = sorted(set(options) - set(CALL_OPTIONS))
    if unknown:
        raise TypeError(
            f"loopback_call: unknown option(s) {', '.join(unknown)}; use {CALL_OPTIONS}"
        )
    limits = trace_limits or TraceLimits()
    trace = read(trace_path, limits=limits)
    caller = CallerScript()
    if barge_in_at_ms is not None:
        trace = with_barge_in(trace, barge_in_at_ms)
        caller = CallerScript(((barge_in_at_ms, speech_ulaw(BARGE_IN_SPEECH)),))
    if realtime_log_dir is not None and not realtime_emulator:
        raise TypeError("loopback_call: realtime_log_dir needs realtime_emulator=True")
    call = replace(CallSettings(), strategy=strategy, threshold_ms=threshold_ms, **options)
    with tempfile.TemporaryDirectory(prefix="labkit-call-") as tmp:
        replay_path = Path(tmp) / "replay.jsonl.gz"
        write(trace, replay_path)
        async with contextlib.AsyncExitStack() as stack:
            emulator = None
            if realtime_emulator:
                from labkit.live.realtime_emulator import RealtimeEmulator

                emulator = RealtimeEmulator(trace, speed=speed, log_dir=realtime_log_dir)
                await stack.enter_async_context(emulator)
            settings = ServerSettings(
                call=call,
                replay_trace=replay_path,
                replay_speed=speed,
                trace_limits=limits,
                record_dir=Path(record_dir) if record_dir is not None else None,
                realtime_emulator_url=emulator.url if emulator is not None else None,
            )
            server = await stack.enter_async_context(serve_in_background(settings))
            peer = TwilioPeer(
                server.ws_url,
                custom_parameters=call.as_parameters(),
                caller=caller,
                playout=playout,
                playout_params=playout_params,
                speed=speed,
                idle_hangup_ms=IDLE_HANGUP_MS,
                min_call_ms=trace.duration_ms,
            )
            timeout_s = trace.duration_ms / speed / 1000 + TIMEOUT_MARGIN_S
            recording = await asyncio.wait_for(peer.run(), timeout_s)
            finished = server.app.state.finished_calls
            handler_stats = await _last_call_stats(finished)
    if getattr(handler_stats, "failure", None):  # what was measured is no call to compare
        raise RuntimeError(f"loopback call: the server's call ended by {handler_stats.failure}")
    result = _compare(trace, call, playout, playout_params, speed, recording, handler_stats)
    if emulator is not None and emulator.sessions:
        result.realtime = emulator.sessions[-1]
    return result


async def _last_call_stats(finished: list[Any]) -> Any:
    """The handler's stats once it has wound down (it finishes just after the socket closes)."""
    for _ in range(100):
        if finished:
            return getattr(finished[-1], "stats", finished[-1])
        await asyncio.sleep(0.01)
    return None


def _compare(
    trace: Trace,
    call: Any,
    playout: str,
    playout_params: dict[str, float] | None,
    speed: float,
    recording: PeerRecording,
    handler_stats: Any,
) -> CallResult:
    from labkit.live.handler import build_strategy
    from labkit.sim import measure, simulate
    from labkit.sim.params import MAX_MS

    params = dict(playout_params or {})
    schedule = recording.schedule(trace_items(trace))
    measured = measure(schedule, playout, **params)
    delay_ms = recording.one_way_delay_ms
    if math.isnan(delay_ms):
        delay_ms = DELAY_FALLBACK_MS * speed
    if delay_ms > MAX_MS:  # a machine stalled for a long while: no link of the simulator models it
        raise RuntimeError(
            f"loopback call: the measured loopback delay, {delay_ms / speed:.0f} real ms "
            f"({delay_ms:.0f} media ms at speed {speed:g}), is over the {MAX_MS:g} ms the "
            "simulator's links model: nothing to compare; try a lower speed"
        )
    simulation = simulate(
        trace,
        build_strategy(call),
        link="constant",
        playout=playout,
        link_params={"delay_ms": delay_ms},
        playout_params=params,
    )
    arrivals = simulation.schedule.drop(columns=["sent_ms"]).assign(sent_ms=math.nan)
    simulated = measure(arrivals, playout, **params)
    if handler_stats is not None:  # the peer cannot see crediting; the handler counted it
        measured = replace(measured, credited_bytes=handler_stats.marks_credited_bytes)
        simulated = replace(simulated, credited_bytes=simulation.metrics.credited_bytes)
    return CallResult(
        trace=trace,
        strategy=call.strategy,
        threshold_ms=call.threshold_ms,
        playout=playout,
        speed=speed,
        recording=recording,
        schedule=schedule,
        measured=measured,
        simulated=simulated,
        simulation=simulation,
        loopback_delay_ms=delay_ms,
        handler_stats=handler_stats,
        options={"mark_every_ms": call.mark_every_ms, "align_frames": call.align_frames},
    )

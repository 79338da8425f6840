"""The simulator: the real outbound strategies, driven by a virtual clock over a trace.

The world (labkit/sim/links.py ``make_world``): the sending app's event loop
(labkit/sim/sender_loop.py), the link to Twilio and back, and Twilio's playout model
(labkit/sim/playout.py). One event loop merges five time-ordered sources and always handles the
earliest (ties in this order): messages reaching Twilio over the link, the playout model's mark
echoes, echoes reaching the app over the return link, the trace's events (audio -> push,
audio_done -> end, audio_interrupted -> interrupt), and the strategy's timer (poll at its
deadline plus the loop's lateness). The last three call the strategy, in the order they fall
due, each when the sending loop gets to it (after a stall, after the cost of earlier sends).
The first two (the world) run up to each of those calls in one go. Nothing sleeps: a minute of
call runs in milliseconds.

This loop is the reference. A strategy that never reacts to echoes (``echo_blind``) takes the
staged fast path (labkit/sim/fastpath.py): the same strategy object, the world computed in bulk,
the same numbers. Either way the simulator drives the strategy objects themselves: no rule of a
strategy is restated here. See notebooks/01_why_tiny_packets_jitter.ipynb and
notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from functools import cached_property
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from labkit.audio import Audio
from labkit.outbound.base import Clear, Media, OutboundStrategy
from labkit.sim import fastpath
from labkit.sim.batch_playout import Pieces
from labkit.sim.collector import collector_paused
from labkit.sim.links import DEFAULT_LINK, Link, World, make_world
from labkit.sim.metrics import SCHEDULE_COLUMNS, Metrics, compute
from labkit.sim.playout import (
    DEFAULT_PLAYOUT,
    Fill,
    Playout,
    Segment,
    deliver_clear,
    make_playout,
)  # fmt: skip
from labkit.sim.prepared import AUDIO, DONE, PreparedTrace, prepare
from labkit.sim.render import CallerAudio, render_caller
from labkit.sim.sender import CLEAR, KIND_NAMES, MARK, MEDIA, send_all
from labkit.sim.sender_loop import SenderLoop
from labkit.traces import Trace

__all__ = ["PreparedTrace", "SimResult", "prepare", "simulate", "simulate_event_driven"]

BYTES_PER_MS = 8
MAX_STEPS_PER_EVENT = 200  # guards against a strategy whose deadline never moves forward
Played = tuple[list[Segment], list[Fill]]


class SimResult:
    """One run: ``.metrics``, ``.schedule`` (a DataFrame, one row per message), ``.audio`` (what
    the caller hears, gaps concealed), ``.render(conceal)``; ``.segments`` (audio played) and
    ``.fills`` (silence Twilio's model inserted)."""

    def __init__(
        self, metrics: Metrics, columns: dict[str, Any], played: Played | Callable[[], Played],
        pieces: Pieces | None = None, trace: PreparedTrace | None = None,
    ) -> None:  # fmt: skip
        self.metrics = metrics
        self.columns = columns  # lists or numpy arrays, by SCHEDULE_COLUMNS name
        self.pieces = pieces  # where messages played in several pieces (a frame clock)
        self._trace = trace
        self._played = played  # or the function rendering them, called when first needed

    def _rendered(self) -> Played:
        if callable(self._played):
            self._played = self._played()
        return self._played

    @property
    def segments(self) -> list[Segment]:
        """Played segments (start_ms, end_ms, mu-law bytes) of what the caller heard."""
        return self._rendered()[0]

    @property
    def fills(self) -> list[Fill]:
        """Silence the playout model inserted (start_ms, end_ms): padding, never concealed."""
        return self._rendered()[1]

    @cached_property
    def schedule(self) -> pd.DataFrame:
        # numpy columns go in as lists: the same frame (dtypes included) as list columns give
        return pd.DataFrame({name: _as_list(self.columns[name]) for name in SCHEDULE_COLUMNS})

    @property
    def item_audio(self) -> dict[tuple[str, int], bytes]:
        """Each item's whole audio, as the trace delivered it."""
        if self._trace is None:
            raise ValueError("this SimResult was made without its trace: it cannot be rendered")
        return self._trace.item_audio

    def render(self, conceal: str = "plc") -> CallerAudio:
        """What the caller hears, gaps concealed by G.711 Appendix I (``"plc"``) or silent;
        with each answer's reference and rendering for scoring (labkit/sim/render.py)."""
        return render_caller(self, conceal)

    @cached_property
    def audio(self) -> Audio:
        """What the caller hears from t=0 (session start), gaps concealed as a phone line does."""
        return self.render("plc").audio

    def __repr__(self) -> str:
        m = self.metrics
        return (f"SimResult({m.messages} messages, {m.played_ms:.0f} ms played, "
                f"{m.concealed_ms:.0f} ms concealed in {m.concealment_events} gaps)")  # fmt: skip


def _as_list(column: Any) -> Any:
    return column.tolist() if isinstance(column, np.ndarray) else column


# One schedule row per message, in send order: kind code, item_id, content_index, offset, size,
# generation, sent_ms, arrived_ms, name, payload (b"" but for media). Rows are tuples, turned
# into columns once at the end (a tuple per message instead of nine list appends).
Row = tuple[int, str, int, int, int, int, float, float, str, bytes]
ARRIVED: Final = 7  # index of arrived_ms in a Row


class _Run:
    """One simulation: the strategy, the sending loop, both links, the playout model and the
    schedule.

    The strategy sees only its own calls: trace events, polls and echoes reaching the app. All
    else (deliveries to the playout model, its timers, echoes sent back) is the *world*, run up
    to the next strategy call (``_advance_world``) in the loop's order: deliveries, then the
    model's timers, then echoes, trace events and polls, earliest first.

    A model with ``passive_timers`` (fifo, pad_every_message, fixed) gets each message as soon
    as it is sent, with its arrival time. Its receive calls come in the same order with the same
    arguments as at the arrivals (the link delivers in send order), and its timers only release
    mark echoes at times they fix themselves, so firing them later changes nothing; a clear is
    preceded by the timers due before it (``_deliver``). Echoes are still released only as the
    clock reaches them: until then a clear sent later could echo the mark sooner.
    """

    def __init__(
        self, trace: PreparedTrace, strategy: OutboundStrategy, loop: SenderLoop, fwd: Link,
        back: Link, playout: Playout,
    ) -> None:  # fmt: skip
        self.trace = trace
        self.strategy = strategy
        self.loop = loop
        self.fwd, self.back, self.playout = fwd, back, playout
        self.rows: list[Row] = []
        self.delivered = 0  # rows[delivered:] are in flight (the link delivers in send order)
        # deliver at send time (see the class docstring); a model that does not say gets each
        # message at its arrival
        self.eager: bool = getattr(playout, "passive_timers", False)
        next_ms = playout.next_event_ms()  # the model's next timer: it moves only when called
        self.play_at = math.inf if next_ms is None else next_ms
        self.echoes: deque[tuple[float, str, int]] = deque()  # (arrival at the app, name, row)
        self.mark_rows: dict[str, int] = {}
        self.media_rows: list[int] = []
        self.echo_ms: dict[int, float] = {}
        self.echo_received_ms: dict[int, float] = {}
        self.credited: dict[int, int] = {}
        self.columns: dict[str, Any] = {}
        self.kind_codes: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self.pieces: Pieces | None = None

    def run(self) -> None:
        trace, strategy, echoes, loop = self.trace, self.strategy, self.echoes, self.loop
        times, codes, keys, chunks = trace.times_ms, trace.codes, trace.keys, trace.chunks
        push, poll, next_deadline = strategy.push, strategy.poll, strategy.next_deadline
        record, advance_world = self._record, self._advance_world
        run_at = None if loop.punctual else loop.run_at
        n_events, i, polls = len(times), 0, 0
        # a poll that does any work sends at least one byte: one per audio byte is a bound
        max_polls = MAX_STEPS_PER_EVENT * (n_events + 10) + self.trace.audio_bytes
        inf = math.inf
        deadline: float | None = None
        poll_due = inf
        while True:
            t_trace = times[i] if i < n_events else inf
            t_back = echoes[0][0] if echoes else inf
            horizon = t_back if t_back < t_trace else t_trace
            if horizon > poll_due:
                horizon = poll_due
            if self.play_at <= horizon or self.delivered < len(self.rows):
                advance_world(horizon)
            if echoes and echoes[0][0] <= t_trace and echoes[0][0] <= poll_due:
                due, name, row = echoes.popleft()
                t = run_at(due) if run_at else due
                mark = strategy.echo(name, t)
                if row >= 0:
                    self.echo_received_ms[row] = due
                    if mark is not None:
                        self.credited[row] = mark.size
                outs = None
            elif t_trace <= poll_due:
                if t_trace == inf:
                    break
                t = run_at(t_trace) if run_at else t_trace
                code, key = codes[i], keys[i]
                if code == AUDIO:
                    outs = push(chunks[i], t)
                elif code == DONE:
                    outs = strategy.end(key[0], key[1], t)
                else:
                    outs = strategy.interrupt(t)
                i += 1
            else:
                polls += 1  # only polls can go on forever: the rest is bounded by the trace
                if polls > max_polls:
                    raise RuntimeError(
                        f"simulation of strategy {strategy.name!r} did not terminate: its "
                        f"deadline ({deadline}) keeps firing without moving on"
                    )
                t = run_at(poll_due) if run_at else poll_due
                deadline, poll_due = None, inf  # polled: the next deadline gets its own lateness
                outs = poll(t)
            if outs:
                record(outs, t)
            new_deadline = next_deadline()
            if new_deadline != deadline:
                deadline = new_deadline
                poll_due = inf if new_deadline is None else loop.timer_due(new_deadline, t)
        strategy.close()
        self._fill_columns()

    def _record(self, outs: list[Any], now: float) -> None:
        """Put the strategy's messages on the forward link (each draws its arrival as it leaves
        the sending loop)."""
        rows, send, leave = self.rows, self.fwd.send, self.loop.leave
        for out in outs:
            if type(out) is Media:
                payload = out.payload
                if payload:  # a marks-only Media puts no media message on the wire
                    self.media_rows.append(len(rows))
                    when = leave(now)
                    rows.append((MEDIA, out.item_id, out.content_index, out.offset, len(payload),
                                 out.generation, when, send(when), "", payload))  # fmt: skip
                for mark in out.marks:
                    self.mark_rows[mark.name] = len(rows)
                    when = leave(now)
                    rows.append((MARK, mark.item_id, mark.content_index, mark.start,
                                 mark.end - mark.start, mark.generation, when, send(when),
                                 mark.name, b""))  # fmt: skip
            elif isinstance(out, Clear):
                when = leave(now)
                rows.append((CLEAR, "", -1, 0, 0, out.generation, when, send(when), "", b""))
        if self.eager:
            self._deliver(self.delivered, len(rows))
            next_ms = self.playout.next_event_ms()
            self.play_at = math.inf if next_ms is None else next_ms

    def _advance_world(self, horizon: float) -> None:
        """Deliver messages and fire the model's timers due by ``horizon``, earliest first (a
        delivery first on a tie); echoes they cause go on the return link. An echo reaching
        the app before ``horizon`` moves it there: the strategy gets the echo first."""
        rows, playout, inf = self.rows, self.playout, math.inf
        delivered, play_at = self.delivered, self.play_at
        while True:
            t_fwd = rows[delivered][ARRIVED] if delivered < len(rows) else inf
            if t_fwd <= play_at:
                if t_fwd > horizon or t_fwd == inf:
                    break
                self._deliver(delivered, delivered + 1)
                delivered += 1
            else:
                if play_at > horizon:
                    break
                for name, echo_ms in playout.advance(play_at):
                    horizon = min(horizon, self._echo_back(name, echo_ms))
            next_ms = playout.next_event_ms()
            play_at = inf if next_ms is None else next_ms
        self.delivered, self.play_at = delivered, play_at

    def _deliver(self, start: int, stop: int) -> None:
        """Hand ``rows[start:stop]`` to the playout model at their arrival times."""
        playout = self.playout
        for kind, _, _, _, _, _, sent, now, name, payload in self.rows[start:stop]:
            if kind == MEDIA:
                playout.receive_media(payload, now)
            elif kind == MARK:
                playout.receive_mark(name, now)
            else:
                # Timers due before the clear fire first. Delivered in time order, they
                # already have; delivered at send time, they fire here, and what they echo is
                # final: no later clear can arrive before this one.
                timer_echoes, clear_echoes = deliver_clear(playout, sent, now)
                for echoed, echo_ms in timer_echoes:
                    self._echo_back(echoed, echo_ms)
                for echoed in clear_echoes:
                    self._echo_back(echoed, now)
        self.delivered = stop

    def _echo_back(self, name: str, echo_ms: float) -> float:
        """Send the echo of mark ``name`` back; returns when it reaches the app."""
        row = self.mark_rows.get(name, -1)
        if row >= 0:
            self.echo_ms[row] = echo_ms
        arrival = self.back.send(echo_ms)
        self.echoes.append((arrival, name, row))
        return arrival

    def _fill_columns(self) -> None:
        """The schedule: the rows transposed once, then what was played and echoed, by row."""
        rows = self.rows
        n = len(rows)
        kinds: list[int]
        if rows:
            kinds, item_id, index, offset, size, generation, sent, arrived, name, _ = (
                list(column) for column in zip(*rows, strict=True)
            )
        else:
            kinds, item_id, index, offset, size, generation, sent, arrived, name = (
                [] for _ in range(9)
            )
        start, end = [math.nan] * n, [math.nan] * n
        played, cleared, discarded = [0] * n, [0] * n, [0] * n
        plays = self.playout.plays
        for row, record in zip(self.media_rows, plays, strict=True):
            played[row] = record.played_bytes
            cleared[row] = record.cleared_bytes
            discarded[row] = record.discarded_bytes
            if record.played_bytes:
                start[row] = record.start_ms
                end[row] = record.end_ms
        self.pieces = Pieces.of(self.media_rows, plays)
        echo, received, credited = [math.nan] * n, [math.nan] * n, [0] * n
        for row, value in self.echo_ms.items():
            echo[row] = value
        for row, value in self.echo_received_ms.items():
            received[row] = value
        for row, bytes_credited in self.credited.items():
            credited[row] = bytes_credited
        self.kind_codes = np.array(kinds, dtype=np.int64)  # the metrics need not decode kind
        self.columns = dict(
            kind=[KIND_NAMES[k] for k in kinds], item_id=item_id, content_index=index,
            offset=offset, size=size, generation=generation, sent_ms=sent, arrived_ms=arrived,
            play_start_ms=start, play_end_ms=end, played_bytes=played, cleared_bytes=cleared,
            discarded_bytes=discarded, name=name, echo_ms=echo, echo_received_ms=received,
            credited_bytes=credited,
        )  # fmt: skip


StrategyFactory = Callable[..., OutboundStrategy]


def _default_factory() -> StrategyFactory:
    from labkit.outbound import make_strategy

    factory: StrategyFactory = make_strategy
    return factory


def simulate(
    trace: Trace | PreparedTrace,
    strategy: str | OutboundStrategy = "forward",
    threshold_ms: float = 50,
    link: str = DEFAULT_LINK,
    playout: str = DEFAULT_PLAYOUT,
    seed: int = 0,
    link_params: dict[str, float] | None = None,
    playout_params: dict[str, Any] | None = None,
    **strategy_options: Any,
) -> SimResult:
    """Simulate one call: ``trace`` through ``strategy`` over ``link`` into Twilio's ``playout``.

    ``strategy`` is a name for ``labkit.outbound.make_strategy`` (with ``threshold_ms`` and
    ``strategy_options``) or a ready strategy object. ``link`` names the world
    (labkit.sim.links.make_world: the sending loop and the link each way; ``link_params`` holds
    the parameters of both). Same seed, same result; one seed gives every strategy the same
    path delays and sender stalls (where the link draws them per time, not per message).
    """
    return _simulate(trace, strategy, threshold_ms, link, playout, seed, link_params,
                     playout_params, strategy_options, allow_fast_path=True)  # fmt: skip


def simulate_event_driven(
    trace: Trace | PreparedTrace,
    strategy: str | OutboundStrategy = "forward",
    threshold_ms: float = 50,
    link: str = DEFAULT_LINK,
    playout: str = DEFAULT_PLAYOUT,
    seed: int = 0,
    link_params: dict[str, float] | None = None,
    playout_params: dict[str, Any] | None = None,
    **strategy_options: Any,
) -> SimResult:
    """``simulate`` always through the event loop (the reference the fast path must equal)."""
    return _simulate(trace, strategy, threshold_ms, link, playout, seed, link_params,
                     playout_params, strategy_options, allow_fast_path=False)  # fmt: skip


@collector_paused
def _simulate(
    trace: Trace | PreparedTrace,
    strategy: str | OutboundStrategy,
    threshold_ms: float,
    link: str,
    playout: str,
    seed: int,
    link_params: dict[str, float] | None,
    playout_params: dict[str, Any] | None,
    strategy_options: dict[str, Any],
    *,
    allow_fast_path: bool,
) -> SimResult:
    prepared = trace if isinstance(trace, PreparedTrace) else prepare(trace)
    if isinstance(strategy, str):
        strategy = _default_factory()(strategy, threshold_ms, **strategy_options)
    world = make_world(link, seed, link_params)
    check_reach(prepared, world)
    model = make_playout(playout, **(playout_params or {}))
    if allow_fast_path and fastpath.applies(prepared, strategy):
        columns, render, kind_codes, play = fastpath.run(prepared, strategy, world.sender,
                                                         world.fwd, world.back, model)  # fmt: skip
        return _result(prepared, columns, render, kind_codes, play.pieces)
    run = _Run(prepared, strategy, world.sender, world.fwd, world.back, model)
    run.run()
    return _result(prepared, run.columns, (model.segments, model.fills), run.kind_codes,
                   run.pieces)  # fmt: skip


def check_reach(prepared: PreparedTrace, world: World) -> None:
    """Refuse, before any event is handled, a trace whose last event lies beyond what ``world``
    can draw up to (``World.reach_problem``): a valid trace may hold an event at t_ms 1e300, and
    the sending loop would draw its pauses one by one up to it. A ValueError naming the trace."""
    end_ms = prepared.times_ms[-1] if prepared.times_ms else 0.0  # times never decrease
    problem = world.reach_problem(end_ms)
    if problem is not None:
        raise ValueError(f"trace {prepared.name!r}: {problem}" if prepared.name
                         else f"the trace: {problem}")  # fmt: skip


MetricsMemo = dict[tuple[Any, ...], Metrics]


@collector_paused
def sweep_metrics(
    trace: PreparedTrace, strategy: str, threshold_ms: float, link: str, playout: str, seed: int,
    link_params: dict[str, float] | None, playout_params: dict[str, Any] | None,
    memo: MetricsMemo, strategy_options: dict[str, Any] | None = None,
) -> Metrics:  # fmt: skip
    """``simulate(...).metrics``, computed once per distinct run: on the fast path, a run whose
    strategy sent exactly the messages of an earlier run in ``memo`` (same trace, link, playout
    and seed) has that run's metrics, since everything after the sender is a function of them.
    Many thresholds of ``preroll`` send the same messages, for instance."""
    chosen = _default_factory()(strategy, threshold_ms, **(strategy_options or {}))
    world = make_world(link, seed, link_params)
    check_reach(trace, world)
    model = make_playout(playout, **(playout_params or {}))
    if not fastpath.applies(trace, chosen):
        run = _Run(trace, chosen, world.sender, world.fwd, world.back, model)
        run.run()
        return _result(trace, run.columns, ([], []), run.kind_codes, run.pieces).metrics
    sent = send_all(trace, chosen, world.sender)
    honor = fastpath.honors_generations(chosen)
    key = (trace.name, id(trace), link, _params_key(link_params), playout,
           _params_key(playout_params), seed, fastpath.fingerprint(sent, honor))  # fmt: skip
    metrics = memo.get(key)
    if metrics is None:
        columns, render, kinds, play = fastpath.finish(trace, sent, honor, world.fwd, world.back,
                                                       model)  # fmt: skip
        metrics = memo[key] = _result(trace, columns, render, kinds, play.pieces).metrics
    return metrics


def _params_key(params: dict[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((params or {}).items()))


def _result(prepared: PreparedTrace, columns: dict[str, Any],
            played: Played | Callable[[], Played], kind_codes: npt.NDArray[np.int64] | None,
            pieces: Pieces | None) -> SimResult:  # fmt: skip
    metrics = compute(
        columns,
        origins_ms=prepared.origins_ms,
        interrupts_ms=np.asarray(prepared.interrupts_ms, dtype=np.float64),
        kind_codes=kind_codes,
        pieces=pieces,
    )
    return SimResult(metrics, columns, played, pieces, prepared)

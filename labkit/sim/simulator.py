"""The simulator: the real outbound strategies, driven by a virtual clock over a trace.

One event loop merges five time-ordered sources and always handles the earliest (ties in this
order): messages reaching Twilio over the link, the playout model's mark echoes, echoes reaching the
app over the return link, the trace's events (audio -> push, audio_done -> end, audio_interrupted ->
interrupt), and the strategy's timer (poll at its deadline plus the sender's lateness). Each source
is already in time order, so a merge of their heads replaces a heap. Nothing sleeps: a minute of
call runs in milliseconds. See notebooks/01_why_tiny_packets_jitter.ipynb and
notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from labkit.audio import SILENCE_BYTE, Audio
from labkit.outbound.base import AudioChunk, Clear, Media, OutboundStrategy
from labkit.sim import fastpath
from labkit.sim.links import Link, make_link
from labkit.sim.metrics import SCHEDULE_COLUMNS, Metrics, compute
from labkit.sim.playout import FifoPlayout, Segment, make_playout
from labkit.traces import Trace

BYTES_PER_MS = 8
MAX_STEPS_PER_EVENT = 200  # guards against a strategy whose deadline never moves forward
AUDIO, DONE, INTERRUPTED = 0, 1, 2
TRACE_EVENT_CODES = {"audio": AUDIO, "audio_done": DONE, "audio_interrupted": INTERRUPTED}
ECHO_SEED_OFFSET = 1_000_003  # the return link draws from its own stream


@dataclass(frozen=True)
class PreparedTrace:
    """The parts of a trace the loop reads, as plain lists (prepared once per trace in a sweep)."""

    name: str
    times_ms: list[float]
    codes: list[int]
    keys: list[tuple[str, int]]
    payloads: list[bytes]
    item_bytes: dict[tuple[str, int], int]  # total bytes of items that finished (audio_done)
    origins_ms: dict[tuple[str, int], float]  # when each item's first byte was delivered
    interrupts_ms: list[float]
    audio_bytes: int = 0  # all audio bytes of the trace


def prepare(trace: Trace, name: str = "") -> PreparedTrace:
    """Extract the events the simulator drives the strategy with."""
    times, codes, keys, payloads = [], [], [], []
    sizes: dict[tuple[str, int], int] = {}
    done: set[tuple[str, int]] = set()
    origins: dict[tuple[str, int], float] = {}
    for event in trace.events:
        code = TRACE_EVENT_CODES.get(event.type)
        key = event.key
        if code is None or key is None:
            continue
        times.append(float(event.t_ms))
        codes.append(code)
        keys.append(key)
        payloads.append(event.audio)
        if code == AUDIO:
            sizes[key] = sizes.get(key, 0) + len(event.audio)
            origins.setdefault(key, float(event.t_ms))
        elif code == DONE:
            done.add(key)
    interrupts = [t for t, c in zip(times, codes, strict=True) if c == INTERRUPTED]
    finished = {k: v for k, v in sizes.items() if k in done}
    return PreparedTrace(name, times, codes, keys, payloads, finished, origins, interrupts,
                         sum(sizes.values()))  # fmt: skip


class SimResult:
    """One run: ``.metrics``, ``.schedule`` (a DataFrame, one row per message), ``.audio``."""

    def __init__(
        self,
        metrics: Metrics,
        columns: dict[str, Any],
        segments: list[Segment] | Callable[[], list[Segment]],
    ) -> None:
        self.metrics = metrics
        self.columns = columns  # lists or numpy arrays, by SCHEDULE_COLUMNS name
        self._segments = segments  # or the function rendering them, called when first needed

    @property
    def segments(self) -> list[Segment]:
        """Played segments (start_ms, end_ms, mu-law bytes) of what the caller heard."""
        if callable(self._segments):
            self._segments = self._segments()
        return self._segments

    @cached_property
    def schedule(self) -> pd.DataFrame:
        # numpy columns go in as lists: the same frame (dtypes included) as list columns give
        return pd.DataFrame({name: _as_list(self.columns[name]) for name in SCHEDULE_COLUMNS})

    @cached_property
    def audio(self) -> Audio:
        """What the caller hears from t=0 (session start): played bytes, silence elsewhere."""
        return Audio.from_ulaw(render_segments(self.segments))

    def __repr__(self) -> str:
        m = self.metrics
        return (f"SimResult({m.messages} messages, {m.played_ms:.0f} ms played, "
                f"{m.concealed_ms:.0f} ms concealed in {m.concealment_events} gaps)")  # fmt: skip


def _as_list(column: Any) -> Any:
    return column.tolist() if isinstance(column, np.ndarray) else column


def render_segments(segments: list[tuple[float, float, bytes]]) -> bytes:
    """mu-law bytes of played segments on a silent timeline starting at 0 ms."""
    if not segments:
        return b""
    total = max(round(end * BYTES_PER_MS) for _, end, _ in segments)
    timeline = bytearray([SILENCE_BYTE]) * total
    for start, _, payload in segments:
        at = max(round(start * BYTES_PER_MS), 0)
        timeline[at : at + len(payload)] = payload
    return bytes(timeline[:total])


class _Run:
    """State of one simulation: the strategy, both links, the playout model and the schedule."""

    def __init__(
        self, trace: PreparedTrace, strategy: OutboundStrategy, fwd: Link, back: Link,
        playout: FifoPlayout,
    ) -> None:  # fmt: skip
        self.trace = trace
        self.strategy = strategy
        self.fwd, self.back, self.playout = fwd, back, playout
        self.columns: dict[str, list[Any]] = {name: [] for name in SCHEDULE_COLUMNS}
        self.in_flight: deque[tuple[float, int, Any]] = deque()  # (arrival, row, payload/name)
        self.echoes: deque[tuple[float, str]] = deque()  # (arrival at the app, mark name)
        self.mark_rows: dict[str, int] = {}
        self.media_rows: list[int] = []
        self.deadline: float | None = None
        self.poll_at = math.inf

    def send(self, outs: list[Any], now: float) -> None:
        c = self.columns
        send_link = self.fwd.send
        for out in outs:
            if isinstance(out, Media):
                if out.payload:  # a marks-only Media puts no media message on the wire
                    size = len(out.payload)
                    self._row("media", out.item_id, out.content_index, out.offset, size,
                              out.generation, now, send_link(now), "")  # fmt: skip
                    self.media_rows.append(len(c["kind"]) - 1)
                    self.in_flight.append((c["arrived_ms"][-1], len(c["kind"]) - 1, out.payload))
                for mark in out.marks:
                    self._row("mark", mark.item_id, mark.content_index, mark.start, mark.size,
                              mark.generation, now, send_link(now), mark.name)  # fmt: skip
                    self.mark_rows[mark.name] = len(c["kind"]) - 1
                    self.in_flight.append((c["arrived_ms"][-1], len(c["kind"]) - 1, mark.name))
            elif isinstance(out, Clear):
                self._row("clear", "", -1, 0, 0, out.generation, now, send_link(now), "")
                self.in_flight.append((c["arrived_ms"][-1], len(c["kind"]) - 1, None))
        self._update_deadline(now)

    def _row(self, kind: str, item_id: str, content_index: int, offset: int, size: int,
             generation: int, sent: float, arrived: float, name: str) -> None:  # fmt: skip
        c = self.columns
        c["kind"].append(kind)
        c["item_id"].append(item_id)
        c["content_index"].append(content_index)
        c["offset"].append(offset)
        c["size"].append(size)
        c["generation"].append(generation)
        c["sent_ms"].append(sent)
        c["arrived_ms"].append(arrived)
        c["name"].append(name)

    def _update_deadline(self, now: float) -> None:
        deadline = self.strategy.next_deadline()
        if deadline == self.deadline:
            return
        self.deadline = deadline
        if deadline is None:
            self.poll_at = math.inf
        else:
            self.poll_at = max(deadline + self.fwd.lateness(), now)

    def deliver(self, now: float) -> None:
        _, row, body = self.in_flight.popleft()
        kind = self.columns["kind"][row]
        if kind == "media":
            c = self.columns
            key = (c["item_id"][row], c["content_index"][row])
            total = self.trace.item_bytes.get(key, -1)
            last = c["offset"][row] + c["size"][row] == total
            self.playout.receive_media(body, now, item=(*key, c["generation"][row]), last=last)
        elif kind == "mark":
            self.playout.receive_mark(body, now)
        else:
            for name in self.playout.receive_clear(now):
                self.echo_back(name, now)

    def echo_back(self, name: str, echo_ms: float) -> None:
        row = self.mark_rows.get(name)
        if row is not None:
            self.echo_ms[row] = echo_ms
        self.echoes.append((self.back.send(echo_ms), name))

    def receive_echo(self, now: float) -> None:
        _, name = self.echoes.popleft()
        mark = self.strategy.echo(name, now)
        row = self.mark_rows.get(name)
        if row is not None:
            self.echo_received_ms[row] = now
            if mark is not None:
                self.credited[row] = mark.size
        self._update_deadline(now)

    def run(self) -> None:
        n_rows_hint = len(self.trace.times_ms)
        self.echo_ms: dict[int, float] = {}
        self.echo_received_ms: dict[int, float] = {}
        self.credited: dict[int, int] = {}
        trace = self.trace
        times, codes, keys, payloads = trace.times_ms, trace.codes, trace.keys, trace.payloads
        strategy, playout, in_flight, echoes = (
            self.strategy,
            self.playout,
            self.in_flight,
            self.echoes,
        )
        n_events, i, steps = len(times), 0, 0
        max_steps = MAX_STEPS_PER_EVENT * (n_events + 10) + 10 * n_rows_hint
        inf = math.inf
        while True:
            t_fwd = in_flight[0][0] if in_flight else inf
            t_play = playout.next_event_ms()
            if t_play is None:
                t_play = inf
            t_back = echoes[0][0] if echoes else inf
            t_trace = times[i] if i < n_events else inf
            t = min(t_fwd, t_play, t_back, t_trace, self.poll_at)
            if t == inf:
                break
            steps += 1
            if steps > max_steps:
                raise RuntimeError(
                    f"simulation of strategy {strategy.name!r} did not terminate: its deadline "
                    f"({self.deadline}) keeps firing without moving on"
                )
            if t == t_fwd:
                self.deliver(t)
            elif t == t_play:
                for name, echo_ms in playout.advance(t):
                    self.echo_back(name, echo_ms)
            elif t == t_back:
                self.receive_echo(t)
            elif t == t_trace:
                code = codes[i]
                if code == AUDIO:
                    key = keys[i]
                    self.send(strategy.push(AudioChunk(key[0], key[1], payloads[i]), t), t)
                elif code == DONE:
                    self.send(strategy.end(keys[i][0], keys[i][1], t), t)
                else:
                    self.send(strategy.interrupt(t), t)
                i += 1
            else:
                self.deadline = None  # polled: the next deadline gets its own lateness
                self.poll_at = inf
                self.send(strategy.poll(t), t)
        strategy.close()
        self._fill_play_columns()

    def _fill_play_columns(self) -> None:
        c = self.columns
        n = len(c["kind"])
        start, end = [math.nan] * n, [math.nan] * n
        played, cleared, discarded = [0] * n, [0] * n, [0] * n
        for row, record in zip(self.media_rows, self.playout.plays, strict=True):
            played[row] = record.played_bytes
            cleared[row] = record.cleared_bytes
            discarded[row] = record.discarded_bytes
            if record.played_bytes:
                start[row] = record.start_ms
                end[row] = record.start_ms + record.played_bytes / BYTES_PER_MS
        echo, received, credited = [math.nan] * n, [math.nan] * n, [0] * n
        for row, value in self.echo_ms.items():
            echo[row] = value
        for row, value in self.echo_received_ms.items():
            received[row] = value
        for row, size in self.credited.items():
            credited[row] = size
        c.update(play_start_ms=start, play_end_ms=end, played_bytes=played, cleared_bytes=cleared,
                 discarded_bytes=discarded, echo_ms=echo, echo_received_ms=received,
                 credited_bytes=credited)  # fmt: skip


StrategyFactory = Callable[..., OutboundStrategy]


def _default_factory() -> StrategyFactory:
    from labkit.outbound import make_strategy

    factory: StrategyFactory = make_strategy
    return factory


def simulate(
    trace: Trace | PreparedTrace,
    strategy: str | OutboundStrategy = "forward",
    threshold_ms: float = 50,
    link: str = "jitter",
    playout: str = "fifo",
    seed: int = 0,
    link_params: dict[str, float] | None = None,
    playout_params: dict[str, float] | None = None,
    **strategy_options: Any,
) -> SimResult:
    """Simulate one call: ``trace`` through ``strategy`` over ``link`` into Twilio's ``playout``.

    ``strategy`` is a name for ``labkit.outbound.make_strategy`` (with ``threshold_ms`` and
    ``strategy_options``) or a ready strategy object. The return link (mark echoes) is a model of
    the same kind and parameters with its own random stream. Same seed, same result.
    """
    return _simulate(trace, strategy, threshold_ms, link, playout, seed, link_params,
                     playout_params, strategy_options, allow_fast_path=True)  # fmt: skip


def simulate_event_driven(
    trace: Trace | PreparedTrace,
    strategy: str | OutboundStrategy = "forward",
    threshold_ms: float = 50,
    link: str = "jitter",
    playout: str = "fifo",
    seed: int = 0,
    link_params: dict[str, float] | None = None,
    playout_params: dict[str, float] | None = None,
    **strategy_options: Any,
) -> SimResult:
    """``simulate`` always through the event loop (the reference the fast path must equal)."""
    return _simulate(trace, strategy, threshold_ms, link, playout, seed, link_params,
                     playout_params, strategy_options, allow_fast_path=False)  # fmt: skip


def _simulate(
    trace: Trace | PreparedTrace,
    strategy: str | OutboundStrategy,
    threshold_ms: float,
    link: str,
    playout: str,
    seed: int,
    link_params: dict[str, float] | None,
    playout_params: dict[str, float] | None,
    strategy_options: dict[str, Any],
    *,
    allow_fast_path: bool,
) -> SimResult:
    prepared = trace if isinstance(trace, PreparedTrace) else prepare(trace)
    if isinstance(strategy, str):
        strategy = _default_factory()(strategy, threshold_ms, **strategy_options)
    fwd, back = _links(link, seed, link_params)
    model = make_playout(playout, **(playout_params or {}))
    if allow_fast_path and fastpath.applies(prepared, strategy):
        columns, segments, kind_codes = fastpath.run(prepared, strategy, fwd, back, model)
        return _result(prepared, columns, segments, kind_codes)
    run = _Run(prepared, strategy, fwd, back, model)
    run.run()
    return _result(prepared, run.columns, model.segments)


MetricsMemo = dict[tuple[Any, ...], Metrics]


def sweep_metrics(
    trace: PreparedTrace, strategy: str, threshold_ms: float, link: str, playout: str, seed: int,
    link_params: dict[str, float] | None, playout_params: dict[str, float] | None,
    memo: MetricsMemo,
) -> Metrics:  # fmt: skip
    """``simulate(...).metrics``, computed once per distinct run: on the fast path, a run whose
    strategy sent exactly the messages of an earlier run in ``memo`` (same trace, link, playout
    and seed) has that run's metrics, since everything after the sender is a function of them.
    Many thresholds of ``preroll`` send the same messages, for instance."""
    chosen = _default_factory()(strategy, threshold_ms)
    fwd, back = _links(link, seed, link_params)
    model = make_playout(playout, **(playout_params or {}))
    if not fastpath.applies(trace, chosen):
        run = _Run(trace, chosen, fwd, back, model)
        run.run()
        return _result(trace, run.columns, model.segments).metrics
    sent = fastpath.send(trace, chosen, fwd)
    honor = fastpath.honors_generations(chosen)
    key = (trace.name, id(trace), link, _params_key(link_params), playout,
           _params_key(playout_params), seed, fastpath.fingerprint(sent, honor))  # fmt: skip
    metrics = memo.get(key)
    if metrics is None:
        columns, render, kinds = fastpath.finish(trace, sent, honor, fwd, back, model)
        metrics = memo[key] = _result(trace, columns, render, kinds).metrics
    return metrics


def _params_key(params: dict[str, float] | None) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((params or {}).items()))


def _links(name: str, seed: int, params: dict[str, float] | None) -> tuple[Link, Link]:
    """The forward link and the return link: same model, separate random streams."""
    fwd = make_link(name, np.random.default_rng(seed), **(params or {}))
    back = make_link(name, np.random.default_rng(seed + ECHO_SEED_OFFSET), **(params or {}))
    return fwd, back


def _result(prepared: PreparedTrace, columns: dict[str, Any],
            segments: list[Segment] | Callable[[], list[Segment]],
            kind_codes: npt.NDArray[np.int64] | None = None) -> SimResult:  # fmt: skip
    metrics = compute(
        columns,
        origins_ms=prepared.origins_ms,
        interrupts_ms=np.asarray(prepared.interrupts_ms, dtype=np.float64),
        kind_codes=kind_codes,
    )
    return SimResult(metrics, columns, segments)

"""Sweeps: every combination of trace x strategy x threshold x link x playout x seed, one row each.

The work is cut into chunks of one trace each, runs dealt round-robin across a trace's chunks so
every chunk mixes cheap and costly strategies and workers finish together. A worker holds each
trace once, prepared, with what its runs share (``TraceRuns``), and computes every row with
``_run_row``: the one place a row is made, whichever engine runs the chunks (this module's
processes, or Dask in ``labkit.sim.fleet``). Engines yield each chunk's rows as it finishes,
so ``labkit sweep`` writes them as they come (``labkit.sim.sweep_journal``) and a rerun skips
the runs already done.

Results are the same as one ``simulate`` per row, but nothing is computed twice: a strategy that
ignores ``threshold_ms`` (THRESHOLD_BLIND) runs once per trace, link, playout and seed, its row
copied for every threshold; and a run whose strategy sends exactly the messages of an earlier
run reuses its metrics (``labkit.sim.simulator.sweep_metrics``).
See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from labkit.sim.links import DEFAULT_LINK, LINK_NAMES
from labkit.sim.playout import DEFAULT_PLAYOUT, PLAYOUT_NAMES
from labkit.sim.render import CONCEAL_MODES, mos_lqo
from labkit.sim.simulator import MetricsMemo, PreparedTrace, prepare, simulate, sweep_metrics
from labkit.sim.sweep_traces import TraceSource, TraceSpec, load_all, load_trace, trace_sources
from labkit.traces import Trace, TraceLimits

__all__ = ["SweepGrid", "TraceSpec", "check_names", "load_trace", "sweep"]

CHUNKS_PER_JOB = 8  # enough pieces that processes finish together
MAX_RUNS_PER_CHUNK = 256  # a worker's rows come back at least this often (progress, resume)
THRESHOLD_BLIND = frozenset({"forward"})  # labkit/outbound/forward.py only checks threshold_ms
RUN_COLUMNS = ("trace", "strategy", "threshold_ms", "link", "playout", "seed")  # a row's key
SORT_COLUMNS = ["trace", "strategy", "link", "playout", "threshold_ms", "seed"]
Run = tuple[str, float, str, str, int]  # strategy, threshold_ms, link, playout, seed
RunKey = tuple[str, str, float, str, str, int]  # the RUN_COLUMNS of one row
Row = dict[str, Any]


@dataclass(frozen=True)
class SweepGrid:
    """What a sweep runs on every trace, and the options every run shares."""

    strategies: tuple[str, ...]
    thresholds_ms: tuple[float, ...]
    links: tuple[str, ...]
    playouts: tuple[str, ...]
    seeds: tuple[int, ...]
    link_params: dict[str, float] | None = None
    playout_params: dict[str, Any] | None = None
    strategy_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    mos: bool = False
    conceal: str = "plc"

    def __post_init__(self) -> None:
        if not (self.strategies and self.thresholds_ms and self.links and self.playouts
                and self.seeds):  # fmt: skip
            raise ValueError(
                "sweep: traces, strategies, thresholds, links, playouts and seeds must be non-empty"
            )
        check_names(self.strategies, self.links, self.playouts)
        if self.conceal not in CONCEAL_MODES:
            raise ValueError(f"sweep: unknown conceal {self.conceal!r}; choose one of "
                             f"{', '.join(CONCEAL_MODES)}")  # fmt: skip

    @classmethod
    def of(
        cls, strategies: Iterable[str], thresholds_ms: Iterable[float], links: Iterable[str],
        seeds: int | Iterable[int], playouts: Iterable[str], **options: Any,
    ) -> SweepGrid:  # fmt: skip
        """A grid from ``sweep``'s arguments: ``seeds`` a count (0..N-1) or the seeds. A value
        given twice counts once (a run is one row)."""
        seed_list = range(seeds) if isinstance(seeds, int) else seeds
        options["strategy_options"] = options.get("strategy_options") or {}
        return cls(_once(strategies), _once(float(t) for t in thresholds_ms), _once(links),
                   _once(playouts), _once(seed_list), **options)  # fmt: skip

    def combos(self) -> list[tuple[str, float, str, str]]:
        return list(itertools.product(self.strategies, self.thresholds_ms, self.links,
                                      self.playouts))  # fmt: skip

    @property
    def runs_per_trace(self) -> int:
        return len(self.combos()) * len(self.seeds)

    def options(self) -> dict[str, Any]:
        """What ``_run_row`` needs besides the run itself."""
        return {"link_params": self.link_params, "playout_params": self.playout_params,
                "strategy_options": self.strategy_options, "mos": self.mos,
                "conceal": self.conceal}  # fmt: skip


def _once(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True)
class Chunk:
    """Runs of one trace (the ``trace_index``-th of the sweep)."""

    trace_index: int
    runs: tuple[Run, ...]


@dataclass
class TraceRuns:
    """One trace as a worker holds it: prepared once, with what its runs can share."""

    prepared: PreparedTrace
    memo: MetricsMemo = field(default_factory=dict)  # metrics of the distinct runs done
    blind_rows: dict[tuple[str, str, str, int], Row] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, trace: Trace) -> TraceRuns:
        return cls(prepare(trace, name))

    def rows(self, runs: Iterable[Run], options: dict[str, Any]) -> list[Row]:
        return [_run_row(self, run, options) for run in runs]


def _run_row(state: TraceRuns, run: Run, options: dict[str, Any]) -> Row:
    """The sweep row of one run."""
    strategy, threshold, link, playout, seed = run
    trace = state.prepared
    blind_key = (strategy, link, playout, seed)
    chosen = options["strategy_options"].get(strategy, {})
    if strategy in THRESHOLD_BLIND:
        from labkit.outbound import make_strategy  # lazily, as the simulator does

        make_strategy(strategy, threshold, **chosen)  # a bad threshold fails as the run would
        if blind_key in state.blind_rows:
            return {**state.blind_rows[blind_key], "threshold_ms": threshold}
    score: dict[str, float] = {}
    if options["mos"]:  # the audio is needed: the whole run, not the memoised metrics
        result = simulate(trace, strategy, threshold, link, playout, seed, options["link_params"],
                          options["playout_params"], **chosen)  # fmt: skip
        metrics = result.metrics
        score = {"mos_lqo": mos_lqo(result, options["conceal"])}
    else:
        metrics = sweep_metrics(trace, strategy, threshold, link, playout, seed,
                                options["link_params"], options["playout_params"], state.memo,
                                chosen)  # fmt: skip
    row = {
        "trace": trace.name, "strategy": strategy, "threshold_ms": threshold,
        "link": link, "playout": playout, "seed": seed,
        **metrics.as_row(), **score,
    }  # fmt: skip
    if strategy in THRESHOLD_BLIND:
        state.blind_rows[blind_key] = row
    return row


def plan_chunks(
    names: Sequence[str], grid: SweepGrid, pieces: int, done: Collection[RunKey] = ()
) -> list[Chunk]:
    """About ``pieces`` chunks (more when a trace has over MAX_RUNS_PER_CHUNK runs), each of
    one trace with its combinations dealt round-robin, every seed of each; runs in ``done``
    are left out, and so are chunks left empty."""
    combos = grid.combos()
    per_trace = min(len(combos), max(1, math.ceil(pieces / len(names)),
                                     math.ceil(grid.runs_per_trace / MAX_RUNS_PER_CHUNK)))
    chunks = []
    for index, name in enumerate(names):
        for k in range(per_trace):
            runs = tuple((*combo, seed) for combo in combos[k::per_trace] for seed in grid.seeds
                         if (name, *combo, seed) not in done)  # fmt: skip
            if runs:
                chunks.append(Chunk(index, runs))
    return chunks


_worker_traces: list[TraceRuns] = []  # this worker process's traces (process pool)


def _init_worker(traces: Sequence[tuple[str, Trace]]) -> None:
    _worker_traces[:] = [TraceRuns.of(name, trace) for name, trace in traces]


def _run_chunk(chunk: Chunk, options: dict[str, Any]) -> list[Row]:
    return _worker_traces[chunk.trace_index].rows(chunk.runs, options)


def pool_batches(
    sources: Sequence[TraceSource], grid: SweepGrid, jobs: int = 1,
    limits: TraceLimits | None = None, done: Collection[RunKey] = (),
) -> Iterator[list[Row]]:  # fmt: skip
    """The rows of every run not in ``done``, a chunk's rows at a time as chunks finish, from
    ``jobs`` processes (this one when 1). Traces are read here, once, and sent to each process."""
    if jobs < 1:
        raise ValueError(f"sweep: jobs must be >= 1, got {jobs}")
    traces = [(source.name, trace) for source, trace in load_all(sources, limits)]
    chunks = plan_chunks([name for name, _ in traces], grid, CHUNKS_PER_JOB * jobs, done)
    options = grid.options()
    if jobs == 1:
        states = [TraceRuns.of(name, trace) for name, trace in traces]
        for chunk in chunks:
            yield states[chunk.trace_index].rows(chunk.runs, options)
        return
    pool = ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(traces,))
    try:
        futures = [pool.submit(_run_chunk, chunk, options) for chunk in chunks]
        for future in as_completed(futures):
            yield future.result()
    finally:  # also when the caller stops early: runs not started are dropped
        pool.shutdown(wait=True, cancel_futures=True)


def runs_frame(rows: Iterable[Row] | pd.DataFrame) -> pd.DataFrame:
    """Rows as a DataFrame in the sweep's order (trace, strategy, link, playout, threshold,
    seed), whatever order they finished in."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    return frame.sort_values(SORT_COLUMNS, kind="stable").reset_index(drop=True)


def sweep(
    traces: Iterable[TraceSpec],
    strategies: Iterable[str],
    thresholds_ms: Iterable[float],
    links: Iterable[str] = (DEFAULT_LINK,),
    seeds: int | Iterable[int] = 1,
    playouts: Iterable[str] = (DEFAULT_PLAYOUT,),
    jobs: int = 1,
    progress: bool = True,
    link_params: dict[str, float] | None = None,
    playout_params: dict[str, Any] | None = None,
    strategy_options: dict[str, dict[str, Any]] | None = None,
    trace_limits: TraceLimits | None = None,
    mos: bool = False,
    conceal: str = "plc",
    dask: bool | str = False,
) -> pd.DataFrame:
    """A tidy DataFrame, one row per run: trace, strategy, threshold_ms, link, playout, seed and
    every metric. ``labkit.sim.summary.summarize`` turns it into means and intervals over seeds.

    ``traces`` are Trace objects, files, directories (every trace directly inside) or shipped
    names. ``seeds`` is a count (seeds 0..N-1) or the seeds themselves; ``jobs > 1`` runs in
    processes. ``dask=True`` runs on a Dask ``LocalCluster`` of ``jobs`` worker processes, a
    string on the Dask scheduler at that address (``labkit.sim.fleet``): same rows.
    ``strategy_options`` maps a strategy name to its options (e.g. ``{"original_report":
    {"variant": "first"}}``). Unknown strategy, link or playout names fail at once, listing the
    choices.
    Trace files are read within ``trace_limits`` (``labkit.traces.limits``; None: the defaults).
    ``mos`` adds ``mos_lqo`` (P.862 of the caller's audio, gaps rendered with ``conceal``; about
    a second per minute of audio: labkit/sim/render.py).
    """
    specs = list(traces)
    if not specs:
        raise ValueError("sweep: traces must be non-empty")
    grid = SweepGrid.of(strategies, thresholds_ms, links, seeds, playouts,
                        link_params=link_params, playout_params=playout_params,
                        strategy_options=strategy_options, mos=mos, conceal=conceal)  # fmt: skip
    if jobs < 1:
        raise ValueError(f"sweep: jobs must be >= 1, got {jobs}")
    sources = trace_sources(specs)
    bar = progress_bar(len(sources) * grid.runs_per_trace, progress)
    rows: list[Row] = []
    with bar:
        if dask is False:
            batches = pool_batches(sources, grid, jobs, trace_limits)
            for batch in batches:
                rows.extend(batch)
                bar.update(len(batch))
        else:
            from labkit.sim.fleet import dask_batches, dask_client

            address = None if dask is True else dask
            with dask_client(address, workers=jobs) as client:
                for batch in dask_batches(client, sources, grid, trace_limits):
                    rows.extend(batch)
                    bar.update(len(batch))
    return runs_frame(rows)


def check_names(strategies: Sequence[str], links: Sequence[str], playouts: Sequence[str]) -> None:
    """A ValueError naming every unknown strategy, link or playout, with the choices."""
    from labkit.outbound import strategy_class

    problems = []
    for name in strategies:
        try:
            strategy_class(name)
        except ValueError as exc:
            problems.append(str(exc))
    problems += [f"unknown link {name!r}; choose one of {', '.join(LINK_NAMES)}"
                 for name in links if name not in LINK_NAMES]  # fmt: skip
    problems += [f"unknown playout {name!r}; choose one of {', '.join(PLAYOUT_NAMES)}"
                 for name in playouts if name not in PLAYOUT_NAMES]  # fmt: skip
    if problems:
        raise ValueError("; ".join(problems))


def progress_bar(total: int, enabled: bool = True, initial: int = 0) -> Any:
    """A tqdm bar counting runs (``initial`` of them already done)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="run", desc="sweep")

"""Sweeps: every combination of trace x strategy x threshold x link x playout x seed, one row each.

``sweep`` runs the grid's chunks (``labkit.sim.sweep_runs``) on an engine: processes on this
machine (``pool_batches``) or Dask (``labkit.sim.fleet``). Engines yield each chunk's rows as it
finishes, so ``labkit sweep`` writes them as they come (``labkit.sim.sweep_journal``) and a rerun
skips the runs already done. See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from concurrent.futures import as_completed
from typing import Any

import pandas as pd

from labkit.sim.links import DEFAULT_LINK
from labkit.sim.playout import DEFAULT_PLAYOUT
from labkit.sim.processes import check_jobs, running_pool
from labkit.sim.sweep_runs import (
    CHUNKS_PER_JOB,
    Chunk,
    KeptTraces,
    Row,
    RunKey,
    SweepGrid,
    TraceRuns,
    check_names,
    plan_chunks,
    runs_frame,
)
from labkit.sim.sweep_traces import (
    TraceSource,
    TraceSpec,
    checked_sources,
    load_trace,
    trace_sources,
    trace_specs,
)
from labkit.traces import TraceLimits

__all__ = ["SweepGrid", "TraceSpec", "check_names", "load_trace", "pool_batches", "progress_bar",
           "sweep"]  # fmt: skip

_worker_kept = KeptTraces()  # a pool's worker: its sweep's recent traces, by index
_worker_limits: list[TraceLimits | None] = [None]  # a pool's worker: its sweep's trace limits


def _init_worker(limits: TraceLimits | None) -> None:
    _worker_limits[0] = limits


def _run_chunk(source: TraceSource, chunk: Chunk, options: dict[str, Any]) -> list[Row]:
    """A pool's task (a pool runs one sweep: its worker's indexes name that sweep's traces)."""
    return _chunk_rows(_worker_kept, source, chunk, options, _worker_limits[0])


def _chunk_rows(kept: KeptTraces, source: TraceSource, chunk: Chunk, options: dict[str, Any],
                limits: TraceLimits | None) -> list[Row]:  # fmt: skip
    """The rows of ``chunk``, its trace read (within ``limits``) and prepared once while it is
    among the last few ``kept``."""
    state = kept.get(chunk.trace_index, lambda: TraceRuns.of(source.name, source.load(limits)))
    return state.rows(chunk.runs, options)


def pool_batches(
    sources: Sequence[TraceSource], grid: SweepGrid, jobs: int = 1,
    limits: TraceLimits | None = None, done: Collection[RunKey] = (),
) -> Iterator[list[Row]]:  # fmt: skip
    """The rows of every run not in ``done``, a chunk's rows at a time as chunks finish, from
    ``jobs`` processes (this one when 1). Every trace is read and checked here before any run
    (``SweepGrid.check_trace``), then let go: the process running a chunk reads its file again
    (same machine) and keeps only its last few traces (``KeptTraces``), so a fleet of calls is
    never held whole, in this process or in a worker."""
    check_jobs("sweep", jobs)
    sources = checked_sources(sources, limits, grid.check_trace)
    chunks = plan_chunks([source.name for source in sources], grid, CHUNKS_PER_JOB * jobs, done)
    options = grid.options()
    if jobs == 1:
        kept = KeptTraces()  # this sweep's own: another sweep's indexes name other traces
        for chunk in chunks:
            yield _chunk_rows(kept, sources[chunk.trace_index], chunk, options, limits)
        return
    with running_pool(jobs, _init_worker, (limits,)) as pool:  # ended if the caller stops early
        futures = [pool.submit(_run_chunk, sources[chunk.trace_index], chunk, options)
                   for chunk in chunks]  # fmt: skip
        for future in as_completed(futures):
            yield future.result()


def sweep(
    traces: TraceSpec | Iterable[TraceSpec],
    strategies: str | Iterable[str],
    thresholds_ms: float | Iterable[float],
    links: str | Iterable[str] = (DEFAULT_LINK,),
    seeds: int | Iterable[int] = 1,
    playouts: str | Iterable[str] = (DEFAULT_PLAYOUT,),
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
    names. One trace, strategy, threshold, link or playout may be given alone, not in a list.
    ``seeds`` is a count (seeds 0..N-1) or the seeds themselves; ``jobs > 1`` runs in
    processes. ``dask=True`` runs on a Dask ``LocalCluster`` of ``jobs`` worker processes, a
    string on the Dask scheduler at that address (``labkit.sim.fleet``): same rows.
    ``strategy_options`` maps a strategy name to its options (e.g. ``{"original_report":
    {"variant": "first"}}``). Unknown strategy, link or playout names fail at once, listing the
    choices.
    Trace files are read within ``trace_limits`` (``labkit.traces.limits``; None: the defaults).
    ``mos`` adds ``mos_lqo`` (P.862 of the caller's audio, gaps rendered with ``conceal``; about
    a second per minute of audio: labkit/sim/render.py).
    """
    specs = trace_specs(traces)
    if not specs:
        raise ValueError("sweep: traces must be non-empty")
    grid = SweepGrid.of(strategies, thresholds_ms, links, seeds, playouts,
                        link_params=link_params, playout_params=playout_params,
                        strategy_options=strategy_options, mos=mos, conceal=conceal)  # fmt: skip
    check_jobs("sweep", jobs)
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


def progress_bar(total: int, enabled: bool = True, initial: int = 0) -> Any:
    """A tqdm bar counting runs (``initial`` of them already done)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="run", desc="sweep")

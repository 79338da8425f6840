"""Sweeps: every combination of trace x strategy x threshold x link x playout x seed, one row each.

Traces are loaded once per worker process (never pickled per run); the work is cut into chunks of
one trace each, runs dealt round-robin across chunks, so two processes share it evenly.
Results are the same as one ``simulate`` per row, but nothing is computed twice: a strategy that
ignores ``threshold_ms`` (THRESHOLD_BLIND) runs once per trace, link, playout and seed, its row
copied for every threshold; and a run whose strategy sends exactly the messages of an earlier
run reuses its metrics (``labkit.sim.simulator.sweep_metrics``).
See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from labkit.sim.links import DEFAULT_LINK, LINK_NAMES
from labkit.sim.playout import DEFAULT_PLAYOUT, PLAYOUT_NAMES
from labkit.sim.render import CONCEAL_MODES, mos_lqo
from labkit.sim.simulator import MetricsMemo, PreparedTrace, prepare, simulate, sweep_metrics
from labkit.traces import Trace, TraceLimits, read, shipped

CHUNKS_PER_JOB = 8  # enough pieces that processes finish together
THRESHOLD_BLIND = frozenset({"forward"})  # labkit/outbound/forward.py only checks threshold_ms
TraceSpec = str | Path | Trace

_worker_traces: list[PreparedTrace] = []
_worker_memo: MetricsMemo = {}  # metrics of the distinct runs this process did
_worker_rows: dict[tuple[Any, ...], dict[str, Any]] = {}  # rows of THRESHOLD_BLIND runs


@dataclass(frozen=True)
class _Chunk:
    """Runs of one trace: (strategy, threshold, link, playout) combinations, each for all seeds."""

    trace_index: int
    combos: tuple[tuple[str, float, str, str], ...]
    seeds: tuple[int, ...]

    @property
    def runs(self) -> int:
        return len(self.combos) * len(self.seeds)


def load_trace(spec: TraceSpec, limits: TraceLimits | None = None) -> tuple[str, Trace]:
    """(name, trace) from a Trace, a path, or the name of a shipped trace; a file is read within
    ``limits`` (``labkit.traces.limits``, the defaults when None)."""
    if isinstance(spec, Trace):
        return spec.description or "trace", spec
    path = Path(spec)
    if not path.exists():
        try:
            path = shipped(str(spec))
        except (KeyError, ValueError, FileNotFoundError) as exc:
            raise ValueError(f"trace {str(spec)!r} is neither a file nor a shipped trace") from exc
    name = path.name.removesuffix(".gz").removesuffix(".jsonl")
    return name, read(path, limits=limits or TraceLimits())


def _prepare_all(specs: Sequence[TraceSpec], limits: TraceLimits | None) -> list[PreparedTrace]:
    prepared = []
    for spec in specs:
        name, trace = load_trace(spec, limits)
        prepared.append(prepare(trace, name))
    return prepared


def _init_worker(specs: Sequence[TraceSpec], limits: TraceLimits | None = None) -> None:
    global _worker_traces
    _worker_traces = _prepare_all(specs, limits)
    _worker_memo.clear()
    _worker_rows.clear()


def _run_chunk(chunk: _Chunk, options: dict[str, Any]) -> list[dict[str, Any]]:
    trace = _worker_traces[chunk.trace_index]
    rows = []
    for (strategy, threshold, link, playout), seed in itertools.product(chunk.combos, chunk.seeds):
        rows.append(_run_row(chunk.trace_index, trace, strategy, threshold, link, playout, seed,
                             options))  # fmt: skip
    return rows


def _run_row(
    trace_index: int, trace: PreparedTrace, strategy: str, threshold: float, link: str,
    playout: str, seed: int, options: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The sweep row of one run."""
    blind_key = (trace_index, strategy, link, playout, seed)
    chosen = options["strategy_options"].get(strategy, {})
    if strategy in THRESHOLD_BLIND:
        from labkit.outbound import make_strategy  # lazily, as the simulator does

        make_strategy(strategy, threshold, **chosen)  # a bad threshold fails as the run would
        if blind_key in _worker_rows:
            return {**_worker_rows[blind_key], "threshold_ms": threshold}
    score: dict[str, float] = {}
    if options["mos"]:  # the audio is needed: the whole run, not the memoised metrics
        result = simulate(trace, strategy, threshold, link, playout, seed, options["link_params"],
                          options["playout_params"], **chosen)  # fmt: skip
        metrics = result.metrics
        score = {"mos_lqo": mos_lqo(result, options["conceal"])}
    else:
        metrics = sweep_metrics(trace, strategy, threshold, link, playout, seed,
                                options["link_params"], options["playout_params"], _worker_memo,
                                chosen)  # fmt: skip
    row = {
        "trace": trace.name, "strategy": strategy, "threshold_ms": threshold,
        "link": link, "playout": playout, "seed": seed,
        **metrics.as_row(), **score,
    }  # fmt: skip
    if strategy in THRESHOLD_BLIND:
        _worker_rows[blind_key] = row
    return row


def _chunks(
    n_traces: int, strategies: Sequence[str], thresholds: Sequence[float], links: Sequence[str],
    playouts: Sequence[str], seeds: Sequence[int], pieces: int,
) -> list[_Chunk]:  # fmt: skip
    """About ``pieces`` chunks, each of one trace (prepared once per worker) with the runs dealt
    round-robin, so every chunk mixes cheap and costly strategies and workers finish together."""
    combos = list(itertools.product(strategies, thresholds, links, playouts))
    per_trace = min(len(combos), max(1, math.ceil(pieces / n_traces)))
    return [
        _Chunk(t, tuple(combos[k::per_trace]), tuple(seeds))
        for t in range(n_traces)
        for k in range(per_trace)
    ]


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
) -> pd.DataFrame:
    """A tidy DataFrame, one row per run: trace, strategy, threshold_ms, link, playout, seed and
    every metric. ``labkit.sim.summary.summarize`` turns it into means and intervals over seeds.

    ``seeds`` is a count (seeds 0..N-1) or the seeds themselves; ``jobs > 1`` runs in processes.
    ``strategy_options`` maps a strategy name to its options (e.g. ``{"original_report":
    {"variant": "first"}}``). Unknown strategy, link or playout names fail at once, listing the
    choices.
    Trace files are read within ``trace_limits`` (``labkit.traces.limits``; None: the defaults).
    ``mos`` adds ``mos_lqo`` (P.862 of the caller's audio, gaps rendered with ``conceal``; about
    a second per minute of audio: labkit/sim/render.py).
    """
    specs = list(traces)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    strategy_list, threshold_list = list(strategies), [float(t) for t in thresholds_ms]
    link_list, playout_list = list(links), list(playouts)
    if not (
        specs and strategy_list and threshold_list and link_list and playout_list and seed_list
    ):
        raise ValueError(
            "sweep: traces, strategies, thresholds, links, playouts and seeds must be non-empty"
        )
    if jobs < 1:
        raise ValueError(f"sweep: jobs must be >= 1, got {jobs}")
    check_names(strategy_list, link_list, playout_list)
    if conceal not in CONCEAL_MODES:
        raise ValueError(f"sweep: unknown conceal {conceal!r}; choose one of "
                         f"{', '.join(CONCEAL_MODES)}")  # fmt: skip
    options: dict[str, Any] = {"link_params": link_params, "playout_params": playout_params,
                               "strategy_options": strategy_options or {}, "mos": mos,
                               "conceal": conceal}  # fmt: skip
    chunks = _chunks(len(specs), strategy_list, threshold_list, link_list, playout_list, seed_list,
                     pieces=CHUNKS_PER_JOB * jobs)  # fmt: skip
    rows: list[dict[str, Any]] = []
    bar = _progress_bar(sum(c.runs for c in chunks), progress)
    if jobs == 1:
        _init_worker(specs, trace_limits)
        for chunk in chunks:
            rows.extend(_run_chunk(chunk, options))
            bar.update(chunk.runs)
    else:
        setup = (specs, trace_limits)
        with ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=setup) as pool:
            futures = {pool.submit(_run_chunk, c, options): c for c in chunks}
            for future in as_completed(futures):
                rows.extend(future.result())
                bar.update(futures[future].runs)
    bar.close()
    frame = pd.DataFrame(rows)
    keys = ["trace", "strategy", "link", "playout", "threshold_ms", "seed"]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


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


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="run", desc="sweep")

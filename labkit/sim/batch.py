"""Many simulations of one trace at once: each distinct run once, spread over processes.

The hypothesis table and the sensitivity analysis ask for hundreds of runs, many of them the
same run asked twice (two hypotheses that share a sender and a playout). ``simulate_many`` runs
each distinct ``Task`` once, in ``jobs`` processes (the trace is prepared once per process, never
pickled per run), with a progress bar, and returns the metrics in the order asked.
See notebooks/06_which_explanation_survives.ipynb.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from labkit.sim.metrics import Metrics
from labkit.sim.processes import check_jobs, running_pool
from labkit.sim.simulator import PreparedTrace, prepare, simulate
from labkit.traces import Trace

CHUNKS_PER_JOB = 8  # enough pieces that processes finish together

_worker_traces: dict[str, PreparedTrace] = {}


@dataclass(frozen=True)
class Task:
    """One ``simulate`` call: the trace (by its key in ``traces``) and every argument."""

    trace: str
    strategy: str
    threshold_ms: float
    link: str
    playout: str
    seed: int
    link_params: tuple[tuple[str, float], ...] = ()
    playout_params: tuple[tuple[str, Any], ...] = ()
    options: tuple[tuple[str, Any], ...] = field(default=())

    @classmethod
    def of(cls, trace: str, strategy: str, threshold_ms: float, link: str, playout: str,
           seed: int, link_params: dict[str, float] | None = None,
           playout_params: dict[str, Any] | None = None,
           options: dict[str, Any] | None = None) -> Task:  # fmt: skip
        """A task from dicts (kept as sorted tuples, so equal runs are equal tasks)."""
        return cls(trace, strategy, float(threshold_ms), link, playout, int(seed),
                   tuple(sorted((link_params or {}).items())),
                   tuple(sorted((playout_params or {}).items())),
                   tuple(sorted((options or {}).items())))  # fmt: skip

    def run(self, prepared: PreparedTrace) -> Metrics:
        return simulate(prepared, self.strategy, self.threshold_ms, self.link, self.playout,
                        self.seed, dict(self.link_params) or None,
                        dict(self.playout_params) or None, **dict(self.options)).metrics


    def scores(self, prepared: PreparedTrace, conceals: tuple[str, ...]) -> Scored:
        """The metrics and, per concealment mode, the P.862 MOS-LQO of the caller's audio."""
        from labkit.sim.render import mos_lqo

        result = simulate(prepared, self.strategy, self.threshold_ms, self.link, self.playout,
                          self.seed, dict(self.link_params) or None,
                          dict(self.playout_params) or None, **dict(self.options))  # fmt: skip
        return result.metrics, {conceal: mos_lqo(result, conceal) for conceal in conceals}


Scored = tuple[Metrics, dict[str, float]]


def _init_worker(traces: dict[str, Trace]) -> None:
    _worker_traces.clear()
    _worker_traces.update({key: prepare(trace, key) for key, trace in traces.items()})


def _run_chunk(tasks: list[Task]) -> list[Metrics]:
    return [task.run(_worker_traces[task.trace]) for task in tasks]


def _score_chunk(work: tuple[list[Task], tuple[str, ...]]) -> list[Scored]:
    tasks, conceals = work
    return [task.scores(_worker_traces[task.trace], conceals) for task in tasks]


def simulate_many(traces: dict[str, Trace], tasks: Sequence[Task], jobs: int = 1,
                  progress: bool = True) -> list[Metrics]:  # fmt: skip
    """The metrics of every task, in order; each distinct task simulated once."""
    return _map_distinct(traces, tasks, _run_chunk, jobs, progress, "simulations")


def score_many(traces: dict[str, Trace], tasks: Sequence[Task],
               conceals: tuple[str, ...] = ("plc",), jobs: int = 1,
               progress: bool = True) -> list[Scored]:  # fmt: skip
    """Each task's metrics and MOS-LQO per concealment mode (labkit/sim/render.py), in order;
    each distinct task simulated and scored once (P.862 is the slow part: use ``jobs``)."""

    def work(chunk: list[Task]) -> tuple[list[Task], tuple[str, ...]]:
        return chunk, conceals

    return _map_distinct(traces, tasks, _score_chunk, jobs, progress, "scored runs", work)


def _map_distinct(traces: dict[str, Trace], tasks: Sequence[Task], run: Callable[[Any], Any],
                  jobs: int, progress: bool, what: str,
                  wrap: Callable[[list[Task]], Any] | None = None) -> list[Any]:  # fmt: skip
    """``run`` over each distinct task (in chunks, in ``jobs`` processes), answers in order."""
    from tqdm.auto import tqdm

    check_jobs("simulate_many", jobs)
    unknown = sorted({task.trace for task in tasks} - set(traces))
    if unknown:
        raise ValueError(f"simulate_many: tasks name unknown trace(s) {unknown}")
    distinct = list(dict.fromkeys(tasks))
    done: dict[Task, Any] = {}
    bar = tqdm(total=len(distinct), desc=what, unit="run", disable=not progress)
    pieces = max(1, CHUNKS_PER_JOB * jobs)
    chunks = [distinct[k::pieces] for k in range(pieces) if distinct[k::pieces]]
    inputs = [wrap(chunk) if wrap else chunk for chunk in chunks]
    if jobs == 1:
        _init_worker(traces)
        for chunk, given in zip(chunks, inputs, strict=True):
            done.update(zip(chunk, run(given), strict=True))
            bar.update(len(chunk))
    else:
        with running_pool(jobs, _init_worker, (traces,)) as pool:
            for chunk, results in zip(chunks, pool.map(run, inputs), strict=True):
                done.update(zip(chunk, results, strict=True))
                bar.update(len(chunk))
    bar.close()
    return [done[task] for task in tasks]

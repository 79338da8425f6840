"""The runs of a sweep: its grid, the chunks it is cut into, and the one place a row is made.

A sweep runs every combination of trace x strategy x threshold x link x playout x seed, one row
each. The work is cut into chunks of one trace each, runs dealt round-robin across a trace's
chunks so every chunk mixes cheap and costly strategies and workers finish together. A worker
keeps the last few traces it prepared, each with what its runs share (``KeptTraces`` of
``TraceRuns``), and computes every row with ``_run_row``, whichever engine runs the chunks
(processes in ``labkit.sim.sweep``, Dask in ``labkit.sim.fleet``).

Results are the same as one ``simulate`` per row, but nothing is computed twice: a strategy that
ignores ``threshold_ms`` (its class says so: ``threshold_means`` is None) runs once per trace,
link, playout and seed, its row copied for every threshold; and a run whose strategy sends
exactly the messages of an earlier run reuses its metrics
(``labkit.sim.simulator.sweep_metrics``).
See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import itertools
import math
import numbers
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from labkit.sim.links import LINK_NAMES, check_seed, make_world
from labkit.sim.playout import PLAYOUT_NAMES, make_playout
from labkit.sim.render import CONCEAL_MODES, mos_lqo
from labkit.sim.simulator import (
    MetricsMemo,
    PreparedTrace,
    check_reach,
    prepare,
    simulate,
    sweep_metrics,
)
from labkit.traces import Trace
from labkit.values import is_real, is_whole

CHUNKS_PER_JOB = 8  # enough pieces that processes finish together
KEPT_TRACES = 8  # prepared traces a worker keeps: the chunks of one trace are handed out together
MAX_RUNS_PER_CHUNK = 256  # a worker's rows come back at least this often (progress, resume)
MAX_SEEDS = 10_000  # more is a slip: seeds=10**9 would build its grid until memory ran out
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
        given = {"strategies": self.strategies, "thresholds": self.thresholds_ms,
                 "links": self.links, "playouts": self.playouts, "seeds": self.seeds}  # fmt: skip
        empty = [name for name, values in given.items() if not values]
        if empty:
            raise ValueError(f"sweep: no {', no '.join(empty)} given (a sweep needs at least one "
                             "of each)")  # fmt: skip
        check_names(self.strategies, self.links, self.playouts)
        _check_options(self.strategy_options, self.link_params, self.playout_params)
        _check_worlds(self.links, self.playouts, self.link_params, self.playout_params)
        if self.conceal not in CONCEAL_MODES:
            raise ValueError(f"sweep: unknown conceal {self.conceal!r}; choose one of "
                             f"{', '.join(CONCEAL_MODES)}")  # fmt: skip

    @classmethod
    def of(
        cls, strategies: str | Iterable[str], thresholds_ms: float | Iterable[float],
        links: str | Iterable[str], seeds: int | Iterable[int], playouts: str | Iterable[str],
        **options: Any,
    ) -> SweepGrid:  # fmt: skip
        """A grid from ``sweep``'s arguments: ``seeds`` a count (0..N-1) or the seeds; a single
        name or threshold is one (not the letters of a name). A value given twice counts once
        (a run is one row)."""
        options["strategy_options"] = options.get("strategy_options") or {}
        thresholds = (_threshold(t) for t in one_or_many(thresholds_ms))
        return cls(_once(one_or_many(strategies)), _once(thresholds),
                   _once(one_or_many(links)), _once(one_or_many(playouts)),
                   _once(seed_tuple(seeds)), **options)  # fmt: skip

    def combos(self) -> list[tuple[str, float, str, str]]:
        return list(itertools.product(self.strategies, self.thresholds_ms, self.links,
                                      self.playouts))  # fmt: skip

    @property
    def runs_per_trace(self) -> int:
        return len(self.combos()) * len(self.seeds)

    def check_trace(self, name: str, trace: Trace) -> None:
        """A ValueError if some link of the grid cannot reach ``trace``'s last event (the
        simulator's own ``check_reach``): asked of every trace before any run, so a far-off
        trace among thousands is named at the start, not hours in at its first run."""
        prepared = prepare(trace, name)
        for link in self.links:
            check_reach(prepared, make_world(link, 0, dict(self.link_params or {})))

    def options(self) -> dict[str, Any]:
        """What ``_run_row`` needs besides the run itself."""
        return {"link_params": self.link_params, "playout_params": self.playout_params,
                "strategy_options": self.strategy_options, "mos": self.mos,
                "conceal": self.conceal}  # fmt: skip


def _once(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(values))


def seed_tuple(seeds: int | Iterable[int]) -> tuple[int, ...]:
    """``seeds`` as the seeds: a count N (a Python or numpy integer) means 0..N-1; each seed is
    checked (``links.check_seed``). A ValueError names what is wrong."""
    if is_whole(seeds):
        count = int(seeds)
        if not 0 <= count <= MAX_SEEDS:
            raise ValueError(f"seeds: a count of seeds must be from 0 to {MAX_SEEDS:,}, "
                             f"got {seeds!r}")  # fmt: skip
        return tuple(range(count))
    if isinstance(seeds, str | bytes | numbers.Number) or not isinstance(seeds, Iterable):
        raise ValueError(f"seeds must be a count or the seeds themselves, got {seeds!r}")
    chosen = tuple(check_seed(seed) for seed in itertools.islice(seeds, MAX_SEEDS + 1))
    if len(chosen) > MAX_SEEDS:
        raise ValueError(f"seeds: at most {MAX_SEEDS:,} seeds")
    return chosen


def _threshold(value: Any) -> float:
    """A threshold of the grid as a float (each strategy then checks its own range)."""
    if not is_real(value):
        raise ValueError(f"sweep: thresholds_ms must be numbers, got {value!r}")
    return float(value)


def _check_options(strategy_options: Any, link_params: Any, playout_params: Any) -> None:
    """Options are mappings, and strategy options are keyed by strategies' names."""
    from labkit.outbound import strategy_class

    for name, value in (("strategy_options", strategy_options), ("link_params", link_params),
                        ("playout_params", playout_params)):  # fmt: skip
        if value is not None and not isinstance(value, Mapping):
            raise ValueError(f"sweep: {name} must be a dict, got {value!r}")
    for strategy, options in strategy_options.items():
        try:
            strategy_class(strategy)
        except ValueError as exc:  # a misspelt name's options would apply to nothing
            raise ValueError(f"sweep: strategy_options: {exc}") from None
        if not isinstance(options, Mapping):
            raise ValueError(f"sweep: strategy_options[{strategy!r}] must be a dict of options, "
                             f"got {options!r}")  # fmt: skip


def _check_worlds(links: Sequence[str], playouts: Sequence[str],
                  link_params: Mapping[str, float] | None,
                  playout_params: Mapping[str, Any] | None) -> None:  # fmt: skip
    """Every link and playout of the grid takes its parameters (names and values): a ValueError
    now, not at the first run of a playout that lacks one, after the sweep has started."""
    for link in links:
        make_world(link, 0, dict(link_params or {}))
    for playout in playouts:
        make_playout(playout, **(playout_params or {}))


def one_or_many(values: Any) -> Iterable[Any]:
    """``values``, or a one-item tuple of it when it is a single name or number."""
    return (values,) if isinstance(values, str | numbers.Real) else values  # numpy's too


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


class KeptTraces:
    """The last ``size`` traces a worker prepared, by key (thread-safe): the chunks of one trace
    share its preparation and memo, and a worker never holds a whole fleet of calls."""

    def __init__(self, size: int = KEPT_TRACES) -> None:
        self.size = size
        self._kept: OrderedDict[Hashable, TraceRuns] = OrderedDict()
        self._lock = threading.Lock()  # a Dask worker may run tasks in threads

    def get(self, key: Hashable, make: Callable[[], TraceRuns]) -> TraceRuns:
        """The trace kept under ``key``, else ``make()``'s, kept."""
        with self._lock:
            state = self._kept.get(key)
            if state is not None:
                self._kept.move_to_end(key)
                return state
        state = make()  # outside the lock: other threads go on meanwhile
        with self._lock:
            state = self._kept.setdefault(key, state)
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return state

    def forget(self, drop: Callable[[Hashable], bool]) -> int:
        """Drop every trace whose key ``drop`` accepts; how many there were."""
        with self._lock:
            keys = [key for key in self._kept if drop(key)]
            for key in keys:
                del self._kept[key]
        return len(keys)


def _run_row(state: TraceRuns, run: Run, options: dict[str, Any]) -> Row:
    """The sweep row of one run."""
    strategy, threshold, link, playout, seed = run
    trace = state.prepared
    blind_key = (strategy, link, playout, seed)
    chosen = options["strategy_options"].get(strategy, {})
    from labkit.outbound import make_strategy, threshold_meaning  # lazily, as the simulator does

    threshold_blind = threshold_meaning(strategy) is None
    if threshold_blind:
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
    if threshold_blind:
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


def runs_frame(rows: Iterable[Row] | pd.DataFrame) -> pd.DataFrame:
    """Rows as a DataFrame in the sweep's order (trace, strategy, link, playout, threshold,
    seed), whatever order they finished in."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    return frame.sort_values(SORT_COLUMNS, kind="stable").reset_index(drop=True)


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

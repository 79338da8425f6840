"""Runs per second of a sweep on Dask (1 and 2 local workers) beside the ``--jobs 1/2`` processes.

Run: ``.venv/bin/python benchmarks/bench_dask.py [--rounds 3] [--seeds 5]``. One sweep of four
shipped traces (multi_turn, long_conversation, stalls, tiny_deltas_call: 4 x 5 strategies x 19
thresholds x the tcp link x seeds) runs on each engine in every round, in this order: processes
(``labkit.sim.sweep.pool_batches``, jobs 1 and 2, the pool started and the traces sent inside the
timing, as ``labkit sweep --jobs`` does) and Dask (``labkit.sim.fleet.dask_batches`` on a
``LocalCluster`` of 1, then 2 worker processes of one thread, started once before the rounds: its
start is reported apart; each sweep's timing includes reading the traces, scattering them and
collecting the rows). Every engine must give the same rows. Figures: runs per second of wall
clock, and each engine's ratio to ``--jobs 1`` in the same round (this machine is shared and
noisy: compare the ratios); and CPU ms per run, summed over every process of the engine (this
one, the pool's processes, the Dask workers: what a run costs, whatever else the machine runs).
The medians of the rounds close. Also what the Dask sweep sends: the pickled traces, each task's
arguments and the rows coming back.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import psutil  # type: ignore[import-untyped]  # comes with Dask's distributed; no stubs

from labkit.outbound import STRATEGY_NAMES
from labkit.sim.fleet import dask_batches, dask_client
from labkit.sim.sweep import pool_batches
from labkit.sim.sweep_runs import CHUNKS_PER_JOB, Row, SweepGrid, plan_chunks, runs_frame
from labkit.sim.sweep_traces import TraceSource, load_all, trace_sources

TRACES = ["multi_turn", "long_conversation", "stalls", "tiny_deltas_call"]
THRESHOLDS_MS = [float(t) for t in range(20, 201, 10)]
Engine = Callable[[], Iterator[list[Row]]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    sources = trace_sources(TRACES)
    grid = SweepGrid.of(STRATEGY_NAMES, THRESHOLDS_MS, ["tcp"], args.seeds, ["fifo"])
    runs = len(sources) * grid.runs_per_trace
    print(f"{runs} runs: {len(TRACES)} traces x {len(STRATEGY_NAMES)} strategies x "
          f"{len(THRESHOLDS_MS)} thresholds x {args.seeds} seeds; load average "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    engines: dict[str, Engine] = {
        "jobs 1": lambda: pool_batches(sources, grid, 1),
        "jobs 2": lambda: pool_batches(sources, grid, 2),
    }
    clients: dict[str, Any] = {}
    started = time.perf_counter()
    with dask_client(None, workers=1) as one, dask_client(None, workers=2) as two:
        print(f"two LocalClusters (1 and 2 workers) started in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        engines["dask 1 worker"] = lambda: dask_batches(one, sources, grid)
        engines["dask 2 workers"] = lambda: dask_batches(two, sources, grid)
        clients = {"dask 1 worker": one, "dask 2 workers": two}
        _warm_up([one, two], grid)
        rates: dict[str, list[float]] = {name: [] for name in engines}
        cpu_ms: dict[str, list[float]] = {name: [] for name in engines}
        reference: pd.DataFrame | None = None
        for round_no in range(1, args.rounds + 1):
            print(f"round {round_no} (load average {os.getloadavg()[0]:.1f})")
            for name, engine in engines.items():
                seconds, cpu_s, frame = _timed(engine, clients.get(name))
                reference = frame if reference is None else reference
                assert frame.equals(reference), f"{name} gave other rows"
                rates[name].append(runs / seconds)
                cpu_ms[name].append(cpu_s * 1000 / runs)
                ratio = rates[name][-1] / rates["jobs 1"][-1]
                print(f"  {name:<15} {seconds:6.2f} s  {runs / seconds:7.0f} runs/s  "
                      f"{ratio:4.2f}x jobs 1  {cpu_ms[name][-1]:5.1f} CPU ms/run")  # fmt: skip
        _print_medians(rates, cpu_ms)
        _print_traffic(sources, grid, two)


def _warm_up(clients: list[Any], grid: SweepGrid) -> None:
    """Let each worker import labkit's simulator before the rounds time anything (paid once
    per cluster, like the cluster's start), and say what it cost."""
    for client in clients:
        started = time.perf_counter()
        list(dask_batches(client, trace_sources(["tiny_deltas"]), _tiny(grid)))
        print(f"first task on {len(client.nthreads())} worker(s) (imports labkit): "
              f"{time.perf_counter() - started:.2f} s")  # fmt: skip


def _tiny(grid: SweepGrid) -> SweepGrid:
    return SweepGrid(grid.strategies[:1], grid.thresholds_ms[:1], grid.links, grid.playouts,
                     grid.seeds[:1])  # fmt: skip


def _timed(engine: Engine, client: Any) -> tuple[float, float, pd.DataFrame]:
    """Wall seconds, CPU seconds of every process of the engine, and the rows."""
    cpu_before = _cpu_s(client)
    started = time.perf_counter()
    rows = [row for batch in engine() for row in batch]
    seconds = time.perf_counter() - started
    return seconds, _cpu_s(client) - cpu_before, runs_frame(rows)


def _cpu_s(client: Any) -> float:
    """CPU seconds of this process, of the pool's workers (the fork server's children, which
    it reaps: counted in its children's times, not in this process's) and of the Dask workers
    of ``client``."""
    workers = sum(client.run(time.process_time).values()) if client is not None else 0.0
    return time.process_time() + _fork_server_children_cpu_s() + workers


def _fork_server_children_cpu_s() -> float:
    """CPU seconds of every reaped child of this process's fork server (labkit.sim.processes
    forks the pool's workers from it; it lives on between pools); 0 before it starts."""
    total = 0.0
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if "forkserver" in " ".join(child.cmdline()):
                times = child.cpu_times()
                total += times.children_user + times.children_system
    return total


def _print_medians(rates: dict[str, list[float]], cpu_ms: dict[str, list[float]]) -> None:
    print("median of the rounds (runs per second; ratio to jobs 1 within each round; CPU ms "
          "per run over all the engine's processes)")  # fmt: skip
    for name, values in rates.items():
        ratios = [value / base for value, base in zip(values, rates["jobs 1"], strict=True)]
        print(f"  {name:<15} {statistics.median(values):7.0f} runs/s  "
              f"{statistics.median(ratios):4.2f}x jobs 1 (rounds "
              f"{', '.join(f'{r:.2f}' for r in ratios)})  "
              f"{statistics.median(cpu_ms[name]):5.1f} CPU ms/run")  # fmt: skip


def _print_traffic(sources: list[TraceSource], grid: SweepGrid, client: Any) -> None:
    """Bytes the Dask sweep moves, pickled as Dask sends them (protocol 5)."""
    traces = sum(len(pickle.dumps(trace, protocol=5)) for _, trace in load_all(sources))
    files = sum(source.path.stat().st_size for source in sources if source.path)
    threads = sum(client.nthreads().values())
    chunks = plan_chunks([s.name for s in sources], grid, CHUNKS_PER_JOB * threads)
    options = grid.options()
    tasks = sum(len(pickle.dumps((chunk.runs, options), protocol=5)) for chunk in chunks)
    runs = sum(len(chunk.runs) for chunk in chunks)
    rows = [row for batch in pool_batches(sources[:1], _tiny(grid)) for row in batch]
    row_bytes = len(pickle.dumps(rows[0], protocol=5))
    print(f"sent: traces {traces / 1e6:.2f} MB pickled (files {files / 1e6:.2f} MB gzip), once "
          f"each, to one worker (copied worker to worker when another needs it); "
          f"{len(chunks)} tasks, {tasks / len(chunks) / 1e3:.1f} kB each "
          f"({tasks / runs:.0f} B per run); back: {row_bytes} B per row")  # fmt: skip


if __name__ == "__main__":  # Dask starts its workers by spawning: this file is re-imported
    main()

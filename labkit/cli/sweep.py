"""``labkit sweep TRACE_OR_DIR...``: strategies x thresholds x links x playouts x seeds over traces.

Writes ``sweep.csv`` (one row per run, appended as runs finish: labkit/sim/sweep_journal.py; a
rerun with the same arguments resumes), ``summary.csv`` (per setting: ``n_seeds`` and each key
metric's mean with its 95% confidence interval over seeds, see labkit/sim/summary.py), for two or
more traces ``fleet.csv`` (the calls pooled: labkit/sim/fleet_summary.py) and plots.
Runs in ``--jobs`` processes here, or on Dask with ``--dask [ADDRESS]`` (labkit/sim/fleet.py).
See notebooks/02_threshold_sweep.ipynb and README.md ("Fleet sweeps on Dask").
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.cli.output_paths import output_directory
from labkit.cli.simulate import (
    add_model_arguments,
    parse_params,
    strategy_options,
)  # fmt: skip
from labkit.cli.trace_limits import add_trace_limit_arguments, trace_limits_from_args
from labkit.outbound.queued import MAX_THRESHOLD_MS, check_threshold_ms
from labkit.sim.processes import MAX_JOBS
from labkit.sim.sweep_runs import MAX_SEEDS

if TYPE_CHECKING:
    import pandas as pd

    from labkit.sim.sweep_journal import SweepJournal
    from labkit.sim.sweep_runs import Row, RunKey, SweepGrid
    from labkit.sim.sweep_traces import TraceSource
    from labkit.traces import TraceLimits

LOCAL_CLUSTER = "local"  # --dask with no address
ALL_PLOTS, FLEET_PLOTS, NO_PLOTS = "all", "fleet", "none"
PLOT_CHOICES = (ALL_PLOTS, FLEET_PLOTS, NO_PLOTS)
# Far beyond any sweep a person means (lesson 02 runs 5 thresholds x 20 seeds), and small enough
# that a slip such as 0:1e9:1 is refused at once instead of filling memory with its grid.
MAX_THRESHOLDS = 10_000
TRACES_METAVAR = "TRACE_OR_DIR"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sweep", help="sweep strategies and thresholds over traces")
    traces = parser.add_argument("traces", nargs="+", metavar=TRACES_METAVAR,
                                 help="trace files, directories (every *.jsonl and *.jsonl.gz "
                                      "inside) or shipped names")  # fmt: skip
    # checked by run: none given may mean --dask took the first as its address (_no_traces)
    traces.required = False
    add_model_arguments(parser, many=True)
    parser.add_argument("--thresholds", default="20:200:10",
                        help="START:STOP:STEP in ms (inclusive), or one threshold (STOP at most "
                             f"{MAX_THRESHOLD_MS:g}; default %(default)s)")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=1,
                        help="number of seeds (0..N-1; default %(default)s)")  # fmt: skip
    parser.add_argument("--mos", action="store_true",
                        help="add mos_lqo (P.862 of the caller's audio, --conceal rendering; slow)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="processes on this machine (default 1); with --dask and no "
                             "ADDRESS, the local cluster's workers")  # fmt: skip
    parser.add_argument("--dask", nargs="?", const=LOCAL_CLUSTER, default=None,
                        metavar="ADDRESS",
                        help="run on Dask: a LocalCluster on 127.0.0.1, or the scheduler at "
                             "ADDRESS (tcp://HOST:8786); put it after the traces")  # fmt: skip
    parser.add_argument("--dask-timeout-s", type=float, default=5.0,
                        help="how long to wait for the scheduler and a worker "
                             "(default %(default)g)")  # fmt: skip
    parser.add_argument("--out", type=output_directory, required=True,
                        help="directory for sweep.csv, summary.csv, fleet.csv (two or more "
                             "traces) and PNGs; a rerun with the same arguments resumes what is "
                             "there")  # fmt: skip
    plots = parser.add_mutually_exclusive_group()
    plots.add_argument("--plots", choices=PLOT_CHOICES, default=ALL_PLOTS,
                       help="which PNGs: all (default: the fleet's, then two per trace and "
                            "playout, ~0.3 s each trace, minutes for a fleet of calls), fleet "
                            "(the calls pooled only) or none; the CSVs hold every value")
    plots.add_argument("--no-plots", dest="plots", action="store_const", const=NO_PLOTS,
                       help="--plots none")
    add_trace_limit_arguments(parser)
    parser.set_defaults(func=run)


def parse_thresholds(text: str) -> list[float]:
    """``START:STOP:STEP`` (STOP included), or one threshold, into a list of thresholds in ms."""
    parts = text.split(":")
    if len(parts) == 1:  # "50": that threshold alone
        parts += [parts[0], "1"]
    try:
        start, stop, step = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"--thresholds {text!r} is not START:STOP:STEP or one threshold "
                         f"(numbers, ms)") from None  # fmt: skip
    if not all(math.isfinite(value) for value in (start, stop, step)):
        raise ValueError(f"--thresholds {text!r}: START, STOP and STEP must be finite numbers")
    if step <= 0 or stop < start or start < 0:
        raise ValueError(f"--thresholds {text!r}: need 0 <= START <= STOP and STEP > 0")
    steps = (stop - start) / step  # may overflow to inf: "0:1e308:1e-300"
    count = int(np.floor(steps + 1e-9)) + 1 if math.isfinite(steps) else math.inf
    if count > MAX_THRESHOLDS:
        raise ValueError(f"--thresholds {text!r} gives {count:,} thresholds; at most "
                         f"{MAX_THRESHOLDS:,} (use a larger STEP)")  # fmt: skip
    try:
        check_threshold_ms(stop)
    except ValueError:
        raise ValueError(f"--thresholds {text!r}: STOP is at most {MAX_THRESHOLD_MS:g} ms "
                         f"(ten minutes of buffer, Twilio's own limit)") from None  # fmt: skip
    return [round(start + k * step, 9) for k in range(int(count))]


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def run(args: argparse.Namespace) -> int:
    from labkit.sim.sweep_journal import SweepJournal, sweep_manifest
    from labkit.sim.sweep_runs import SweepGrid
    from labkit.sim.sweep_traces import trace_sources

    if not args.traces:
        return _refuse([_no_traces(args.dask)])
    problems = _check_engine(args)
    named = {"--strategy": _names(args.strategy), "--link": _names(args.link),
             "--playout": _names(args.playout)}  # fmt: skip
    problems += [f"{flag} names nothing: give at least one, comma-separated"
                 for flag, names in named.items() if not names]  # fmt: skip
    if problems:  # the grid would only restate them
        return _refuse(problems)
    try:
        thresholds = parse_thresholds(args.thresholds)
        grid = SweepGrid.of(_names(args.strategy), thresholds, _names(args.link), args.seeds,
                            _names(args.playout),
                            link_params=parse_params(args.link_param, "--link-param") or None,
                            playout_params=parse_params(args.playout_param,
                                                        "--playout-param") or None,
                            strategy_options=strategy_options(_names(args.strategy),
                                                              args.variant),
                            mos=args.mos, conceal=args.conceal)  # fmt: skip
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        return _refuse(problems)
    try:
        sources = trace_sources(args.traces)
        journal = SweepJournal.open(args.out, sweep_manifest(sources, grid))
    except (ValueError, OSError) as exc:
        return _refuse([str(exc)])
    with journal:  # the directory is this sweep's until its summary is written
        return _sweep_into(args, journal, sources, grid)


def _sweep_into(args: argparse.Namespace, journal: SweepJournal, sources: Sequence[TraceSource],
                grid: SweepGrid) -> int:  # fmt: skip
    from labkit.sim.fleet_summary import summarize_fleet
    from labkit.sim.summary import summarize, thinly_carried
    from labkit.sim.sweep_journal import FLEET_FILE

    for note in journal.notes:
        print(f"labkit sweep: {note}", file=sys.stderr)
    total = len(sources) * grid.runs_per_trace
    code = _run_batches(args, journal, sources, grid, total)
    if code:
        return code
    try:
        frame = journal.finish(total)
        summary = summarize(frame)
        summary_path = journal.write_summary(summary)
        fleet = summarize_fleet(frame) if len(sources) > 1 else None
        if fleet is not None:
            journal.write_summary(fleet, FLEET_FILE)
    except (ValueError, OSError) as exc:
        return _refuse([str(exc)])
    plots = f"no plots (--plots {NO_PLOTS})"
    if args.plots == FLEET_PLOTS and fleet is None:
        plots = f"no plots (--plots {FLEET_PLOTS}, and one trace: no calls to pool)"
    elif args.plots != NO_PLOTS:
        per_trace = summary if args.plots == ALL_PLOTS else None
        plots = f"{len(write_plots(per_trace, args.out, fleet))} plots"
    print(f"wrote {len(frame)} runs to {journal.path}, {len(summary)} settings to "
          f"{summary_path}{_fleet_written(fleet, journal.directory / FLEET_FILE)} and "
          f"{plots}")  # fmt: skip
    if fleet is not None:
        _say_fleet(fleet)
    thin = thinly_carried(summary)
    if thin:
        print(f"labkit sweep: in {thin} of {len(summary)} settings fewer than half the seeds have "
              f"gaps (concealed_ms_seeds_above_0 in {summary_path.name}); there the 95% "
              f"interval is too short (over 20 seeds it held the mean 64-80% of the time, lesson "
              f"09): run more --seeds before reading it", file=sys.stderr)  # fmt: skip
    return 0


def _fleet_written(fleet: pd.DataFrame | None, path: Path) -> str:
    if fleet is None:
        return ""
    return f", {len(fleet)} settings pooled over {fleet['n_calls'].max()} calls to {path}"


def _say_fleet(fleet: pd.DataFrame) -> None:
    """The fleet's answer in a line per world (the setting with the least silence in gaps), and
    where few calls carry the gaps, that the interval over calls is too short there."""
    from labkit.sim.fleet_summary import WORST_BY, describe_best, fewest_gaps
    from labkit.sim.summary import thinly_carried
    from labkit.sim.sweep_journal import FLEET_FILE

    for _, row in fewest_gaps(fleet).iterrows():
        print(f"fleet {describe_best(row)}")
    thin = thinly_carried(fleet, WORST_BY, draws="calls")
    if thin:
        print(f"labkit sweep: in {thin} of {len(fleet)} settings of {FLEET_FILE} fewer than half "
              f"the calls have gaps ({WORST_BY}_calls_above_0); there the interval over calls is "
              f"too short (lesson 09 measured the same over seeds): pool more calls before "
              f"reading it", file=sys.stderr)  # fmt: skip


def _no_traces(dask: str | None) -> str:
    """Why no trace was given: ``--dask`` takes an optional value, so ``--dask tiny_deltas``
    makes the trace its address, and argparse's "required" line would hide that."""
    from labkit.sim.fleet import looks_like_address

    if dask not in (None, LOCAL_CLUSTER) and not looks_like_address(dask):
        return (f"{dask!r} is not a Dask scheduler address; put --dask after the traces, or "
                f"give an address (tcp://host:8786)")  # fmt: skip
    return f"the following arguments are required: {TRACES_METAVAR}"


def _check_engine(args: argparse.Namespace) -> list[str]:
    problems = []
    for flag, value in (("--seeds", args.seeds), ("--jobs", args.jobs)):
        if value is not None and value < 1:
            problems.append(f"{flag} must be >= 1, got {value}")
    if args.seeds > MAX_SEEDS:
        problems.append(f"--seeds must be at most {MAX_SEEDS:,}, got {args.seeds:,}")
    if args.jobs is not None and args.jobs > MAX_JOBS:  # the library's own bound, said up front
        problems.append(f"--jobs must be at most {MAX_JOBS}, got {args.jobs:,}")
    if args.dask not in (None, LOCAL_CLUSTER):
        from labkit.sim.fleet import check_address

        try:
            check_address(args.dask)
        except ValueError as exc:
            problems.append(f"--dask {exc} (put --dask after the traces)")
        if args.jobs is not None:
            problems.append("--jobs sets the workers of a local cluster; with --dask ADDRESS "
                            "the scheduler's workers run the sweep")  # fmt: skip
    if not args.dask_timeout_s > 0:
        problems.append(f"--dask-timeout-s must be > 0, got {args.dask_timeout_s}")
    return problems


def _refuse(problems: list[str]) -> int:
    for problem in problems:
        print(f"labkit sweep: {problem}", file=sys.stderr)
    return 2


def _run_batches(args: argparse.Namespace, journal: SweepJournal, sources: Sequence[TraceSource],
                 grid: SweepGrid, total: int) -> int:  # fmt: skip
    """Run what ``journal`` lacks, appending rows as they come; 0, or an exit code (said why)."""
    from labkit.sim.fleet import FleetError
    from labkit.sim.sweep import progress_bar

    already = len(journal.done)
    if already:
        print(f"labkit sweep: resuming {journal.path}: {already} of {total} runs are there",
              file=sys.stderr)  # fmt: skip
    try:
        with progress_bar(total, initial=already) as bar, ctrl_c_remembered() as interrupted:
            if already < total:
                for batch in _batches(args, sources, grid, trace_limits_from_args(args),
                                      journal.done):  # fmt: skip
                    journal.append(batch)
                    bar.update(len(batch))
                    if interrupted():  # a Ctrl-C whose KeyboardInterrupt was swallowed
                        raise KeyboardInterrupt
    except KeyboardInterrupt:
        seen_notes = len(journal.notes)
        try:
            journal.reread()  # the file is the truth: the interrupt may have cut a write
        except (ValueError, OSError) as exc:
            journal.notes.append(f"could not read {journal.path} back ({exc}); the count "
                                 f"below may miss the batch being written")  # fmt: skip
        for note in journal.notes[seen_notes:]:
            print(f"labkit sweep: {note}", file=sys.stderr)
        print(f"labkit sweep: interrupted; {len(journal.done)} of {total} runs are in "
              f"{journal.path}: rerun the same command to finish", file=sys.stderr)  # fmt: skip
        return 130
    except (ValueError, OSError, FleetError) as exc:
        kept = f"; {len(journal.done)} of {total} runs are in {journal.path}"
        return _refuse([f"{exc}{kept if journal.done else ''}"])
    return 0


@contextmanager
def ctrl_c_remembered() -> Iterator[Callable[[], bool]]:
    """A function saying whether Ctrl-C was pressed in the block, which raises KeyboardInterrupt
    as usual. Python raises it wherever the main thread is, and an exception raised inside an
    object's ``__del__`` is printed and dropped: Dask's futures release themselves there, so a
    Ctrl-C could vanish and the sweep run on. The loop asks after each batch. Outside the main
    thread, or where Ctrl-C is not Python's default (ignored, or someone else's), it says no."""
    pressed: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        pressed.append(signum)
        raise KeyboardInterrupt

    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield lambda: False
        return
    signal.signal(signal.SIGINT, remember)
    try:
        yield lambda: bool(pressed)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _batches(args: argparse.Namespace, sources: Sequence[TraceSource], grid: SweepGrid,
             limits: TraceLimits, done: set[RunKey]) -> Iterator[list[Row]]:  # fmt: skip
    from labkit.sim.sweep import pool_batches

    if args.dask is None:
        yield from pool_batches(sources, grid, args.jobs or 1, limits, done)
        return
    from labkit.sim.fleet import dask_batches, dask_client

    address = None if args.dask == LOCAL_CLUSTER else args.dask
    with dask_client(address, args.jobs or 1, args.dask_timeout_s) as client:
        yield from dask_batches(client, sources, grid, limits, done)


def write_plots(summary: pd.DataFrame | None, out: Path, fleet: pd.DataFrame | None = None,
                ) -> list[Path]:  # fmt: skip
    """With a ``fleet`` (labkit/sim/fleet_summary.py), one PNG per playout and rate for the calls
    pooled; then with a ``summary``, one per (trace, playout) and metric. Each a panel per link,
    a line per strategy; a progress bar counts the traces (a fleet of calls takes minutes)."""
    import matplotlib

    matplotlib.use("Agg")
    from tqdm.auto import tqdm

    from labkit.sim.fleet_summary import GAP_RATES

    written = []
    if fleet is not None:
        calls = int(fleet["n_calls"].max())
        for playout, rows in fleet.groupby("playout"):
            for metric in GAP_RATES:
                title = f"{calls} calls pooled, playout {playout}: mean over calls, 95% band"
                written.append(_save_plot(rows, metric, title,
                                          out / f"fleet_{metric}_{playout}.png"))  # fmt: skip
    if summary is None:
        return written
    groups = summary.groupby(["trace", "playout"])
    for (trace, playout), rows in tqdm(groups, total=groups.ngroups, desc="plots",
                                       unit="trace"):  # fmt: skip
        for metric in ("concealed_ms", "onset_concealed_ms"):
            title = f"{trace}, playout {playout}: mean over seeds, 95% band"
            written.append(_save_plot(rows, metric, title, out / f"{metric}_{trace}_{playout}.png"))
    return written


def _save_plot(rows: pd.DataFrame, metric: str, title: str, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from labkit.plots.sweep import metric_by_link

    axes = metric_by_link(rows, metric, suptitle=title)
    figure = axes[0].get_figure(root=True)
    assert figure is not None
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path

"""``labkit sweep TRACE...``: strategies x thresholds over traces; writes sweep.csv and plots.

See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from labkit.cli.simulate import check_choice
from labkit.cli.trace_limits import add_trace_limit_arguments, trace_limits_from_args
from labkit.outbound import STRATEGY_NAMES
from labkit.sim.links import LINK_NAMES
from labkit.sim.playout import PLAYOUT_NAMES


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sweep", help="sweep strategies and thresholds over traces")
    parser.add_argument("traces", nargs="+", metavar="TRACE", help="trace files or shipped names")
    parser.add_argument("--strategy", default=",".join(STRATEGY_NAMES), help="comma-separated")
    parser.add_argument(
        "--thresholds", default="20:200:10", help="START:STOP:STEP in ms (inclusive)"
    )
    parser.add_argument("--link", default="jitter", help=", ".join(LINK_NAMES))
    parser.add_argument("--playout", default="fifo", help=", ".join(PLAYOUT_NAMES))
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds (0..N-1)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, help="directory for sweep.csv and PNGs")
    add_trace_limit_arguments(parser)
    parser.set_defaults(func=run)


def parse_thresholds(text: str) -> list[float]:
    """``START:STOP:STEP`` (STOP included) into a list of thresholds in ms."""
    parts = text.split(":")
    try:
        start, stop, step = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"--thresholds {text!r} is not START:STOP:STEP (numbers, ms)") from None
    if step <= 0 or stop < start or start < 0:
        raise ValueError(f"--thresholds {text!r}: need 0 <= START <= STOP and STEP > 0")
    count = int(np.floor((stop - start) / step + 1e-9)) + 1
    return [round(start + k * step, 9) for k in range(count)]


def run(args: argparse.Namespace) -> int:
    strategies = [s.strip() for s in args.strategy.split(",") if s.strip()]
    problems = [check_choice("strategy", s, STRATEGY_NAMES) for s in strategies or [""]]
    problems += [check_choice("link", args.link, LINK_NAMES)]
    problems += [check_choice("playout", args.playout, PLAYOUT_NAMES)]
    try:
        thresholds = parse_thresholds(args.thresholds)
    except ValueError as exc:
        problems.append(str(exc))
    if args.seeds < 1 or args.jobs < 1:
        problems.append(f"--seeds and --jobs must be >= 1, got {args.seeds} and {args.jobs}")
    for problem in filter(None, problems):
        print(f"labkit sweep: {problem}", file=sys.stderr)
    if any(problems):
        return 2
    from labkit.sim.sweep import sweep

    try:
        frame = sweep(args.traces, strategies, thresholds, [args.link], args.seeds,
                      [args.playout], jobs=args.jobs,
                      trace_limits=trace_limits_from_args(args))  # fmt: skip
    except (ValueError, OSError) as exc:
        print(f"labkit sweep: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "sweep.csv", index=False)
    written = write_plots(frame, args.out)
    print(f"wrote {len(frame)} runs to {args.out / 'sweep.csv'} and {len(written)} plots")
    return 0


def write_plots(frame: Any, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labkit.plots.sweep import gaps_vs_threshold, latency_vs_underruns, underruns_vs_threshold

    written = []
    for name, plot in (
        ("underruns_vs_threshold.png", underruns_vs_threshold),
        ("gaps_vs_threshold.png", gaps_vs_threshold),
        ("latency_vs_underruns.png", latency_vs_underruns),
    ):
        fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
        plot(frame, ax=ax)
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        written.append(out / name)
    return written

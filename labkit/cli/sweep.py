"""``labkit sweep TRACE...``: strategies x thresholds x links x playouts x seeds over traces.

Writes ``sweep.csv`` (one row per run), ``summary.csv`` (per setting: ``n_seeds`` and each key
metric's mean with its 95% confidence interval over seeds, see labkit/sim/summary.py) and plots.
See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from labkit.cli.simulate import add_model_arguments, parse_params, strategy_options
from labkit.cli.trace_limits import add_trace_limit_arguments, trace_limits_from_args


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sweep", help="sweep strategies and thresholds over traces")
    parser.add_argument("traces", nargs="+", metavar="TRACE", help="trace files or shipped names")
    add_model_arguments(parser, many=True)
    parser.add_argument(
        "--thresholds", default="20:200:10", help="START:STOP:STEP in ms (inclusive)"
    )
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds (0..N-1)")
    parser.add_argument("--mos", action="store_true",
                        help="add mos_lqo (P.862 of the caller's audio, --conceal rendering; slow)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True,
                        help="directory for sweep.csv, summary.csv and PNGs")  # fmt: skip
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


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def run(args: argparse.Namespace) -> int:
    from labkit.sim.summary import summarize
    from labkit.sim.sweep import check_names, sweep

    strategies, links, playouts = _names(args.strategy), _names(args.link), _names(args.playout)
    problems: list[str] = []
    try:
        check_names(strategies or [""], links or [""], playouts or [""])
        thresholds = parse_thresholds(args.thresholds)
        options = strategy_options(strategies, args.variant)
        link_params = parse_params(args.link_param, "--link-param")
        playout_params = parse_params(args.playout_param, "--playout-param")
    except ValueError as exc:
        problems.append(str(exc))
    if args.seeds < 1 or args.jobs < 1:
        problems.append(f"--seeds and --jobs must be >= 1, got {args.seeds} and {args.jobs}")
    for problem in problems:
        print(f"labkit sweep: {problem}", file=sys.stderr)
    if problems:
        return 2
    try:
        frame = sweep(args.traces, strategies, thresholds, links, args.seeds, playouts,
                      jobs=args.jobs, link_params=link_params or None,
                      playout_params=playout_params or None,
                      strategy_options=options, mos=args.mos, conceal=args.conceal,
                      trace_limits=trace_limits_from_args(args))  # fmt: skip
    except (ValueError, OSError) as exc:
        print(f"labkit sweep: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "sweep.csv", index=False)
    summary = summarize(frame)
    summary.to_csv(args.out / "summary.csv", index=False)
    written = write_plots(summary, args.out)
    print(f"wrote {len(frame)} runs to {args.out / 'sweep.csv'}, {len(summary)} settings to "
          f"{args.out / 'summary.csv'} and {len(written)} plots")  # fmt: skip
    return 0


def write_plots(summary: Any, out: Path) -> list[Path]:
    """One PNG per (trace, playout) and metric: a panel per link, a line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labkit.plots.sweep import metric_by_link

    written = []
    for (trace, playout), rows in summary.groupby(["trace", "playout"]):
        for metric in ("concealed_ms", "onset_concealed_ms"):
            axes = metric_by_link(rows, metric, suptitle=f"{trace}, playout {playout}: "
                                                        f"mean over seeds, 95% band")  # fmt: skip
            path = out / f"{metric}_{trace}_{playout}.png"
            figure = axes[0].get_figure(root=True)
            assert figure is not None
            figure.savefig(path, dpi=100)
            plt.close(figure)
            written.append(path)
    return written

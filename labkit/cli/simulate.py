"""``labkit simulate TRACE``: one simulated call, its metrics as a table or JSON.

See notebooks/01_why_tiny_packets_jitter.ipynb.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from labkit.cli.trace_limits import add_trace_limit_arguments, trace_limits_from_args
from labkit.outbound import STRATEGY_NAMES
from labkit.sim.links import LINK_NAMES
from labkit.sim.playout import PLAYOUT_NAMES


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("simulate", help="simulate one call over a trace")
    parser.add_argument("trace", help="trace file or shipped trace name")
    parser.add_argument("--strategy", default="forward", help=", ".join(STRATEGY_NAMES))
    parser.add_argument("--threshold-ms", type=float, default=50.0)
    parser.add_argument("--link", default="jitter", help=", ".join(LINK_NAMES))
    parser.add_argument("--playout", default="fifo", help=", ".join(PLAYOUT_NAMES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_trace_limit_arguments(parser)
    parser.set_defaults(func=run)


def check_choice(what: str, value: str, choices: tuple[str, ...]) -> str | None:
    """An error message when ``value`` is not one of ``choices``."""
    if value in choices:
        return None
    return f"unknown {what} {value!r}; choose one of {', '.join(choices)}"


def run(args: argparse.Namespace) -> int:
    from labkit.sim.simulator import simulate
    from labkit.sim.sweep import load_trace

    for what, value, choices in (
        ("strategy", args.strategy, STRATEGY_NAMES),
        ("link", args.link, LINK_NAMES),
        ("playout", args.playout, PLAYOUT_NAMES),
    ):
        problem = check_choice(what, value, choices)
        if problem:
            print(f"labkit simulate: {problem}", file=sys.stderr)
            return 2
    if not math.isfinite(args.threshold_ms) or args.threshold_ms < 0:
        print(
            f"labkit simulate: --threshold-ms must be >= 0, got {args.threshold_ms}",
            file=sys.stderr,
        )
        return 2
    try:
        _, trace = load_trace(args.trace, trace_limits_from_args(args))
        result = simulate(
            trace, args.strategy, args.threshold_ms, args.link, args.playout, args.seed
        )
    except (ValueError, OSError) as exc:
        print(f"labkit simulate: {exc}", file=sys.stderr)
        return 2
    row = result.metrics.as_row()
    if args.json:
        print(json.dumps(row, allow_nan=True))
    else:
        width = max(len(k) for k in row)
        for key, value in row.items():
            text = f"{value:.2f}" if isinstance(value, float) else str(value)
            print(f"{key:<{width}}  {text}")
    return 0

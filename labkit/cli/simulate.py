"""``labkit simulate TRACE``: one simulated call, its metrics as a table or JSON.

See notebooks/01_why_tiny_packets_jitter.ipynb.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from labkit.cli.flag_types import checked_number, whole_number
from labkit.cli.trace_limits import add_trace_limit_arguments, trace_limits_from_args
from labkit.outbound import STRATEGY_NAMES
from labkit.outbound.queued import MAX_THRESHOLD_MS, check_threshold_ms
from labkit.sim.links import DEFAULT_LINK, LINK_NAMES
from labkit.sim.playout import DEFAULT_PLAYOUT, PLAYOUT_NAMES

ALL_STRATEGIES = (*STRATEGY_NAMES, "original_report")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("simulate", help="simulate one call over a trace")
    parser.add_argument("trace", help="trace file or shipped trace name")
    add_model_arguments(parser)
    parser.add_argument("--threshold-ms", type=checked_number(check_threshold_ms, "a number of ms"),
                        default=50.0, help=f"the strategy's threshold, 0 to "
                        f"{MAX_THRESHOLD_MS:g} ms (default %(default)g)")  # fmt: skip
    parser.add_argument("--seed", type=seed_number, default=0, help="0 or more (default 0)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (null where a metric is not a number)")
    parser.add_argument("--no-mos", action="store_true",
                        help="skip mos_lqo (P.862 of the caller's audio; ~1 s per minute of audio)")
    add_trace_limit_arguments(parser)
    parser.set_defaults(func=run)


seed_number = whole_number(0)  # numpy's generators take no negative seed


def add_model_arguments(parser: argparse.ArgumentParser, many: bool = False) -> None:
    """The options naming the strategy and the world (shared with ``labkit sweep``)."""
    default = f"({'comma-separated; ' if many else ''}default %(default)s)"
    parser.add_argument("--strategy", default=",".join(STRATEGY_NAMES) if many else "forward",
                        help=f"{', '.join(ALL_STRATEGIES)} {default}")  # fmt: skip
    parser.add_argument("--variant", default=None,
                        help="original_report only: final (default, commit ecf2c57) or first "
                             "(commit 7b2f4e0, with its mark leak)")  # fmt: skip
    parser.add_argument("--link", default=DEFAULT_LINK,
                        help=f"{', '.join(LINK_NAMES)} {default}")  # fmt: skip
    parser.add_argument("--playout", default=DEFAULT_PLAYOUT,
                        help=f"{', '.join(PLAYOUT_NAMES)} {default}")  # fmt: skip
    parser.add_argument("--link-param", action="append", default=[], metavar="KEY=VALUE",
                        help="a link or sender-loop parameter, e.g. mean_ms=80 or "
                             "stall_rate_per_s=1 (repeatable)")  # fmt: skip
    parser.add_argument("--playout-param", action="append", default=[], metavar="KEY=VALUE",
                        help="a playout parameter, e.g. depth_ms=80 with --playout prefetch "
                             "(repeatable)")  # fmt: skip
    parser.add_argument("--conceal", default="plc", choices=("plc", "silence"),
                        help="how the caller's audio fills gaps where Twilio sent nothing: "
                             "G.711 Appendix I concealment (plc, default) or silence")


def check_choice(what: str, value: str, choices: tuple[str, ...]) -> str | None:
    """An error message when ``value`` is not one of ``choices``."""
    if value in choices:
        return None
    return f"unknown {what} {value!r}; choose one of {', '.join(choices)}"


def parse_params(pairs: list[str], option: str) -> dict[str, float]:
    """``KEY=VALUE`` pairs (numbers) into a dict, or a ValueError naming the bad one."""
    params: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not key or not math.isfinite(number):
            raise ValueError(f"{option} {pair!r} is not KEY=NUMBER")
        params[key.strip()] = number
    return params


def strategy_options(strategies: list[str], variant: str | None) -> dict[str, dict[str, Any]]:
    """Per-strategy options from the command line (``--variant`` goes to original_report)."""
    if variant is None:
        return {}
    if "original_report" not in strategies:
        raise ValueError("--variant applies to --strategy original_report only")
    return {"original_report": {"variant": variant}}


def run(args: argparse.Namespace) -> int:
    from labkit.sim.playout import check_playout_params
    from labkit.sim.simulator import prepare, simulate
    from labkit.sim.sweep import load_trace

    for what, value, choices in (
        ("strategy", args.strategy, ALL_STRATEGIES),
        ("link", args.link, LINK_NAMES),
        ("playout", args.playout, PLAYOUT_NAMES),
    ):
        problem = check_choice(what, value, choices)
        if problem:
            print(f"labkit simulate: {problem}", file=sys.stderr)
            return 2
    try:
        options = strategy_options([args.strategy], args.variant).get(args.strategy, {})
        link_params = parse_params(args.link_param, "--link-param")
        playout_params = parse_params(args.playout_param, "--playout-param")
        check_playout_params(args.playout, playout_params)  # before the trace is read
        name, trace = load_trace(args.trace, trace_limits_from_args(args))
        result = simulate(prepare(trace, name), args.strategy, args.threshold_ms, args.link,
                          args.playout, args.seed, link_params, playout_params,
                          **options)  # fmt: skip
    except (ValueError, OSError) as exc:
        print(f"labkit simulate: {exc}", file=sys.stderr)
        return 2
    row = result.metrics.as_row()
    row["concealment"] = args.conceal
    if not args.no_mos:
        from labkit.sim.render import mos_lqo

        try:
            row["mos_lqo"] = mos_lqo(result, args.conceal)
        except ValueError as exc:  # no score (a rendering too long to hold): the metrics stand
            row["mos_lqo"] = math.nan
            print(f"labkit simulate: no mos_lqo: {exc}", file=sys.stderr)
    if args.json:
        from labkit.sim.metrics import json_row

        print(json.dumps(json_row(row), allow_nan=False))
    else:
        width = max(len(k) for k in row)
        for key, value in row.items():
            text = f"{value:.2f}" if isinstance(value, float) else str(value)
            print(f"{key:<{width}}  {text}")
    return 0

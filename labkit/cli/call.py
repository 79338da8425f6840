"""``labkit call``: one loopback call through the real server, measured beside the simulator.

The model is ``TraceReplayModel`` by default; ``--realtime-emulator`` runs the SDK's own OpenAI
model against a local Realtime emulator instead (``--realtime-log DIR`` keeps the Realtime log of
what the emulator sent). See labkit.live.call and notebooks/04_live_call.ipynb.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from typing import Any

from labkit.cli.flag_types import checked, replay_speed
from labkit.cli.output_paths import output_directory
from labkit.cli.refusal import Refusal
from labkit.cli.trace_file import readable_trace
from labkit.cli.trace_limits import add_trace_limit_arguments, trace_limits_from_args
from labkit.live.call import MAX_CALL_SPEED
from labkit.live.settings import (
    DEFAULT_MARK_EVERY_MS,
    DEFAULT_STRATEGY,
    DEFAULT_THRESHOLD_MS,
    parse_mark_every_ms,
    parse_strategy,
    parse_threshold_ms,
)
from labkit.sim.playout import DEFAULT_PLAYOUT, PLAYOUT_NAMES


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "call",
        help="dial the live server over loopback with the Twilio emulator",
        description="Replay TRACE through the real server and handler, dialled by the Twilio "
        "emulator; print the measured metrics next to the simulator's prediction.",
    )
    parser.add_argument("--trace", required=True, help="trace file, or the name of a shipped one")
    parser.add_argument("--strategy", type=checked(parse_strategy), default=DEFAULT_STRATEGY,
                        help=f"outbound strategy (default {DEFAULT_STRATEGY})")
    parser.add_argument("--threshold-ms", type=checked(parse_threshold_ms),
                        default=DEFAULT_THRESHOLD_MS, help=f"default {DEFAULT_THRESHOLD_MS:g}")
    parser.add_argument("--playout", choices=PLAYOUT_NAMES, default=DEFAULT_PLAYOUT,
                        help=f"the emulated Twilio's playout model (default {DEFAULT_PLAYOUT})")
    parser.add_argument("--speed", type=replay_speed, default=1.0,
                        help=f"replay speed, > 0 and at most {MAX_CALL_SPEED:g} (default 1, "
                        "as a phone call runs; faster shrinks every "
                        "timer's margin in real ms, so with --realtime-emulator a busy machine "
                        "can make a flush timer split a message the simulation sends whole: "
                        "notebooks/04_live_call.ipynb)")  # fmt: skip
    parser.add_argument("--barge-in-at-ms", type=float, default=None,
                        help="the caller barges in then (ms into the trace, agent speaking)")
    parser.add_argument("--mark-every-ms", type=checked(parse_mark_every_ms),
                        default=DEFAULT_MARK_EVERY_MS,
                        help="ms of audio per mark, or 'none' for a mark after every media message "
                        "(default %(default)g)")
    parser.add_argument("--align-frames", action="store_true", help="send whole 20 ms frames")
    parser.add_argument(
        "--realtime-emulator",
        action="store_true",
        help="the SDK's own OpenAI model against a local Realtime emulator (not TraceReplayModel)",
    )
    parser.add_argument(
        "--realtime-log", metavar="DIR", type=output_directory,
        help="with --realtime-emulator: write its log",
    )
    parser.add_argument("--record", metavar="DIR", type=output_directory,
                        help="record the call's trace here")
    parser.add_argument("--json", action="store_true", help='print {"measured":..,"simulated":..}')
    add_trace_limit_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from labkit.live.call import check_call_speed, loopback_call, with_barge_in

    if args.realtime_log is not None and not args.realtime_emulator:
        raise Refusal("labkit call: --realtime-log needs --realtime-emulator")
    try:  # the call's own bound, beyond the replay's rule the flag's type checks
        check_call_speed(args.speed)
    except ValueError as exc:
        raise Refusal(f"labkit call: --speed: {exc}") from None
    path, trace = readable_trace("call", args.trace, trace_limits_from_args(args))
    if args.barge_in_at_ms is not None:
        try:  # the call's own rule, asked before any server starts
            with_barge_in(trace, args.barge_in_at_ms)
        except ValueError as exc:
            raise Refusal(f"labkit call: --barge-in-at-ms: {exc}") from None
    options: dict[str, Any] = {"align_frames": args.align_frames,
                               "mark_every_ms": args.mark_every_ms}  # fmt: skip
    try:
        result = asyncio.run(
            loopback_call(
                path,
                args.strategy,
                args.threshold_ms,
                speed=args.speed,
                playout=args.playout,
                barge_in_at_ms=args.barge_in_at_ms,
                trace_limits=trace_limits_from_args(args),
                realtime_emulator=args.realtime_emulator,
                realtime_log_dir=args.realtime_log,
                record_dir=args.record,
                **options,
            )
        )
    except RuntimeError as exc:  # the call itself failed: nothing measured to compare
        print(f"labkit call: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
        return 0
    model = "SDK OpenAI model + Realtime emulator" if args.realtime_emulator else "TraceReplayModel"
    print(
        f"{args.strategy} @ {args.threshold_ms:g} ms, playout {args.playout}, "
        f"speed x{args.speed:g}, loopback delay {result.loopback_delay_ms:.2f} ms, {model}"
    )
    rows = result.as_json()
    print(f"  {'metric':<32} {'measured':>14} {'simulated':>14}")
    for key in rows["measured"]:
        measured, simulated = rows["measured"][key], rows["simulated"][key]
        print(f"  {key:<32} {_fmt(measured):>14} {_fmt(simulated):>14}")
    if any(_fmt(value) == NOT_OBSERVED for value in rows["measured"].values()):
        print(f"  {NOT_OBSERVED}: not observed. The caller sees when audio arrives, not when the "
              "server sent it (sender gaps), and the simulation is measured the same way.")
    return 0


NOT_OBSERVED = "-"


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_OBSERVED
    if isinstance(value, float):
        text = f"{value:.2f}"
        return "0.00" if text == "-0.00" else text  # a rounding's sign says nothing
    return str(value)

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
from typing import Any

from labkit.cli.output_paths import output_directory
from labkit.cli.trace_file import readable_trace
from labkit.cli.trace_limits import add_trace_limit_arguments, trace_limits_from_args
from labkit.sim.playout import DEFAULT_PLAYOUT, PLAYOUT_NAMES


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "call",
        help="dial the live server over loopback with the Twilio emulator",
        description="Replay TRACE through the real server and handler, dialled by the Twilio "
        "emulator; print the measured metrics next to the simulator's prediction.",
    )
    parser.add_argument("--trace", required=True, help="trace file, or the name of a shipped one")
    parser.add_argument("--strategy", default="forward", help="outbound strategy (default forward)")
    parser.add_argument("--threshold-ms", type=float, default=50.0, help="default 50")
    parser.add_argument("--playout", choices=PLAYOUT_NAMES, default=DEFAULT_PLAYOUT,
                        help=f"the emulated Twilio's playout model (default {DEFAULT_PLAYOUT})")
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed (default 1)")
    parser.add_argument("--barge-in-at-ms", type=float, default=None, help="caller barges in then")
    parser.add_argument("--mark-every-ms", type=float, default=None, help="mark cadence")
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
    from labkit.live.call import loopback_call

    if not args.speed > 0:
        raise SystemExit(f"labkit call: --speed must be > 0, got {args.speed}")
    if args.realtime_log is not None and not args.realtime_emulator:
        raise SystemExit("labkit call: --realtime-log needs --realtime-emulator")
    options: dict[str, Any] = {"align_frames": args.align_frames}
    if args.mark_every_ms is not None:
        options["mark_every_ms"] = args.mark_every_ms
    result = asyncio.run(
        loopback_call(
            readable_trace("call", args.trace, trace_limits_from_args(args))[0],
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
    return 0


def _fmt(value: Any) -> str:
    if value is None:
        return "nan"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.2f}"
    return str(value)

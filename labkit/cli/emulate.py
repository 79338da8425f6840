"""``labkit emulate TRACE``: a local OpenAI Realtime server replaying a trace, for your own server.

Point your ``openai-agents`` model config at it (``url`` and the placeholder ``api_key`` it
prints) and your own server runs offline, through the SDK's real model. Binds 127.0.0.1 only.
See labkit.live.realtime_emulator and the README's "Your own traces".
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from labkit.cli.flag_types import replay_speed
from labkit.cli.output_paths import output_directory
from labkit.cli.ports import port_number
from labkit.cli.refusal import Refusal
from labkit.cli.trace_limits import add_trace_limit_arguments, trace_limits_from_args

DEFAULT_PORT = 8766


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "emulate",
        help="serve a trace as a local OpenAI Realtime server (127.0.0.1)",
        description="Replay TRACE to every Realtime WebSocket client that connects, over the "
        "protocol the openai-agents SDK's own model speaks.",
    )
    parser.add_argument("trace", metavar="TRACE", help="trace file, or the name of a shipped one")
    parser.add_argument("--speed", type=replay_speed, default=1.0,
                        help="replay speed factor (default %(default)g)")
    parser.add_argument("--port", type=port_number, default=DEFAULT_PORT,
                        help="default %(default)s")
    parser.add_argument("--log", metavar="DIR", type=output_directory,
                        help="write each session's Realtime log")
    parser.add_argument(
        "--close-when-done", action="store_true", help="close each session when its trace ends"
    )
    add_trace_limit_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from labkit.cli.trace_file import readable_trace
    from labkit.live.realtime_emulator import EMULATOR_API_KEY, RealtimeEmulator

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _, trace = readable_trace("emulate", args.trace, trace_limits_from_args(args))
    emulator = RealtimeEmulator(
        trace,
        speed=args.speed,
        port=args.port,
        log_dir=args.log,
        close_when_done=args.close_when_done,
    )

    async def serve() -> None:
        async with emulator:
            print(
                f"Realtime emulator on {emulator.url} replaying {trace!r} x{args.speed:g}\n"
                f'model_config: {{"url": "{emulator.url}", "api_key": "{EMULATOR_API_KEY}", ...}}',
                flush=True,
            )
            await asyncio.Event().wait()  # until Ctrl-C

    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(serve())
        except OSError as exc:  # the port is taken, or not ours to bind
            raise Refusal(f"labkit emulate: cannot serve on 127.0.0.1:{args.port}: "
                          f"{exc.strerror or exc}") from None  # fmt: skip
    return 0

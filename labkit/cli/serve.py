"""``labkit serve``: run the live server for real Twilio calls (or a trace replay).

See notebooks/04_live_call.ipynb. Secrets come from the environment only (OPENAI_API_KEY,
TWILIO_AUTH_TOKEN, LABKIT_STATS_TOKEN), never from flags, so they stay out of shell history and
process lists. The server's limits have flags of their own (``labkit.cli.server_limits``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
from typing import Any

from labkit.cli.flag_types import checked, replay_speed
from labkit.cli.output_paths import output_directory
from labkit.cli.ports import cannot_listen, port_number
from labkit.cli.refusal import Refusal
from labkit.cli.server_limits import add_server_limit_arguments, server_limits_from_args
from labkit.cli.trace_file import readable_trace
from labkit.cli.trace_limits import add_trace_limit_arguments, trace_limits_from_args
from labkit.live.settings import (
    DEFAULT_MARK_EVERY_MS,
    DEFAULT_STRATEGY,
    DEFAULT_THRESHOLD_MS,
    DEFAULT_VOICE,
    DEFAULT_WS_IMPLEMENTATION,
    WS_IMPLEMENTATIONS,
    CallSettings,
    ServerSettings,
    check_public_url,
    parse_mark_every_ms,
    parse_strategy,
    parse_threshold_ms,
    strategy_names,
)
from labkit.traces.errors import TraceFormatError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the live Twilio server (real OpenAI model, or a trace replay)",
        description="Serve Twilio's voice webhook and Media Streams WebSocket. With OPENAI_API_KEY "
        "set and no --replay, calls talk to the OpenAI Realtime model; otherwise a trace is "
        "replayed. With TWILIO_AUTH_TOKEN set, every request must carry a valid Twilio signature.",
    )
    parser.add_argument("--replay", metavar="TRACE", help="trace file or shipped trace name")
    parser.add_argument("--speed", type=replay_speed, default=1.0,
                        help="replay speed factor (default %(default)g)")
    parser.add_argument(
        "--realtime-emulator",
        action="store_true",
        help="replay through the SDK's own OpenAI model and a local Realtime emulator",
    )
    parser.add_argument(
        "--realtime-emulator-url",
        metavar="URL",
        help="the same through a Realtime emulator already running (`labkit emulate`, e.g. in a "
        "process of its own); it must replay the --replay trace at --speed",
    )
    parser.add_argument("--strategy", type=checked(parse_strategy), default=DEFAULT_STRATEGY,
                        help=f"outbound strategy: {', '.join(strategy_names())} "
                        "(default %(default)s)")
    parser.add_argument("--threshold-ms", type=checked(parse_threshold_ms),
                        default=DEFAULT_THRESHOLD_MS, help="default %(default)g")  # fmt: skip
    parser.add_argument(
        "--mark-every-ms",
        type=checked(parse_mark_every_ms),
        default=DEFAULT_MARK_EVERY_MS,
        help="ms of audio per mark, or 'none' for a mark after every media message "
        "(default %(default)g)",
    )
    parser.add_argument("--align-frames", action="store_true", help="cut media at 20 ms frames")
    parser.add_argument("--host", default=DEFAULT_HOST, help="default %(default)s")
    parser.add_argument("--port", type=port_number, default=DEFAULT_PORT,
                        help="default %(default)s")
    parser.add_argument("--record", metavar="DIR", type=output_directory,
                        help="write each call's trace here")
    parser.add_argument("--public-url", metavar="URL", help="e.g. https://abc.ngrok.app")
    parser.add_argument("--voice", default=DEFAULT_VOICE, help="default %(default)s")
    parser.add_argument("--ws", choices=WS_IMPLEMENTATIONS, default=DEFAULT_WS_IMPLEMENTATION,
                        help="uvicorn's WebSocket layer (default %(default)s)")  # fmt: skip
    parser.add_argument("--ws-per-message-deflate", action="store_true",
                        help="accept permessage-deflate when a caller offers it (off: it halves "
                        "the bytes for ~25 us of CPU per message)")  # fmt: skip
    add_server_limit_arguments(parser)
    add_trace_limit_arguments(parser)
    parser.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    call = CallSettings(args.strategy, args.threshold_ms, args.mark_every_ms, args.align_frames)
    emulator_url = getattr(args, "realtime_emulator_url", None)
    if emulator_url is not None and args.realtime_emulator:
        raise Refusal("labkit serve: --realtime-emulator starts its own emulator; "
                      "--realtime-emulator-url uses one already running: pick one")  # fmt: skip
    if emulator_url is not None and not emulator_url.startswith(("ws://", "wss://")):
        raise Refusal(f"labkit serve: --realtime-emulator-url must be a ws:// URL, "
                      f"got {emulator_url!r}")  # fmt: skip
    ws = getattr(args, "ws", DEFAULT_WS_IMPLEMENTATION)
    if ws == "wsproto" and importlib.util.find_spec("wsproto") is None:
        raise Refusal("labkit serve: --ws wsproto needs the wsproto package "
                      "(pip install -e '.[bench]')")  # fmt: skip
    if args.public_url is not None:
        try:  # the settings' rule, under the flag's name
            check_public_url("--public-url", args.public_url)
        except ValueError as exc:
            raise Refusal(f"labkit serve: {exc}") from None
    limits = trace_limits_from_args(args)
    replay = readable_trace("serve", args.replay, limits)[0] if args.replay else None
    return ServerSettings.from_env(
        realtime_emulator_url=emulator_url,
        call=call,
        replay_trace=replay,
        replay_speed=args.speed,
        record_dir=args.record,
        public_url=args.public_url,
        voice=args.voice,
        limits=server_limits_from_args(args),
        trace_limits=limits,
        ws_implementation=ws,
        ws_per_message_deflate=getattr(args, "ws_per_message_deflate", False),
    )


def instructions(settings: ServerSettings, host: str, port: int, model: str,
                 *, realtime_emulator: bool = False) -> str:  # fmt: skip
    base = (settings.public_url or f"https://<your public host for {host}:{port}>").rstrip("/")
    signatures = "required" if settings.twilio_auth_token else "NOT checked (no TWILIO_AUTH_TOKEN)"
    return "\n".join(
        [
            f"labkit live server on http://{host}:{port}  model: {model}",
            *_unasked_replay(settings, realtime_emulator),
            f"call settings: {settings_text(settings.call)}",
            f"Twilio signatures: {signatures}",
            f"limits: {settings_text(settings.limits)}",
            "In the Twilio console, Phone Numbers > your number > Voice configuration:",
            f"  A call comes in: Webhook  {base}/incoming-call  HTTP POST",
            "Twilio needs a public https URL: e.g. run `ngrok http "
            f"{port}` and pass --public-url https://<id>.ngrok.app",
            f"Health check: http://{host}:{port}/health",
        ]
    )


def _unasked_replay(settings: ServerSettings, realtime_emulator: bool) -> list[str]:
    """A line saying why a trace is replayed when nothing asked for one: no OpenAI key."""
    asked = (realtime_emulator or settings.replay_trace is not None
             or settings.realtime_emulator_url is not None)  # fmt: skip
    if asked or not settings.uses_replay:
        return []
    return ["replaying a trace because OPENAI_API_KEY is unset (set it to talk to OpenAI)"]


def settings_text(settings: Any) -> str:
    """A settings dataclass as ``name=value`` words, every field its repr shows (secrets are
    ``repr=False``: never shown)."""
    shown = (f for f in dataclasses.fields(settings) if f.repr)
    return " ".join(f"{f.name}={_value_text(getattr(settings, f.name))}" for f in shown)


def _value_text(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def run(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from labkit.live.server import create_app, freeze_long_lived_heap, uvicorn_config

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = settings_from_args(args)
    except ValueError as exc:  # the settings' own rules (a --public-url without http, ...)
        raise Refusal(f"labkit serve: {exc}") from None
    if (problem := cannot_listen(args.host, args.port)) is not None:
        print(f"labkit serve: {problem}", file=sys.stderr)
        return 2
    if args.realtime_emulator:
        import asyncio
        import contextlib

        from labkit.live.realtime_emulator.serving import serve_with_emulator

        def announce(app: Any) -> None:
            description = app.state.models.description
            print(instructions(settings, args.host, args.port, description,
                               realtime_emulator=True), flush=True)  # fmt: skip

        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: both servers stopped cleanly
            try:
                asyncio.run(serve_with_emulator(settings, args.host, args.port, announce=announce))
            except TraceFormatError as exc:  # the trace changed since it was checked above
                raise Refusal(f"labkit serve: {exc}") from None
        return 0
    app = create_app(settings)
    print(instructions(settings, args.host, args.port, app.state.models.description), flush=True)
    freeze_long_lived_heap()
    uvicorn.Server(uvicorn_config(app, args.host, args.port, log_level="info")).run()
    return 0

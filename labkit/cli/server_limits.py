"""The flags of ``labkit serve`` that set the server's own limits (``ServerLimits``; README,
"Bad input"). Not a subcommand: ``labkit.cli.serve`` adds them."""

from __future__ import annotations

import argparse

from labkit.cli.flag_types import positive, whole_number
from labkit.cli.trace_limits import positive_mib
from labkit.live.settings import (
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_STREAMS,
    DEFAULT_RECORD_MAX_BYTES,
    DEFAULT_REQUEST_TIMEOUT_S,
    DEFAULT_START_TIMEOUT_S,
    KIB,
    MIB,
    MIN_FRAME_BYTES,
    ServerLimits,
)

positive_seconds = positive("seconds")


positive_int = whole_number(1)


def frame_kib(text: str) -> int:
    value = positive_int(text)
    if value * KIB < MIN_FRAME_BYTES:
        raise argparse.ArgumentTypeError(f"must be >= {MIN_FRAME_BYTES // KIB} (a Twilio message)")
    return value


def record_cap_mib(text: str) -> float | None:
    return None if text.strip().lower() == "none" else positive_mib(text)


def add_server_limit_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("limits (what one caller may cost the server)")
    group.add_argument("--start-timeout-s", type=positive_seconds, default=DEFAULT_START_TIMEOUT_S,
                       help="close a media stream with no valid start by then "
                       "(default %(default)g)")
    group.add_argument("--max-streams", type=positive_int, default=DEFAULT_MAX_STREAMS,
                       help="media streams open at once; more get HTTP 503 (default %(default)d)")
    group.add_argument("--request-timeout-s", type=positive_seconds,
                       default=DEFAULT_REQUEST_TIMEOUT_S,
                       help="close a connection whose HTTP request is not whole by then "
                       "(slow headers or body; default %(default)g)")
    group.add_argument("--max-frame-kib", type=frame_kib, default=DEFAULT_MAX_FRAME_BYTES // KIB,
                       help="a larger WebSocket message ends its call with close code 1009; "
                       "64 KiB to this are dropped and counted (default %(default)d)")
    group.add_argument("--record-max-mib", type=record_cap_mib,
                       default=DEFAULT_RECORD_MAX_BYTES / MIB,
                       help="stop recording calls once --record DIR holds this much, or 'none' "
                       "(default %(default)g)")  # fmt: skip


def server_limits_from_args(args: argparse.Namespace) -> ServerLimits:
    record_max = None if args.record_max_mib is None else int(args.record_max_mib * MIB)
    return ServerLimits(
        start_timeout_s=args.start_timeout_s,
        max_streams=args.max_streams,
        request_timeout_s=args.request_timeout_s,
        max_frame_bytes=args.max_frame_kib * KIB,
        record_max_bytes=record_max,
    )

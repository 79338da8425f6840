"""``--max-trace-mib`` and ``--max-line-mib``: the trace reader's caps, for every command that
reads traces (defaults and reasons: ``labkit.traces.limits``). Not a subcommand."""

from __future__ import annotations

import argparse

from labkit.cli.flag_types import positive
from labkit.traces.limits import (
    BYTES_PER_MIB,
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_MAX_TRACE_BYTES,
    TraceLimits,
)

positive_mib = positive("MiB")


def add_trace_limit_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("trace limits (a file over them is refused, naming the line)")
    group.add_argument(
        "--max-trace-mib",
        type=positive_mib,
        default=DEFAULT_MAX_TRACE_BYTES / BYTES_PER_MIB,
        help="largest trace (or log), decompressed, in MiB (default %(default)g)",
    )
    group.add_argument(
        "--max-line-mib",
        type=positive_mib,
        default=DEFAULT_MAX_LINE_BYTES / BYTES_PER_MIB,
        help="longest line (one event) of a trace (or log), in MiB (default %(default)g)",
    )


def trace_limits_from_args(args: argparse.Namespace) -> TraceLimits:
    return TraceLimits.from_mib(args.max_trace_mib, args.max_line_mib)

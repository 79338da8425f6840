"""``--max-trace-mib`` and ``--max-line-mib``: the trace reader's caps, for every command that
reads traces (defaults and reasons: ``labkit.traces.limits``). Not a subcommand."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from labkit.traces.limits import (
    BYTES_PER_MIB,
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_MAX_TRACE_BYTES,
    TraceLimits,
)


def positive(unit: str) -> Callable[[str], float]:
    """An argparse type: a finite number of ``unit`` > 0, or an error naming the unit."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of {unit}: {text!r}") from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(
                f"must be a finite number of {unit} > 0, got {text!r}"
            )
        return value

    return parse


positive_mib = positive("MiB")


def whole_number(minimum: int, maximum: int | None = None,
                 what: str = "a whole number") -> Callable[[str], int]:  # fmt: skip
    """An argparse type: an int of at least ``minimum`` (and at most ``maximum``), or an error
    saying which bound it missed."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if maximum is not None and not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be {minimum}..{maximum}, got {value}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value

    return parse


def add_trace_limit_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("trace limits (a file over them is refused, naming the line)")
    group.add_argument(
        "--max-trace-mib",
        type=positive_mib,
        default=DEFAULT_MAX_TRACE_BYTES / BYTES_PER_MIB,
        help="largest trace, decompressed, in MiB (default %(default)g)",
    )
    group.add_argument(
        "--max-line-mib",
        type=positive_mib,
        default=DEFAULT_MAX_LINE_BYTES / BYTES_PER_MIB,
        help="longest line (one event) of a trace, in MiB (default %(default)g)",
    )


def trace_limits_from_args(args: argparse.Namespace) -> TraceLimits:
    return TraceLimits.from_mib(args.max_trace_mib, args.max_line_mib)

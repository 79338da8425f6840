"""The ``labkit`` command: thin subcommands over the package.

Each subcommand lives in its own module ``labkit.cli.<name>`` exposing
``register(subparsers) -> None``; it sets ``func`` on its parser to a callable taking the parsed
namespace and returning an exit code. Modules are imported lazily so ``labkit --help`` stays fast.
(``labkit import`` lives in ``labkit.cli.import_``: ``import`` is a Python keyword.)
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from labkit.cli.refusal import OneLineParser, Refusal

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C stopped
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE
SUBCOMMAND_MODULES = (
    "synth", "simulate", "sweep", "serve", "call", "emulate", "import_", "lessons", "lab",
    "explore",
)


def build_parser() -> argparse.ArgumentParser:
    # every command's parser is of this class (argparse makes subparsers of their parent's):
    # a bad flag is refused in one line
    parser = OneLineParser(
        prog="labkit",
        description="Measure outbound audio buffering between a Realtime voice agent and Twilio.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(f"labkit.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"labkit.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:  # the commands' modules import at once; Ctrl-C meanwhile is Ctrl-C, not a traceback
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        print("labkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        code: int = args.func(args)
    except Refusal as refusal:  # the command's own "no": its line, then argparse's exit code
        print(refusal.message, file=sys.stderr)
        raise
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback (a sweep keeps its rows)
        print(f"labkit {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `labkit simulate ... | head -1`: the reader is gone; so are we
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # flushing at exit fails
        return EXIT_BROKEN_PIPE
    return code


if __name__ == "__main__":
    sys.exit(main())

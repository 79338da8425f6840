"""How a command refuses its input: one line on stderr, exit code 2 (argparse's own).

``raise Refusal("labkit import: log.jsonl, line 2: not a JSON line")``. A plain
``SystemExit(message)`` prints the message too, but exits 1, the code of a failure, not of a
refusal. ``labkit.cli.main`` prints the message; ``str()`` of the exception is the message.

A flag's bad value is refused the same way, every command's parser being a ``OneLineParser``
(``labkit.cli.build_parser``): argparse's own line, ``labkit sweep: error: argument --out: /tmp/f
is not a directory``, without the usage block argparse prints before it.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

EXIT_REFUSED = 2


class Refusal(SystemExit):
    """The command refuses its input (see the module docstring)."""

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_REFUSED)
        self.message = message

    def __str__(self) -> str:
        return self.message


class OneLineParser(argparse.ArgumentParser):
    """A command's parser whose errors are one line (exit 2): the README promises a refusal is
    one line, and argparse printed ten lines of usage before it (``--help`` still shows them).
    The line is argparse's own, ``labkit CMD: error: argument --flag: why``, as every command's
    last line reads. argparse makes a parser's subcommands' parsers of its own class."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_REFUSED, f"{self.prog}: error: {message}\n")

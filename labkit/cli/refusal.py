"""How a command refuses its input: one line on stderr, exit code 2 (argparse's own).

``raise Refusal("labkit import: log.jsonl, line 2: not a JSON line")``. A plain
``SystemExit(message)`` prints the message too, but exits 1, the code of a failure, not of a
refusal. ``labkit.cli.main`` prints the message; ``str()`` of the exception is the message.
"""

from __future__ import annotations

EXIT_REFUSED = 2


class Refusal(SystemExit):
    """The command refuses its input (see the module docstring)."""

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_REFUSED)
        self.message = message

    def __str__(self) -> str:
        return self.message

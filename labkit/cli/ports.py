"""``--port`` of the commands that serve (``serve``, ``emulate``, ``lab``, ``explore``): a TCP port
number, checked when the command line is read, so a typo ends in one line, not a traceback from
the socket layer."""

from __future__ import annotations

import argparse

MAX_PORT = 65535


def port_number(text: str) -> int:
    """A TCP port, 0..65535 (0: any free port, where the server reports the one it got)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"a port is 0..{MAX_PORT}, got {value}")
    return value

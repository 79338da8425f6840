"""``--port`` of the commands that serve (``serve``, ``emulate``, ``lab``, ``explore``): a TCP port
number, checked when the command line is read, so a typo ends in one line, not a traceback from
the socket layer. 0: any free port, where the server reports the one it got."""

from __future__ import annotations

import socket

from labkit.cli.flag_types import whole_number

MAX_PORT = 65535

port_number = whole_number(0, MAX_PORT, "a port number")


def cannot_listen(host: str, port: int) -> str | None:
    """Why this machine cannot listen on ``host:port`` (a taken port, a host that is not one of
    its addresses, a name no resolver knows), or None: asked before a server prints how to reach
    it, so that a typo ends in one line instead of instructions and then a traceback."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.create_server((host, port), family=family):
            return None
    except (OSError, UnicodeError, ValueError) as exc:  # UnicodeError: a name idna refuses
        return f"cannot listen on {host}:{port}: {exc}"

"""``--port`` of the commands that serve (``serve``, ``emulate``, ``lab``, ``explore``): a TCP port
number, checked when the command line is read, so a typo ends in one line, not a traceback from
the socket layer. 0: any free port, where the server reports the one it got."""

from __future__ import annotations

from labkit.cli.flag_types import whole_number

MAX_PORT = 65535

port_number = whole_number(0, MAX_PORT, "a port number")

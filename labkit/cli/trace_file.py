"""The one trace a command replays (``serve --replay``, ``emulate``, ``call --trace``): a file or
a shipped name, checked by reading it before any server starts, so a bad trace ends the command
with one line naming the file, line and field, never a traceback. The rule for what a name
means is labkit.sim.sweep_traces's, the sweeps' own."""

from __future__ import annotations

from pathlib import Path

from labkit.cli.refusal import Refusal
from labkit.traces import Trace, TraceLimits


def readable_trace(command: str, spec: str, limits: TraceLimits) -> tuple[Path, Trace]:
    """The file ``spec`` names and its trace, read whole within ``limits``; SystemExit
    ("labkit COMMAND: ...") when it names no trace or cannot be read."""
    from labkit.sim.sweep_traces import one_trace

    try:
        source = one_trace(spec)
        trace = source.load(limits)
    except (ValueError, OSError) as exc:  # TraceFormatError is a ValueError
        raise Refusal(f"labkit {command}: {exc}") from None
    assert source.path is not None  # a string names a file, never a Trace object
    return source.path, trace

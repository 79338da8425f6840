"""``labkit import LOG -o TRACE``: a raw Realtime WebSocket log (JSON lines) as a v1 trace.

The log schema and the rules are in ``labkit.traces.realtime_log``; the README's "Your own traces"
shows how to write such a log. A bad line stops the import with the file, the line and the field;
an existing output file is never overwritten (unless ``--force``). See notebooks/00_traces.ipynb.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from labkit.cli.output_paths import output_file
from labkit.cli.refusal import Refusal
from labkit.cli.trace_limits import add_trace_limit_arguments, trace_limits_from_args


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import",
        help="turn a Realtime WebSocket log (JSON lines of server events) into a trace",
        description="Read LOG, one received Realtime server event per line "
        '({"t_ms": ms, "event": {...}}, or "received_at" in seconds), GA or beta event names, '
        "and write the v1 trace a session would have recorded.",
    )
    parser.add_argument("log", type=Path, metavar="LOG", help="the log (.jsonl or .jsonl.gz)")
    parser.add_argument("-o", "--out", type=output_file, required=True, metavar="TRACE",
                        help="the trace to write: *.jsonl.gz (gzip) or *.jsonl")
    parser.add_argument("--description", help="the trace header's description")
    parser.add_argument("--force", action="store_true", help="overwrite TRACE if it exists")
    parser.add_argument("--salvage", action="store_true",
                        help="a log cut short (a killed logger, a full disk): keep its whole lines "
                        "and say where it was cut")  # fmt: skip
    add_trace_limit_arguments(parser)  # the log is read within the same caps as a trace
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from labkit.sim.sweep_traces import TRACE_SUFFIXES
    from labkit.traces import TraceFormatError, write
    from labkit.traces.reader import StreamCutShort
    from labkit.traces.realtime_log import import_log

    # the names every other command reads as traces; the writer gzips a name ending in .gz
    if not args.out.name.endswith(TRACE_SUFFIXES):
        raise Refusal(f"labkit import: -o/--out must name a trace file ending in "
                      f"{' or '.join(TRACE_SUFFIXES)}, got {str(args.out)!r}")  # fmt: skip
    if args.out.exists() and not args.force:
        raise Refusal(f"labkit import: {args.out} exists; not overwriting it (use --force)")
    if not args.log.is_file():
        what = "not a regular file" if args.log.exists() else "no such file"
        raise Refusal(f"labkit import: {args.log}: {what}")
    try:
        imported = import_log(args.log, description=args.description, salvage=args.salvage,
                              limits=trace_limits_from_args(args))  # fmt: skip
    except StreamCutShort as error:
        raise Refusal(f"labkit import: {error} (--salvage keeps the whole lines)") from None
    except TraceFormatError as error:
        raise Refusal(f"labkit import: {error}") from None
    trace = imported.trace
    if not trace.events:
        raise Refusal(f"labkit import: {args.log} holds no event a trace keeps; nothing written")
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write(trace, args.out, overwrite=args.force)
    except OSError as error:  # the disk, not the log: nothing was written
        raise Refusal(f"labkit import: cannot write {args.out}: {error}") from None
    if imported.cut:
        print(f"salvaged: {imported.cut}; the whole lines before it are in {args.out}")
    names = "+".join(sorted(imported.dialects)) or "no audio"
    print(f"{args.out}: {trace!r} ({names} event names, {imported.audio_format} output)")
    if imported.skipped:
        skipped = ", ".join(f"{kind} x{count}" for kind, count in imported.skipped.most_common())
        print(f"skipped: {skipped}")
    return 0

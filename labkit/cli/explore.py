"""``labkit explore``: the explorer as a web page (Voila), for people who never open a notebook.

Voila runs a two-cell notebook, written at start into a temporary directory, whose code cell builds
``labkit.views.explorer_app.Explorer``: the same widgets and compute as lesson 03, no second copy.
Voila shows the page without code; the kernel behind it answers the controls. Voila keeps
``--warm-kernels`` kernels started and already run through the notebook (its "preheated" pool), so
a page load takes one whose figure is drawn: its first figure shows in ~2.3 s instead of ~5.4 s
(most of that was the kernel's start and imports; benchmarks/bench_explore_first_figure.py).
The trace menu offers the shipped traces, then the files and directories given on the command line
(your recorded calls), each read before Voila starts so a bad one is named at once.
Binds 127.0.0.1 unless told otherwise. Voila runs in its own process group, which labkit stops
when it is itself stopped (Ctrl-C, SIGTERM, SIGHUP): nothing keeps serving, and the temporary
directory goes. See notebooks/03_explorer.ipynb for how to read the figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TypeAlias

from labkit.cli.ports import port_number

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8866
# Voila starts a kernel per page load and keeps it after the page closes: every reload would leave
# one behind (~200 MB with labkit loaded). A kernel no page is connected to is shut down once it
# has been idle this long; one a page still shows is never culled, however long it idles.
IDLE_KERNEL_S = 60.0
WARM_KERNELS = 1  # ~200 MB each, idle until a page load takes one (then Voila starts another)
MAX_WARM_KERNELS = 16
# The signals that stop labkit explore, and Voila with it: Ctrl-C, kill's default, a closed terminal
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Voila, sent SIGTERM, shuts its kernels down (~1 s); one still running after this is killed
VOILA_STOP_S = 10.0
Handler: TypeAlias = "Callable[[int, FrameType | None], Any] | int | signal.Handlers | None"
NOTEBOOK_NAME = "labkit explorer.ipynb"  # Voila titles the page after it
INTRO = """# labkit explorer

Pick a trace, a strategy, the link to Twilio and a hypothesis about Twilio's playout: the figure,
the metrics and the audio the caller hears follow. Top: a window of the call (ticks sent, dots at
Twilio, green playing; red gaps the carrier conceals, grey padding, yellow the first 200 ms of each
answer). Bottom: the whole call. Lesson 03 (`labkit lab`) explains it step by step."""
CODE = """from labkit.views.explorer_app import Explorer

explorer = Explorer(traces={traces!r}, read_traces_first=False)  # labkit explore read them
explorer.update()
explorer.box"""


def app_notebook(traces: list[str] | None = None) -> dict[str, Any]:
    """The page Voila serves (nbformat 4.5): a title, how to read it, and the explorer, which
    offers ``traces`` (absolute paths of your trace files) after the shipped ones."""
    notebook: dict[str, Any] = {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "cells": [
            {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": INTRO},
            {"cell_type": "code", "id": "explorer", "metadata": {},
             "source": CODE.format(traces=list(traces or [])),
             "execution_count": None, "outputs": []},
        ],
    }  # fmt: skip
    import nbformat  # ~1.3 s (jsonschema): imported here, not by every labkit command

    nbformat.validate(notebook)
    return notebook


def voila_argv(notebook: Path, host: str, port: int, open_browser: bool,
               idle_kernel_s: float = IDLE_KERNEL_S,
               warm_kernels: int = WARM_KERNELS) -> list[str]:  # fmt: skip
    """The command that serves ``notebook`` with Voila; kernels of closed pages are shut down
    after ``idle_kernel_s`` (checked every half of it, at least every second), and
    ``warm_kernels`` kernels wait, the notebook already run, for the next page loads (Voila
    never culls those)."""
    if not (math.isfinite(idle_kernel_s) and idle_kernel_s > 0):
        raise ValueError(f"labkit explore: --idle-kernel-s must be a finite number > 0, "
                         f"got {idle_kernel_s!r}")  # fmt: skip
    if not 0 <= warm_kernels <= MAX_WARM_KERNELS:
        raise ValueError(f"labkit explore: --warm-kernels must be 0..{MAX_WARM_KERNELS}, "
                         f"got {warm_kernels}")  # fmt: skip
    argv = [sys.executable, "-m", "voila", str(notebook), f"--Voila.ip={host}", f"--port={port}",
            "--strip_sources=True", "--theme=light",
            f"--MappingKernelManager.cull_idle_timeout={math.ceil(idle_kernel_s)}",
            f"--MappingKernelManager.cull_interval={max(1, math.ceil(idle_kernel_s / 2))}",
            "--MappingKernelManager.cull_connected=False"]  # fmt: skip
    if warm_kernels:
        argv += ["--preheat_kernel=True", f"--pool_size={warm_kernels}"]
    if not open_browser:
        argv.append("--no-browser")
    return argv


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "explore",
        help="the explorer as a web page (Voila), no notebook needed",
        description="Serve the explorer of lesson 03 as a standalone web page with Voila; "
        "its trace menu offers the shipped traces and yours.",
    )
    parser.add_argument(
        "traces", nargs="*", metavar="TRACE_OR_DIR",
        help="your traces (files, or directories of them: labkit serve --record DIR, labkit "
        "import), offered after the shipped ones; each is read before the server starts",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"default: {DEFAULT_HOST}")
    parser.add_argument("--port", type=port_number, default=DEFAULT_PORT,
                        help=f"default: {DEFAULT_PORT}")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument("--idle-kernel-s", type=float, default=IDLE_KERNEL_S,
                        help="shut down the kernel of a closed or reloaded page after it has "
                        f"idled this long (default: {IDLE_KERNEL_S:g} s; an open page keeps its "
                        "kernel)")  # fmt: skip
    parser.add_argument("--warm-kernels", type=int, default=WARM_KERNELS,
                        help="kernels kept started with the explorer already drawn, each taken "
                        "by the next page load so its figure shows sooner (~2.3 s, not ~5.4; "
                        f"~200 MB each; default: {WARM_KERNELS}; 0: start a kernel per page "
                        "load)")  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:  # from here on a stop signal unwinds: Voila stopped, the temporary directory removed
        with stop_signals_handled(raise_stopped):
            return serve(args)
    except Stopped as stopped:
        print(f"labkit explore: stopped ({signal.Signals(stopped.signum).name})",
              file=sys.stderr)  # fmt: skip
        return 128 + stopped.signum  # as a shell reports a command this signal stopped


def serve(args: argparse.Namespace) -> int:
    from labkit.views.explorer import your_traces

    try:  # a bad trace is named (file, line, field) before any server starts
        yours = [path for _, path in your_traces(args.traces)]
    except (ValueError, OSError) as exc:
        print(f"labkit explore: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="labkit-explore-") as directory:
        notebook = Path(directory) / NOTEBOOK_NAME
        notebook.write_text(json.dumps(app_notebook(yours), indent=1) + "\n", encoding="utf-8")
        try:
            argv = voila_argv(notebook, args.host, args.port, not args.no_browser,
                              args.idle_kernel_s, args.warm_kernels)  # fmt: skip
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
        print(f"labkit explore: starting Voila on {args.host}, port {args.port} or the next free "
              "one (it prints the address below; Ctrl-C stops it)", flush=True)  # fmt: skip
        return serve_until_stopped(argv)


class Stopped(Exception):
    """labkit explore received one of ``STOP_SIGNALS`` (``signum``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


def raise_stopped(signum: int, _frame: FrameType | None) -> None:
    """A signal handler: the ``finally`` blocks and context managers unwinding from ``Stopped``
    run (stop Voila, remove the temporary directory), which the default action of SIGTERM and
    SIGHUP (exit at once) never lets them do."""
    raise Stopped(signum)


@contextlib.contextmanager
def stop_signals_handled(handler: Handler) -> Iterator[None]:
    """Each of ``STOP_SIGNALS`` handled by ``handler`` while the block runs."""
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler_before in previous.items():
            signal.signal(signum, handler_before)


def serve_until_stopped(argv: list[str], stop_s: float = VOILA_STOP_S) -> int:
    """Run Voila (``argv``) in a process group of its own until it exits (its exit code) or
    this process is stopped (``Stopped`` propagates, once Voila is stopped).

    Its own group: a terminal's Ctrl-C reaches labkit alone, which stops Voila the one way
    that also ends its kernels (SIGTERM; Voila then shuts them down), and the group's other
    processes with it."""
    process: subprocess.Popen[bytes] | None = None
    try:  # a signal as Popen returns still stops what it started
        process = subprocess.Popen(argv, process_group=0)
        return process.wait()
    finally:
        if process is not None:
            # a second Ctrl-C must not leave Voila half stopped
            with stop_signals_handled(signal.SIG_IGN):
                stop_group(process, stop_s)


def stop_group(process: subprocess.Popen[bytes], stop_s: float) -> None:
    """SIGTERM to ``process``'s group, then SIGKILL if it has not exited within ``stop_s``."""
    for sent, wait_s in ((signal.SIGTERM, stop_s), (signal.SIGKILL, stop_s)):
        with contextlib.suppress(ProcessLookupError):  # gone: every process of it exited
            os.killpg(process.pid, sent)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait_s)
            return

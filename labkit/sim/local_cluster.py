"""labkit's LocalCluster, in a process session of its own: out of reach of the terminal's Ctrl-C.

A terminal's Ctrl-C goes to every process of the foreground process group. Dask's worker
processes, started by Python's ``spawn``, spend their first seconds importing Dask before
anything can ignore it; a Ctrl-C then made each print a KeyboardInterrupt traceback, and Dask's
own shutdown of a half-started cluster failed an assertion with another. So the sweep's process
starts the cluster in a child of a new session (``local_cluster``): the Ctrl-C reaches only the
sweep, which stops and closes the cluster by closing the child's stdin. The child, run as
``python -m labkit.sim.local_cluster WORKERS``, starts the cluster, prints its scheduler's
address, and closes the cluster when its stdin closes: when the sweep ends, however it ends
(killed too). See labkit/sim/fleet.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

LOCAL_HOST = "127.0.0.1"  # a LocalCluster listens on loopback only
CLOSE_TIMEOUT_S = 15.0  # for the cluster to close itself once told; then it is killed


class ClusterError(RuntimeError):
    """The local cluster did not start."""


@contextlib.contextmanager
def local_cluster(workers: int) -> Iterator[str]:
    """The scheduler address of a new LocalCluster of ``workers`` one-thread processes on
    127.0.0.1, in a session of its own; closed when the block ends (killed if it will not
    close within CLOSE_TIMEOUT_S, or at once if the block ends before it started)."""
    child = subprocess.Popen([sys.executable, "-m", __name__, str(workers)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             start_new_session=True)  # fmt: skip
    assert child.stdin is not None and child.stdout is not None  # both piped above
    started = False
    try:
        address = child.stdout.readline().strip()
        if not address:
            raise ClusterError(f"the local Dask cluster did not start (exit code {child.wait()})")
        started = True
        yield address
    finally:
        _close(child, started)


def _close(child: subprocess.Popen[str], started: bool) -> None:
    """Tell a started cluster to close (its stdin ends) and wait; a cluster still starting, or
    one that does not close in time, is killed with its workers (one process group)."""
    interrupted = False
    if started:
        with contextlib.suppress(OSError):  # a child that died has closed its end already
            child.stdin.close()  # type: ignore[union-attr]  # piped in local_cluster
        try:
            child.wait(CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
        except KeyboardInterrupt:  # Ctrl-C again while it closes: stop waiting, kill it
            interrupted = True
    if child.poll() is None or not started:
        with contextlib.suppress(ProcessLookupError):  # the child and its workers, at once
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    for stream in (child.stdin, child.stdout):
        with contextlib.suppress(OSError):
            stream.close()  # type: ignore[union-attr]  # piped in local_cluster
    if interrupted:
        raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    """Start the cluster, print its address, close it when stdin closes."""
    from distributed import LocalCluster

    from labkit.sim.processes import check_jobs

    try:
        workers = check_jobs("local_cluster", int(argv[0]))  # the sweep's own bound on --jobs
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    # CRITICAL: a cluster closing as its workers end logs their shutdown as errors; what matters
    # reaches the user through the sweep (a killed worker too)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host=LOCAL_HOST,
                      dashboard_address=f"{LOCAL_HOST}:0",
                      silence_logs=logging.CRITICAL) as cluster:  # fmt: skip
        try:
            print(cluster.scheduler_address, flush=True)
        except BrokenPipeError:  # the sweep ended while the cluster started: close it now
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error
            return 0
        sys.stdin.read()  # until EOF: the sweep closed its end, or ended
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Worker processes for sweeps and batches: forked from a fork server, never from the caller.

The caller is often multi-threaded: a Jupyter kernel runs heartbeat and I/O threads, and a test
run or the live server has threads of its own. Forking a multi-threaded process can leave the
child waiting forever on a lock another thread held at the fork (Python 3.12+ warns of it, and
3.14 makes the fork server Linux's default). A fork server is a single-threaded process started
once; every worker forks from it, so every Python version runs sweeps the same way. It imports
the workers' code (labkit's simulator, numpy, pandas) when it starts, so a worker forks with it
loaded: a process's first pool pays that import once, later pools start in ~0.05 s (each worker
imported it anew before, ~0.9 s a pool; benchmarks/README.md).
See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

from labkit.values import is_whole

PYTHON_DEFAULT_PRELOAD = ["__main__"]  # what a fork server imports unless told otherwise
MAX_JOBS = 64  # each worker holds ~100 MB: beyond this, memory runs out long before cores do


def check_jobs(owner: str, jobs: object) -> int:
    """``jobs`` as a count of worker processes, or a ValueError naming ``owner``."""
    count = int(jobs) if is_whole(jobs) else 0
    if not 1 <= count <= MAX_JOBS:
        raise ValueError(f"{owner}: jobs must be a whole number from 1 to {MAX_JOBS}, "
                         f"got {jobs!r}")  # fmt: skip
    return count


def start_method() -> str:
    """``forkserver`` where the platform has it (Linux, macOS), else ``spawn`` (Windows)."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def worker_pool(
    jobs: int, initializer: Callable[..., None], initargs: tuple[Any, ...]
) -> ProcessPoolExecutor:
    """``jobs`` worker processes, each set up by ``initializer(*initargs)`` (sent pickled)."""
    context = multiprocessing.get_context(start_method())
    if context.get_start_method() == "forkserver":
        _preload_in_fork_server(initializer.__module__)
    return ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker,
                               initargs=(initializer, *initargs))  # fmt: skip


def _preload_in_fork_server(module: str) -> None:
    """Have the fork server import ``module`` (the pool's code) when it starts (see the module
    docstring); only while its preload is still Python's default: one the program chose is its
    own. The first pool of a process starts the fork server; later pools reuse it, and their
    workers import any other module themselves."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)  # the process's one fork server
    if getattr(server, "_preload_modules", None) == PYTHON_DEFAULT_PRELOAD:
        forkserver.set_forkserver_preload([*PYTHON_DEFAULT_PRELOAD, module])


@contextmanager
def running_pool(
    jobs: int, initializer: Callable[..., None], initargs: tuple[Any, ...]
) -> Iterator[ProcessPoolExecutor]:
    """``worker_pool`` for a ``with`` block: closed when the block ends, and *ended* when it ends
    early (an error, Ctrl-C, a caller that stops reading): runs not started are dropped and
    running ones stopped, not waited for, since no one will read their results (a chunk of
    sweep runs can take minutes)."""
    pool = worker_pool(jobs, initializer, initargs)
    try:
        yield pool
    except BaseException:
        _end_now(pool)
        raise
    pool.shutdown(wait=True)


def _end_now(pool: ProcessPoolExecutor) -> None:
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    workers = list((pool._processes or {}).values())  # the only handle before 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.join()


def _start_worker(initializer: Callable[..., None], *initargs: Any) -> None:
    # Ctrl-C reaches the whole process group: the caller stops the sweep (its rows are kept);
    # a worker would only print a traceback and die mid-chunk
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    initializer(*initargs)

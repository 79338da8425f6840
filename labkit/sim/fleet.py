"""Fleet sweeps on Dask: a sweep's chunks as Dask tasks, on a LocalCluster or a running cluster.

The runs are those of ``labkit.sim.sweep`` (its chunks, and each row made by its ``_run_row``
through ``TraceRuns``); only where they run changes, so the rows are the same as with ``--jobs``.

What crosses the network:
- each trace once, parsed: this process reads and checks every file (the trace reader, within
  its limits), then, a few traces at a time (``_TraceWindow``), reads each again and scatters the
  ``Trace`` to one worker; Dask copies it to any other worker that runs a chunk of it (worker to
  worker). A worker never opens a path: no shared filesystem.
- per chunk, a small task: the trace's key, its runs (strategy, threshold, link, playout, seed)
  and the options every run shares;
- back, each chunk's rows (one dict of about 30 numbers per run), as chunks finish.

Workers need labkit installed, the same version as here (tasks name labkit's functions; the
check at connection refuses a worker without it). Each worker keeps the last few traces it
prepared (``KeptTraces``) so the chunks of one trace share its preparation and memo.
The simulator is pure Python: run workers with one thread each (``--nthreads 1``), as many as
cores. See README.md ("Fleet sweeps on Dask") and notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import re
import uuid
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from labkit.sim.local_cluster import ClusterError, local_cluster
from labkit.sim.sweep_journal import NUMERIC_LIBRARIES, code_digest
from labkit.sim.sweep_runs import (
    CHUNKS_PER_JOB,
    Chunk,
    KeptTraces,
    Row,
    Run,
    RunKey,
    SweepGrid,
    TraceRuns,
    plan_chunks,
)
from labkit.sim.sweep_traces import TraceSource, checked_sources
from labkit.traces import Trace, TraceLimits

CONNECT_TIMEOUT_S = 5.0  # to reach a scheduler, and for it to have a worker
# traces sent at once per worker thread: its next chunks are on hand as one ends, and the
# cluster holds a few traces per thread, never the whole fleet
TRACES_IN_FLIGHT_PER_THREAD = 2
# tcp://host:8786, tls://host:8786 (with Dask's TLS configuration), host:8786
_ADDRESS = re.compile(r"(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)?(?P<host>[^\s/]+):(?P<port>\d+)")
SCHEMES = ("tcp", "tls")  # what labkit's docs and tests cover; Dask's others need more setup
MAX_PORT = 65535


class FleetError(RuntimeError):
    """The Dask cluster cannot run the sweep (unreachable, no workers, no labkit there)."""


def looks_like_address(text: str) -> bool:
    """Whether ``text`` has an address's shape (``[SCHEME://]HOST:PORT``), right or wrong in its
    details: ``sweep --dask`` before the traces takes the first trace name as its address."""
    return _ADDRESS.fullmatch(text) is not None


def check_address(address: str) -> None:
    """A ValueError unless ``address`` looks like a scheduler's (``tcp://HOST:PORT``)."""
    found = _ADDRESS.fullmatch(address)
    if not found:
        raise ValueError(f"{address!r} is not a Dask scheduler address (tcp://HOST:PORT)")
    if (found["scheme"] or "tcp") not in SCHEMES:
        raise ValueError(f"{address!r}: labkit reaches a Dask scheduler over "
                         f"{' or '.join(f'{scheme}://' for scheme in SCHEMES)}")  # fmt: skip
    if not 1 <= int(found["port"]) <= MAX_PORT:
        raise ValueError(f"{address!r}: a port is 1 to {MAX_PORT}")


@contextmanager
def dask_client(
    address: str | None, workers: int = 1, timeout_s: float = CONNECT_TIMEOUT_S
) -> Iterator[Any]:
    """A ``distributed.Client``: of a LocalCluster of ``workers`` processes on 127.0.0.1 (one
    thread each; every port it opens, HTTP included, on loopback) when ``address`` is None, else
    of the scheduler at ``address``, reached within ``timeout_s`` with a worker and labkit
    there, or FleetError. Never the program's default client: a notebook's own Dask work
    keeps going where it went."""
    from distributed import Client

    if address is None:
        try:
            with local_cluster(workers) as local, Client(local, set_as_default=False) as client:
                yield client
        except ClusterError as exc:
            raise FleetError(str(exc)) from None
        return
    check_address(address)
    try:
        _probe(address, timeout_s)
        client = Client(address, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        reason = str(exc) or "no handshake"
        raise FleetError(f"no Dask scheduler answered at {address} within {timeout_s:g} s "
                         f"({reason})") from None  # fmt: skip
    except Exception as exc:  # a peer that is not a scheduler fails in Dask's own ways
        raise FleetError(f"what answers at {address} is not a Dask scheduler that labkit can use "
                         f"({type(exc).__name__}: {str(exc)[:200]})") from None  # fmt: skip
    with client:
        _check_workers(client, address, timeout_s)
        yield client


def _probe(address: str, timeout_s: float) -> None:
    """Connect to ``address`` and exchange Dask's handshake within ``timeout_s``, or raise.

    A Client waits forever for the handshake of a peer that accepts and never speaks (Dask's
    ``comm.connect`` bounds the TCP connection, not the handshake read that follows): this
    bounds both. In a thread of its own, so it works under a running event loop (Jupyter)."""
    from distributed.comm.core import connect

    async def handshake() -> None:
        comm = await asyncio.wait_for(connect(address, timeout=timeout_s), timeout_s)
        await comm.close()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, handshake()).result()


def _check_workers(client: Any, address: str, timeout_s: float) -> None:
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except (OSError, TimeoutError):
        raise FleetError(f"the Dask scheduler at {address} has no worker after "
                         f"{timeout_s:g} s; start some with `dask worker {address} "
                         f"--nthreads 1`") from None  # fmt: skip
    mine = importlib.metadata.version("labkit")
    found = client.run(importlib.metadata.version, "labkit", on_error="return")
    wrong = {worker: version for worker, version in found.items() if version != mine}
    if wrong:
        listed = "; ".join(f"{worker}: {_version_text(found)}" for worker, found in wrong.items())
        raise FleetError(f"every Dask worker needs labkit {mine} installed ({listed})")
    code = code_digest()  # an edited labkit keeps its version; its rows would differ
    digests = client.run(code_digest, on_error="return")
    other = sorted(worker for worker, digest in digests.items() if digest != code)
    if other:
        raise FleetError(f"every Dask worker needs the same labkit code and versions of "
                         f"{', '.join(NUMERIC_LIBRARIES)} as here ({code[:12]}); "
                         f"{', '.join(other)} run others (reinstall labkit there)")  # fmt: skip


def _version_text(found: object) -> str:
    return f"labkit {found}" if isinstance(found, str) else "no labkit"


def dask_batches(
    client: Any, sources: Sequence[TraceSource], grid: SweepGrid,
    limits: TraceLimits | None = None, done: Collection[RunKey] = (),
) -> Iterator[list[Row]]:  # fmt: skip
    """The rows of every run not in ``done``, a chunk's rows at a time as chunks finish on the
    cluster of ``client``. Every trace with runs left is read here and checked before any run
    starts (a ValueError names each file that cannot be read or swept), then sent once, a few
    traces at a time (``_TraceWindow``): the cluster never holds a whole fleet of calls."""
    from distributed import as_completed

    threads = sum(client.nthreads().values()) or 1
    chunks = plan_chunks([source.name for source in sources], grid, CHUNKS_PER_JOB * threads,
                         done)  # fmt: skip
    if not chunks:
        return
    needed = sorted({chunk.trace_index for chunk in chunks})
    checked = checked_sources([sources[index] for index in needed], limits, grid.check_trace)
    pinned = dict(zip(needed, checked, strict=True))
    window = _TraceWindow(client, pinned, chunks, grid.options(), limits,
                          max(TRACES_IN_FLIGHT_PER_THREAD * threads, 2))  # fmt: skip
    try:
        # its client's own loop: as_completed would take the default client's (the last made),
        # which learns of these futures late (results came in 1 s steps with two clients open)
        completed = as_completed(window.admit(), loop=client.loop)
        for future in completed:
            yield _result(future)
            completed.update(window.finished(future))
    finally:  # also when the caller stops early or a chunk failed
        window.cancel()
    client.run(_forget, window.sweep_id)


class _TraceWindow:
    """The traces of a Dask sweep in flight: at most ``size`` sent at once, each with all its
    chunks submitted; a trace whose chunks are done is released and the next one sent."""

    def __init__(self, client: Any, sources: dict[int, TraceSource], chunks: Sequence[Chunk],
                 options: dict[str, Any], limits: TraceLimits | None, size: int) -> None:
        self.client, self.sources, self.options, self.limits = client, sources, options, limits
        self.size = size
        self.sweep_id = uuid.uuid4().hex
        self._chunks: dict[int, list[tuple[int, Chunk]]] = {}
        for number, chunk in enumerate(chunks):
            self._chunks.setdefault(chunk.trace_index, []).append((number, chunk))
        self._waiting = iter(sorted(self._chunks))
        self._sent: dict[int, Any] = {}  # trace index -> its future on the cluster
        self._running: dict[Any, int] = {}  # chunk future -> its trace index
        self._left: Counter[int] = Counter()  # chunks of each sent trace not done

    def admit(self) -> list[Any]:
        """Send traces until ``size`` are in flight; the futures of their chunks."""
        futures: list[Any] = []
        while len(self._sent) < self.size:
            index = next(self._waiting, None)
            if index is None:
                break
            futures += self._send(index)
        return futures

    def finished(self, future: Any) -> list[Any]:
        """``future``'s chunk is done: release its trace when it was the last, and admit more."""
        index = self._running.pop(future)
        self._left[index] -= 1
        if self._left[index]:
            return []
        self._sent.pop(index).release()  # the workers may drop that trace
        return self.admit()

    def cancel(self) -> None:
        self.client.cancel([*self._running, *self._sent.values()])

    def _send(self, index: int) -> list[Any]:
        source = self.sources[index]
        trace = self._sent[index] = self.client.scatter(source.load(self.limits), hash=False)
        futures = []
        for number, chunk in self._chunks.pop(index):
            future = self.client.submit(_run_on_worker, self.sweep_id, index, source.name, trace,
                                        chunk.runs, self.options, pure=False,
                                        key=f"labkit-sweep-{self.sweep_id}-{number}")  # fmt: skip
            self._running[future] = index
            futures.append(future)
        self._left[index] = len(futures)
        return futures


def _result(future: Any) -> list[Row]:
    """A chunk's rows; a run's own error as it was raised, the cluster's as a FleetError."""
    from concurrent.futures import CancelledError

    from distributed import KilledWorker

    try:
        rows: list[Row] = future.result()
    except ModuleNotFoundError as exc:  # a worker that joined after the check
        raise FleetError(f"a Dask worker cannot run labkit's sweep ({exc}); install labkit on "
                         f"every worker") from None  # fmt: skip
    except KilledWorker as exc:
        raise FleetError(f"a chunk of the sweep ended the workers that ran it ({exc}); out of "
                         f"memory?") from None  # fmt: skip
    except CancelledError as exc:
        raise FleetError(f"the Dask cluster dropped a chunk of the sweep ({exc})") from None
    return rows


_kept = KeptTraces()  # on a worker: the traces it prepared last, by (sweep, trace index)


def _run_on_worker(sweep_id: str, index: int, name: str, trace: Trace, runs: tuple[Run, ...],
                   options: dict[str, Any]) -> list[Row]:  # fmt: skip
    """A Dask task: the rows of ``runs`` on the sweep's ``index``-th trace."""
    state = _kept.get((sweep_id, index), lambda: TraceRuns.of(name, trace))
    return state.rows(runs, options)


def _forget(sweep_id: str) -> int:
    """Run on each worker when a sweep ends: drop its traces; how many there were."""
    return _kept.forget(lambda key: isinstance(key, tuple) and key[0] == sweep_id)

"""The sender alone: a strategy driven over a trace on a virtual clock, its messages as columns.

For strategies whose output never depends on mark echoes (``echo_blind``), what they send and
when is fixed by the trace and the sending loop (labkit/sim/sender_loop.py) alone, so the
simulator runs them here once, without the link, playout and echo machinery, and computes the
rest in bulk (labkit/sim/fastpath.py). The call order is the event loop's
(labkit/sim/simulator.py): calls in the order they fall due (trace events in time order, a poll
at its deadline plus lateness, a trace event first on a tie), each run when the loop gets to it.
See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from labkit.outbound.base import Media, Outbound, OutboundStrategy
from labkit.sim.sender_loop import SenderLoop

if TYPE_CHECKING:
    from labkit.sim.simulator import PreparedTrace

MEDIA, MARK, CLEAR = 0, 1, 2
KIND_NAMES = ("media", "mark", "clear")
MAX_STEPS_PER_EVENT = 200  # guards against a strategy whose deadline never moves forward
AUDIO, DONE = 0, 1  # trace event codes (labkit.sim.simulator.TRACE_EVENT_CODES)


Row = tuple[int, str, int, int, int, int, float, str, bytes]
# columns are lists (the sender's loop) or numpy arrays
IntColumn = list[int] | npt.NDArray[np.int64]
FloatColumn = list[float] | npt.NDArray[np.float64]
TextColumn = list[str] | npt.NDArray[np.object_]


def as_list(column: list[Any] | npt.NDArray[Any]) -> list[Any]:
    """A column as a list of Python numbers and strings (the event loop's types)."""
    return column.tolist() if isinstance(column, np.ndarray) else column


@dataclass
class SentMessages:
    """One row per outbound message in send order; ``payloads`` holds media rows' bytes."""

    kind: IntColumn = field(default_factory=list)
    item_id: TextColumn = field(default_factory=list)
    content_index: IntColumn = field(default_factory=list)
    offset: IntColumn = field(default_factory=list)
    size: IntColumn = field(default_factory=list)
    generation: IntColumn = field(default_factory=list)
    sent_ms: FloatColumn = field(default_factory=list)
    name: TextColumn = field(default_factory=list)
    payloads: Sequence[bytes] = field(default_factory=list)  # b"" for marks and clears

    def __len__(self) -> int:
        return len(self.kind)

    @classmethod
    def from_rows(cls, rows: list[Row]) -> SentMessages:
        """Columns of ``rows`` (one tuple per message: transposed once, not appended per cell)."""
        if not rows:
            return cls()
        kind, item_id, index, offset, size, generation, sent_ms, name, payloads = (
            list(column) for column in zip(*rows, strict=True)
        )
        return cls(kind, item_id, index, offset, size, generation, sent_ms, name, payloads)


def send_all(trace: PreparedTrace, strategy: OutboundStrategy, loop: SenderLoop) -> SentMessages:
    """Run ``strategy`` over ``trace`` on the sending loop ``loop``: each call runs when the loop
    gets to it, each message leaves when the loop has paid for it (``sent_ms``)."""
    rows: list[Row] = []
    record = _recorder(rows, loop)
    times, codes, keys, chunks = trace.times_ms, trace.codes, trace.keys, trace.chunks
    n_events, i = len(times), 0
    # a timer that does any work sends at least one byte, so one per audio byte is a bound
    max_steps = MAX_STEPS_PER_EVENT * (n_events + 10) + trace.audio_bytes
    deadline: float | None = None
    poll_due = math.inf
    inf = math.inf
    poll, push, next_deadline = strategy.poll, strategy.push, strategy.next_deadline
    run_at = None if loop.punctual else loop.run_at
    for _ in range(max_steps):
        t_trace = times[i] if i < n_events else inf
        if poll_due < t_trace:
            t = run_at(poll_due) if run_at else poll_due
            deadline, poll_due = None, inf  # polled: the next deadline gets its own lateness
            outs = poll(t)
        elif t_trace < inf:
            t = run_at(t_trace) if run_at else t_trace
            code, key = codes[i], keys[i]
            if code == AUDIO:
                outs = push(chunks[i], t)
            elif code == DONE:
                outs = strategy.end(key[0], key[1], t)
            else:
                outs = strategy.interrupt(t)
            i += 1
        else:
            strategy.close()
            return SentMessages.from_rows(rows)
        if outs:
            record(outs, t)
        new_deadline = next_deadline()
        if new_deadline != deadline:
            deadline = new_deadline
            poll_due = inf if new_deadline is None else loop.timer_due(new_deadline, t)
    raise RuntimeError(
        f"simulation of strategy {strategy.name!r} did not terminate: its deadline "
        f"({deadline}) keeps firing without moving on"
    )


def _recorder(rows: list[Row], loop: SenderLoop) -> Callable[[list[Outbound], float], None]:
    """A function appending a strategy's output at ``now`` to ``rows``, each message stamped with
    when it leaves the sending loop."""
    add = rows.append
    cost = loop.send_cost_ms

    def record(outs: list[Outbound], now: float) -> None:
        if cost:  # each message leaves once the loop has paid for it (SenderLoop.departures)
            count = sum(1 + len(out.marks) - (not out.payload) if isinstance(out, Media) else 1
                        for out in outs)  # fmt: skip
            leave = iter(loop.departures(now, count))
        for out in outs:
            if isinstance(out, Media):
                payload = out.payload
                if payload:  # a marks-only Media puts no media message on the wire
                    add((MEDIA, out.item_id, out.content_index, out.offset, len(payload),
                         out.generation, next(leave) if cost else now, "", payload))  # fmt: skip
                for mark in out.marks:
                    add((MARK, mark.item_id, mark.content_index, mark.start,
                         mark.end - mark.start, mark.generation, next(leave) if cost else now,
                         mark.name, b""))  # fmt: skip
            else:
                add((CLEAR, "", -1, 0, 0, out.generation, next(leave) if cost else now, "", b""))

    return record

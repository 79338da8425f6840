"""The sender alone: a strategy driven over a trace on a virtual clock, its messages as columns.

For strategies whose output never depends on mark echoes (all but ``adaptive``), what they send
and when is fixed by the trace and the sender's timer lateness alone, so the simulator runs them
here once, without the link, playout and echo machinery, and computes the rest in bulk
(labkit/sim/fastpath.py). The call order is the event loop's (labkit/sim/simulator.py): trace
events in time order, a poll at its deadline plus lateness, a trace event first on a tie.
See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, overload

import numpy as np
import numpy.typing as npt

from labkit.outbound.base import Media, Outbound, OutboundStrategy
from labkit.sim.links import Link
from labkit.sim.paced_plan import PacedPlan, PlanColumns, plannable

if TYPE_CHECKING:
    from labkit.sim.simulator import PreparedTrace

MEDIA, MARK, CLEAR = 0, 1, 2
KIND_NAMES = ("media", "mark", "clear")
MAX_STEPS_PER_EVENT = 200  # guards against a strategy whose deadline never moves forward
AUDIO, DONE = 0, 1  # trace event codes (labkit.sim.simulator.TRACE_EVENT_CODES)


Row = tuple[int, str, int, int, int, int, float, str, bytes]
# columns are lists (the sender's loop) or numpy arrays (paced's plan builds them so)
IntColumn = list[int] | npt.NDArray[np.int64]
FloatColumn = list[float] | npt.NDArray[np.float64]
TextColumn = list[str] | npt.NDArray[np.object_]


def as_list(column: list[Any] | npt.NDArray[Any]) -> list[Any]:
    """A column as a list of Python numbers and strings (the event loop's types)."""
    return column.tolist() if isinstance(column, np.ndarray) else column


class MessageColumns(Protocol):
    """The columns a media row's payload is cut by (lists or numpy arrays)."""

    @property
    def kind(self) -> IntColumn: ...
    @property
    def item_id(self) -> TextColumn: ...
    @property
    def content_index(self) -> IntColumn: ...
    @property
    def offset(self) -> IntColumn: ...
    @property
    def size(self) -> IntColumn: ...


class ItemSlices(Sequence[bytes]):
    """Media rows' payloads as slices of their items' audio, all cut when one is first read:
    only the played audio needs them (metrics and sweeps never read one), and cutting the
    ~4900 frames of the longest shipped trace takes ~0.8 ms. Marks and clears have b""."""

    def __init__(self, columns: MessageColumns, item_audio: dict[tuple[str, int], bytes]
                 ) -> None:  # fmt: skip
        self._columns = columns
        self._item_audio = item_audio
        self._cut: list[bytes] | None = None

    def _payloads(self) -> list[bytes]:
        if self._cut is None:
            c, audio = self._columns, self._item_audio
            self._cut = [
                audio[(item_id, index)][offset : offset + size] if kind == MEDIA else b""
                for kind, item_id, index, offset, size in zip(
                    as_list(c.kind), as_list(c.item_id), as_list(c.content_index),
                    as_list(c.offset), as_list(c.size), strict=True,
                )
            ]  # fmt: skip
        return self._cut

    def __len__(self) -> int:
        return len(self._columns.kind)

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        return self._payloads()[index]


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
    arrived_ms: FloatColumn = field(default_factory=list)  # filled when drawn as sent

    def __len__(self) -> int:
        return len(self.kind)

    @classmethod
    def from_rows(cls, rows: list[Row], arrived_ms: list[float]) -> SentMessages:
        """Columns of ``rows`` (one tuple per message: transposed once, not appended per cell)."""
        if not rows:
            return cls(arrived_ms=arrived_ms)
        kind, item_id, index, offset, size, generation, sent_ms, name, payloads = (
            list(column) for column in zip(*rows, strict=True)
        )
        return cls(kind, item_id, index, offset, size, generation, sent_ms, name, payloads,
                   arrived_ms)  # fmt: skip

    @classmethod
    def from_plan(cls, columns: PlanColumns, item_audio: dict[tuple[str, int], bytes]
                  ) -> SentMessages:  # fmt: skip
        """The plan's columns as they are (numpy arrays), payloads cut from ``item_audio``."""
        return cls(columns.kind, columns.item_id, columns.content_index, columns.offset,
                   columns.size, columns.generation, columns.sent_ms, columns.name,
                   ItemSlices(columns, item_audio))  # fmt: skip


def send_all(
    trace: PreparedTrace, strategy: OutboundStrategy, link: Link, online: bool
) -> SentMessages:
    """Run ``strategy`` over ``trace``; with ``online`` each message also goes over ``link`` as
    it is sent (needed when the link's random stream is shared with the timer lateness).
    A fresh ``paced`` on time (not ``online``) is computed by its flat plan: the same rows."""
    if not online and plannable(strategy):
        columns = PacedPlan(strategy).run(trace)  # type: ignore[arg-type]
        return SentMessages.from_plan(columns, trace.item_audio)
    rows: list[Row] = []
    arrived: list[float] = []
    record = _recorder(rows, arrived, link if online else None)
    times, codes, keys, chunks = trace.times_ms, trace.codes, trace.keys, trace.chunks
    n_events, i = len(times), 0
    # a timer that does any work sends at least one byte, so one per audio byte is a bound
    max_steps = MAX_STEPS_PER_EVENT * (n_events + 10) + trace.audio_bytes
    deadline: float | None = None
    poll_at = math.inf
    inf = math.inf
    poll, push, next_deadline = strategy.poll, strategy.push, strategy.next_deadline
    lateness = link.lateness
    for _ in range(max_steps):
        t_trace = times[i] if i < n_events else inf
        if poll_at < t_trace:
            t = poll_at
            deadline, poll_at = None, inf  # polled: the next deadline gets its own lateness
            outs = poll(t)
        elif t_trace < inf:
            t, code, key = t_trace, codes[i], keys[i]
            if code == AUDIO:
                outs = push(chunks[i], t)
            elif code == DONE:
                outs = strategy.end(key[0], key[1], t)
            else:
                outs = strategy.interrupt(t)
            i += 1
        else:
            strategy.close()
            return SentMessages.from_rows(rows, arrived)
        if outs:
            record(outs, t)
        new_deadline = next_deadline()
        if new_deadline != deadline:
            deadline = new_deadline
            poll_at = inf if new_deadline is None else max(new_deadline + lateness(), t)
    raise RuntimeError(
        f"simulation of strategy {strategy.name!r} did not terminate: its deadline "
        f"({deadline}) keeps firing without moving on"
    )


def _recorder(
    rows: list[Row], arrived: list[float], link: Link | None
) -> Callable[[list[Outbound], float], None]:
    """A function appending a strategy's output at ``now`` to ``rows`` (and, when ``link`` is
    given, each message's arrival to ``arrived``, drawn as it is sent)."""
    add = rows.append

    def record(outs: list[Outbound], now: float) -> None:
        for out in outs:
            if isinstance(out, Media):
                payload = out.payload
                if payload:  # a marks-only Media puts no media message on the wire
                    add((MEDIA, out.item_id, out.content_index, out.offset, len(payload),
                         out.generation, now, "", payload))  # fmt: skip
                for mark in out.marks:
                    add((MARK, mark.item_id, mark.content_index, mark.start,
                         mark.end - mark.start, mark.generation, now, mark.name, b""))  # fmt: skip
            else:
                add((CLEAR, "", -1, 0, 0, out.generation, now, "", b""))

    if link is None:
        return record
    send, arrive = link.send, arrived.append

    def record_online(outs: list[Outbound], now: float) -> None:
        before = len(rows)
        record(outs, now)
        for _ in range(len(rows) - before):
            arrive(send(now))

    return record_online

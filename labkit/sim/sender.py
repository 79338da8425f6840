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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from labkit.outbound.base import AudioChunk, Media, Outbound, OutboundStrategy
from labkit.sim.links import Link

if TYPE_CHECKING:
    from labkit.sim.simulator import PreparedTrace

MEDIA, MARK, CLEAR = 0, 1, 2
KIND_NAMES = ("media", "mark", "clear")
MAX_STEPS_PER_EVENT = 200  # guards against a strategy whose deadline never moves forward
AUDIO, DONE = 0, 1  # trace event codes (labkit.sim.simulator.TRACE_EVENT_CODES)


@dataclass
class SentMessages:
    """One row per outbound message in send order; ``payloads`` holds media rows' bytes."""

    kind: list[int] = field(default_factory=list)
    item_id: list[str] = field(default_factory=list)
    content_index: list[int] = field(default_factory=list)
    offset: list[int] = field(default_factory=list)
    size: list[int] = field(default_factory=list)
    generation: list[int] = field(default_factory=list)
    sent_ms: list[float] = field(default_factory=list)
    name: list[str] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)  # b"" for marks and clears
    arrived_ms: list[float] = field(default_factory=list)  # filled only when sent online

    def __len__(self) -> int:
        return len(self.kind)


def send_all(
    trace: PreparedTrace, strategy: OutboundStrategy, link: Link, online: bool
) -> SentMessages:
    """Run ``strategy`` over ``trace``; with ``online`` each message also goes over ``link`` as
    it is sent (needed when the link's random stream is shared with the timer lateness)."""
    sent = SentMessages()
    record = _recorder(sent, link if online else None)
    times, codes, keys, payloads = trace.times_ms, trace.codes, trace.keys, trace.payloads
    n_events, i = len(times), 0
    max_steps = MAX_STEPS_PER_EVENT * (n_events + 10) + 10 * n_events
    deadline: float | None = None
    poll_at = math.inf
    inf = math.inf
    for _ in range(max_steps):
        t_trace = times[i] if i < n_events else inf
        if poll_at < t_trace:
            t = poll_at
            deadline, poll_at = None, inf  # polled: the next deadline gets its own lateness
            record(strategy.poll(t), t)
        elif t_trace < inf:
            t, code, key = t_trace, codes[i], keys[i]
            if code == AUDIO:
                record(strategy.push(AudioChunk(key[0], key[1], payloads[i]), t), t)
            elif code == DONE:
                record(strategy.end(key[0], key[1], t), t)
            else:
                record(strategy.interrupt(t), t)
            i += 1
        else:
            strategy.close()
            return sent
        new_deadline = strategy.next_deadline()
        if new_deadline != deadline:
            deadline = new_deadline
            poll_at = inf if new_deadline is None else max(new_deadline + link.lateness(), t)
    raise RuntimeError(
        f"simulation of strategy {strategy.name!r} did not terminate: its deadline "
        f"({deadline}) keeps firing without moving on"
    )


def _recorder(sent: SentMessages, link: Link | None) -> Callable[[list[Outbound], float], None]:
    """A function appending a strategy's output at ``now`` to ``sent`` (bound methods hoisted:
    this runs once per message)."""
    kind, item_id, content_index = sent.kind.append, sent.item_id.append, sent.content_index.append
    offset, size, generation = sent.offset.append, sent.size.append, sent.generation.append
    sent_ms, name, payloads = sent.sent_ms.append, sent.name.append, sent.payloads.append
    arrived = sent.arrived_ms.append
    send = link.send if link is not None else None

    def row(k: int, item: str, index: int, at: int, n: int, gen: int, now: float, label: str,
            payload: bytes) -> None:  # fmt: skip
        kind(k)
        item_id(item)
        content_index(index)
        offset(at)
        size(n)
        generation(gen)
        sent_ms(now)
        name(label)
        payloads(payload)
        if send is not None:
            arrived(send(now))

    def record(outs: list[Outbound], now: float) -> None:
        for out in outs:
            if isinstance(out, Media):
                payload = out.payload
                if payload:  # a marks-only Media puts no media message on the wire
                    row(MEDIA, out.item_id, out.content_index, out.offset, len(payload),
                        out.generation, now, "", payload)  # fmt: skip
                for mark in out.marks:
                    row(MARK, mark.item_id, mark.content_index, mark.start, mark.end - mark.start,
                        mark.generation, now, mark.name, b"")  # fmt: skip
            else:
                row(CLEAR, "", -1, 0, 0, out.generation, now, "", b"")

    return record

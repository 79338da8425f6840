"""The simulator's fast path for strategies that never react to mark echoes.

``forward``, ``rechunk``, ``paced`` and ``preroll`` send the same messages at the same times
whatever Twilio echoes, so the run splits into stages, each done once and in bulk:

1. the sender alone on the virtual clock (labkit/sim/sender.py), timer lateness included;
2. link arrivals for all messages at once (``Link.arrivals_ms``, the same random draws);
3. playout of the whole schedule (labkit/sim/batch_playout.py), giving the mark echo times;
4. echo arrivals over the return link, and which echoes the mark ledger credits: with
   ``honor_generations`` an echo of generation g counts only if it reaches the app before the
   g-th interrupt (see ``_cleared_first``).

The numbers are the event loop's, bit for bit (tests/test_sim_fastpath.py checks it).
``adaptive`` learns from echoes, so it keeps the event loop (labkit/sim/simulator.py).
See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from labkit.marks import TWILIO_BUFFER_LIMIT_MS, MarkLedger
from labkit.outbound.base import BYTES_PER_MS, OutboundStrategy
from labkit.sim.batch_playout import PlayOutcome, play_fifo, replay
from labkit.sim.links import Link
from labkit.sim.playout import FifoPlayout, Segment
from labkit.sim.sender import KIND_NAMES, SentMessages, send_all

if TYPE_CHECKING:
    from labkit.sim.simulator import PreparedTrace

ECHO_BLIND_STRATEGIES = ("forward", "rechunk", "paced", "preroll")


def _echo_blind_classes() -> tuple[type[Any], ...]:
    from labkit.outbound import strategy_class

    return tuple(strategy_class(name) for name in ECHO_BLIND_STRATEGIES)


def applies(trace: PreparedTrace, strategy: OutboundStrategy) -> bool:
    """True when ``strategy`` is one of the echo-blind ones (exactly, not a subclass), fresh,
    and its ledger cannot evict marks (fewer trace bytes than its cap): echoes only credit."""
    ledger = getattr(strategy, "ledger", None)
    cap_bytes = TWILIO_BUFFER_LIMIT_MS * BYTES_PER_MS
    return (
        type(strategy) in _echo_blind_classes()
        and isinstance(ledger, MarkLedger)
        and trace.audio_bytes <= cap_bytes
        and ledger.pending_bytes == 0
        and ledger.generation == 0
        and getattr(ledger, "_max_pending_bytes", None) == cap_bytes
    )


def run(
    trace: PreparedTrace, strategy: OutboundStrategy, fwd: Link, back: Link, model: FifoPlayout
) -> tuple[dict[str, list[Any]], list[Segment], npt.NDArray[np.int64]]:
    """Schedule columns (SCHEDULE_COLUMNS), played segments and kind codes of one run."""
    sent = send_all(trace, strategy, fwd, online=fwd.lateness_ms > 0)
    arrived = sent.arrived_ms if fwd.lateness_ms > 0 else fwd.arrivals_ms(sent.sent_ms).tolist()
    if type(model) is FifoPlayout:
        play = play_fifo(
            sent.kind, sent.size, sent.sent_ms, arrived, sent.payloads, model.pad_to_frame
        )
    else:
        play = _replay(trace, sent, arrived, model)
    columns = _columns(sent, arrived, play)
    _add_echoes(columns, play, back, trace.interrupts_ms, _honors_generations(strategy))
    return columns, play.segments, np.array(sent.kind, dtype=np.int64)


def _honors_generations(strategy: OutboundStrategy) -> bool:
    ledger = strategy.ledger
    assert isinstance(ledger, MarkLedger)
    return ledger.honor_generations


def _replay(trace: PreparedTrace, sent: SentMessages, arrived: list[float],
            model: FifoPlayout) -> PlayOutcome:  # fmt: skip
    items: list[Hashable] = []
    last: list[bool] = []
    for item_id, index, gen, offset, size in zip(
        sent.item_id, sent.content_index, sent.generation, sent.offset, sent.size, strict=True
    ):
        items.append((item_id, index, gen))
        last.append(offset + size == trace.item_bytes.get((item_id, index), -1))
    return replay(
        model, sent.kind, sent.size, sent.sent_ms, arrived, sent.payloads, sent.name, items, last
    )


def _columns(sent: SentMessages, arrived: list[float], play: PlayOutcome) -> dict[str, list[Any]]:
    n = len(sent)
    start, end = [math.nan] * n, [math.nan] * n
    for row, (begin, played) in enumerate(zip(play.start_ms, play.played_bytes, strict=True)):
        if played:
            start[row], end[row] = begin, begin + played / BYTES_PER_MS
    names = KIND_NAMES
    return {
        "kind": [names[k] for k in sent.kind],
        "item_id": sent.item_id,
        "content_index": sent.content_index,
        "offset": sent.offset,
        "size": sent.size,
        "generation": sent.generation,
        "sent_ms": sent.sent_ms,
        "arrived_ms": arrived,
        "name": sent.name,
        "play_start_ms": start,
        "play_end_ms": end,
        "played_bytes": play.played_bytes,
        "cleared_bytes": play.cleared_bytes,
        "discarded_bytes": play.discarded_bytes,
    }


def _add_echoes(columns: dict[str, list[Any]], play: PlayOutcome, back: Link,
                interrupts_ms: list[float], honor_generations: bool) -> None:  # fmt: skip
    n = len(columns["kind"])
    echo, received, credited = [math.nan] * n, [math.nan] * n, [0] * n
    times = [t for _, t, _ in play.echoes]
    arrivals = back.arrivals_ms(times).tolist()
    sizes, generations = columns["size"], columns["generation"]
    credited_once: set[int] = set()
    for (row, echo_ms, by_clear), got_ms in zip(play.echoes, arrivals, strict=True):
        echo[row], received[row] = echo_ms, got_ms
        if row in credited_once:
            continue  # the ledger credits a mark once
        if honor_generations and _cleared_first(generations[row], got_ms, by_clear,
                                                interrupts_ms):  # fmt: skip
            continue
        credited[row] = sizes[row]
        credited_once.add(row)
    columns.update(echo_ms=echo, echo_received_ms=received, credited_bytes=credited)


def _cleared_first(generation: int, received_ms: float, by_clear: bool,
                   interrupts_ms: list[float]) -> bool:  # fmt: skip
    """Whether the ledger forgot the mark (its generation's interrupt) before its echo came.

    The event loop hands an echo to the strategy before a trace event of the same instant,
    unless the echo was caused by that very interrupt's clear.
    """
    if generation >= len(interrupts_ms):
        return False
    return by_clear or interrupts_ms[generation] < received_ms

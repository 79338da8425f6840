"""The sans-I/O contract every outbound strategy implements.

A strategy sits between the model's audio deltas and the Twilio WebSocket. It never sleeps,
never reads a clock and never touches a socket: every call takes ``now`` (ms, any monotonic
origin) and returns the messages to send at that instant. The live handler drives it with the
asyncio clock; the simulator drives it with a virtual clock.
See notebooks/01_why_tiny_packets_jitter.ipynb.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol, runtime_checkable

BYTES_PER_MS = 8  # mu-law, 8000 samples/s, 1 byte per sample
FRAME_MS = 20
FRAME_BYTES = FRAME_MS * BYTES_PER_MS


# Immutable records as NamedTuples: built in C (tuple.__new__), about half the cost of a frozen
# dataclass, whose generated __init__ writes each field through object.__setattr__. Strategies
# make one Media per 20 ms frame and one Mark per mark, so construction is on the hot path.


class AudioChunk(NamedTuple):
    """One model audio delta: mu-law bytes of one content part of one item."""

    item_id: str
    content_index: int
    data: bytes


class Mark(NamedTuple):
    """A Twilio mark naming the bytes ``[start, end)`` of one item sent since its previous mark."""

    name: str
    item_id: str
    content_index: int
    start: int
    end: int
    generation: int
    sent_ms: float
    first_sent_ms: float = math.nan  # when its first byte went out (sent_ms unless spread out)

    @property
    def size(self) -> int:
        return self.end - self.start


class Media(NamedTuple):
    """One outbound ``media`` message, followed on the wire by the ``marks`` that ride after it.

    An empty ``payload`` means *marks only*: send just the marks, no ``media`` message. Strategies
    emit it when an item ends after all its audio already went out (e.g. ``forward``), so the
    item's final mark can still follow its last byte.
    """

    payload: bytes
    item_id: str
    content_index: int
    offset: int  # byte offset of payload[0] within its item
    generation: int
    marks: tuple[Mark, ...] = ()

    @property
    def is_marks_only(self) -> bool:
        return not self.payload

    @property
    def end(self) -> int:
        """Byte offset just past the payload within its item."""
        return self.offset + len(self.payload)


class Clear(NamedTuple):
    """An outbound ``clear``: Twilio drops its queue and echoes every pending mark."""

    generation: int  # the generation being cleared


Outbound = Media | Clear


class LedgerView(Protocol):
    """The mark bookkeeping a strategy exposes as ``strategy.ledger`` (labkit.marks.MarkLedger)."""

    @property
    def pending_count(self) -> int: ...

    @property
    def credited_bytes(self) -> int: ...

    @property
    def generation(self) -> int: ...


@runtime_checkable
class OutboundStrategy(Protocol):
    """What the simulator and the live handler call.

    ``threshold_ms`` means what each strategy documents.

    Optional: a class attribute ``echo_blind = True`` says that what the strategy sends never
    depends on echoes; the simulator may then compute the world after the sender in bulk
    (labkit/sim/fastpath.py). Without it the event loop drives the strategy, which is always
    right.
    """

    name: str
    threshold_ms: float

    @property
    def ledger(self) -> LedgerView:
        """Mark bookkeeping: pending marks, bytes credited by echoes, the current generation."""
        ...

    def push(self, chunk: AudioChunk, now: float) -> list[Outbound]:
        """A model audio delta arrived."""
        ...

    def poll(self, now: float) -> list[Outbound]:
        """Timers: call at (or after) ``next_deadline()``."""
        ...

    def next_deadline(self) -> float | None:
        """When ``poll`` must next be called, or None if nothing is pending."""
        ...

    def end(self, item_id: str, content_index: int, now: float) -> list[Outbound]:
        """audio_done: flush that item's tail (with its final mark). Never emits Clear."""
        ...

    def interrupt(self, now: float) -> list[Outbound]:
        """Barge-in: drop everything buffered (never flush first), emit Clear, new generation."""
        ...

    def echo(self, name: str, now: float) -> Mark | None:
        """Twilio echoed mark ``name``. Returns the mark whose bytes to credit, once; None for
        unknown, duplicate or cleared (older generation) marks."""
        ...

    def close(self) -> None:
        """The call ended: forget everything (the ledger holds nothing afterwards)."""
        ...

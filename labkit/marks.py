"""The mark ledger: which bytes each Twilio mark names, and crediting each echo once.

Twilio echoes a mark when the audio sent before it has finished playing, and echoes *every*
pending mark at once on ``clear``. So an echo only means "played" for marks of the current
generation; marks of cleared audio must never be credited to the playback tracker (the SDK
example's bug: the model then truncates the item at words the caller never heard).
See notebooks/05_barge_in_and_marks.ipynb.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from labkit.outbound.base import BYTES_PER_MS, Clear, Mark, Media, Outbound

ItemKey = tuple[str, int]

DEFAULT_MARK_EVERY_MS = 100.0
TWILIO_BUFFER_LIMIT_MS = 10 * 60 * 1000  # Twilio discards media beyond 10 minutes buffered (31931)
# A cap on pending marks by count too: a mark per 1-byte delta keeps ~250 B of bookkeeping per
# byte of audio; one mark per 5 ms of Twilio's 10 minutes is far beyond any real cadence.
MAX_PENDING_MARKS = TWILIO_BUFFER_LIMIT_MS // 5


@dataclass(slots=True)
class ItemProgress:
    """Within the current generation: bytes of one item sent, and how far marks cover them."""

    marked_to: int
    sent_to: int
    unmarked_since_ms: float = math.nan  # when the first byte past ``marked_to`` went out


class MarkLedger:
    """Attaches marks to outgoing media at a cadence and credits their echoes once.

    Cadence: a mark after every media message (``mark_every_ms=None``) or once at least
    ``mark_every_ms`` of unmarked audio went out (default 100 ms), and always at the end of an
    item. Each mark names exactly the bytes of its item sent since that item's previous mark.

    ``clear()`` bumps the generation; with ``honor_generations`` (default) the pending marks of
    the cleared generation are forgotten, so their echoes (Twilio echoes them all on clear) are
    never credited. ``honor_generations=False`` reproduces the SDK example's bug.

    Bounded: at most ``max_pending_ms`` of audio worth of pending marks (Twilio's own 10 minute
    buffer limit), and at most ``MAX_PENDING_MARKS`` of them; beyond either the oldest are
    dropped and counted in ``dropped_marks``.
    """

    def __init__(
        self,
        mark_every_ms: float | None = DEFAULT_MARK_EVERY_MS,
        *,
        honor_generations: bool = True,
        max_pending_ms: float = TWILIO_BUFFER_LIMIT_MS,
    ) -> None:
        if mark_every_ms is not None and not (math.isfinite(mark_every_ms) and mark_every_ms > 0):
            raise ValueError(
                f"MarkLedger: mark_every_ms must be > 0 or None, got {mark_every_ms!r}"
            )
        if not (math.isfinite(max_pending_ms) and max_pending_ms > 0):
            raise ValueError(f"MarkLedger: max_pending_ms must be > 0, got {max_pending_ms!r}")
        self.mark_every_ms = mark_every_ms
        self.honor_generations = honor_generations
        self._mark_every_bytes = None if mark_every_ms is None else mark_every_ms * BYTES_PER_MS
        self._max_pending_bytes = max_pending_ms * BYTES_PER_MS
        self._pending: dict[str, Mark] = {}  # in the order sent (dicts keep insertion order)
        self._pending_bytes = 0
        self._progress: dict[ItemKey, ItemProgress] = {}
        self._seq = 0
        self._generation = 0
        self._credited_bytes = 0
        self.dropped_marks = 0  # evicted by the cap, never credited
        self.cleared_marks = 0  # forgotten on clear (honor_generations)

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def max_pending_bytes(self) -> float:
        """The cap on pending marks' bytes, beyond which the oldest are evicted."""
        return self._max_pending_bytes

    @property
    def credited_bytes(self) -> int:
        return self._credited_bytes

    def media(
        self,
        item_id: str,
        content_index: int,
        offset: int,
        payload: bytes,
        now: float,
        *,
        final: bool = False,
    ) -> Media:
        """Record ``payload`` (item bytes from ``offset``) going out now; attach a mark if due.

        ``final`` marks the item's last bytes: the mark is then always attached.
        """
        key = (item_id, content_index)
        progress = self._progress.get(key)
        if progress is None:
            progress = self._progress[key] = ItemProgress(marked_to=offset, sent_to=offset)
        elif offset != progress.sent_to:
            raise ValueError(
                f"MarkLedger.media: item {item_id!r}/{content_index} sent from byte {offset}, "
                f"but its bytes so far end at {progress.sent_to} (media must be contiguous)"
            )
        if progress.sent_to == progress.marked_to:  # the first byte the next mark will name
            progress.unmarked_since_ms = now
        sent_to = progress.sent_to = offset + len(payload)
        # Is a mark due? (inline: this runs once per media message)
        every_bytes = self._mark_every_bytes
        if every_bytes is None:
            due = sent_to > progress.marked_to
        else:
            due = sent_to - progress.marked_to >= every_bytes
        if not (final or due):
            return Media(payload, item_id, content_index, offset, self._generation)
        marks = (self._new_mark(key, progress, now),)
        if final:
            del self._progress[key]
        return Media(payload, item_id, content_index, offset, self._generation, marks)

    def finish(self, item_id: str, content_index: int, now: float) -> list[Outbound]:
        """The item ended after its last byte already went out: a marks-only message if any
        of its bytes are still unmarked, else nothing."""
        progress = self._progress.pop((item_id, content_index), None)
        if progress is None or progress.sent_to == progress.marked_to:
            return []
        mark = self._new_mark((item_id, content_index), progress, now)
        return [Media(b"", item_id, content_index, progress.sent_to, self._generation, (mark,))]

    def clear(self, now: float) -> Clear:
        """Barge-in: a ``clear`` for the current generation; the next media starts a new one."""
        cleared = Clear(self._generation)
        self._generation += 1
        self._progress.clear()
        if self.honor_generations:
            self.cleared_marks += len(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
        return cleared

    def echo(self, name: str, now: float) -> Mark | None:
        """Twilio echoed ``name``: the mark to credit, once.

        None for an unknown, repeated or cleared (older generation) mark.
        """
        mark = self._pending.pop(name, None)
        if mark is None:
            return None
        self._pending_bytes -= mark.size
        self._credited_bytes += mark.size
        return mark

    def close(self) -> None:
        """The call ended: forget every pending mark and item."""
        self._pending.clear()
        self._pending_bytes = 0
        self._progress.clear()

    def _new_mark(self, key: ItemKey, progress: ItemProgress, now: float) -> Mark:
        self._seq = seq = self._seq + 1
        generation = self._generation
        name = f"m{seq}.g{generation}"  # the call's seq-th mark, sent in this generation
        start, end = progress.marked_to, progress.sent_to
        mark = Mark(name, key[0], key[1], start, end, generation, now,
                    progress.unmarked_since_ms)
        progress.marked_to = end
        self._pending[name] = mark
        self._pending_bytes += end - start
        if self._pending_bytes > self._max_pending_bytes or len(self._pending) > MAX_PENDING_MARKS:
            self._evict_beyond_cap()
        return mark

    def _evict_beyond_cap(self) -> None:
        # A peer that never echoes must not grow the ledger without limit.
        while len(self._pending) > 1 and (self._pending_bytes > self._max_pending_bytes
                                          or len(self._pending) > MAX_PENDING_MARKS):
            oldest = self._pending.pop(next(iter(self._pending)))
            self._pending_bytes -= oldest.size
            self.dropped_marks += 1

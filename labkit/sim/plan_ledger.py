"""``MarkLedger``'s cadence with plain numbers, for the plans that replay a strategy's sending.

Per item: how many bytes went out and how far marks cover them (``ItemProgress``); a mark is
due after every message without a cadence, else once ``mark_every_ms`` of unmarked audio went
out, and always after an item's last bytes. The plans (labkit/sim/paced_plan.py,
labkit/sim/adaptive_plan.py) write the marks themselves, in their own row formats; names and
numbers are the ledger's (labkit/marks.py), which their tests check row by row.
"""

from __future__ import annotations

from labkit.marks import ItemProgress, MarkLedger
from labkit.outbound.base import BYTES_PER_MS

ItemKey = tuple[str, int]


class PlanLedger:
    """Which messages a ``MarkLedger`` would follow with a mark."""

    def __init__(self, ledger: MarkLedger) -> None:
        every_ms = ledger.mark_every_ms
        self.every_bytes = None if every_ms is None else every_ms * BYTES_PER_MS
        self.progress: dict[ItemKey, ItemProgress] = {}

    def sent(self, key: ItemKey, offset: int, size: int, final: bool) -> ItemProgress | None:
        """Bytes ``[offset, offset + size)`` of item ``key`` went out (``final``: its last):
        the item's progress when a mark is due now (MarkLedger.media), else None."""
        progress = self.progress.get(key)
        if progress is None:
            progress = self.progress[key] = ItemProgress(offset, offset)
        sent_to = progress.sent_to = offset + size
        every_bytes = self.every_bytes
        if final:
            del self.progress[key]
            return progress
        if every_bytes is None:
            return progress if sent_to > progress.marked_to else None
        return progress if sent_to - progress.marked_to >= every_bytes else None

    def finish(self, key: ItemKey) -> ItemProgress | None:
        """Item ``key`` ended after its last byte went out: its progress when some of its bytes
        are still unmarked (MarkLedger.finish sends a mark then), else None."""
        progress = self.progress.pop(key, None)
        if progress is None or progress.sent_to == progress.marked_to:
            return None
        return progress

"""A whole trace in memory, with the per-item views the simulator reads in its hot loops.

See notebooks/00_traces.ipynb. Treat a Trace as immutable: its views are computed once and cached.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import InitVar, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from labkit.audio import BYTES_PER_MS, Audio
from labkit.traces.event import ItemKey, TraceEvent
from labkit.traces.validation import check_events

IN_MEMORY = "trace built in memory (events[0] is line 2)"  # where its errors are: no file


@dataclass(frozen=True)
class ItemAudio:
    """The audio events of one item, as arrays: arrival time, size and media offset of each."""

    arrivals_ms: npt.NDArray[np.float64]
    sizes: npt.NDArray[np.int64]
    offsets_ms: npt.NDArray[np.float64]
    audio: bytes


@dataclass(frozen=True)
class Trace:
    """What a Realtime session delivered: a header and the events in arrival order.

    ``cut`` is None for a whole file; after ``read(path, salvage=True)`` of a file cut short it
    says where the cut was, and the trace holds only the events before it.
    """

    header: dict[str, Any]
    events: list[TraceEvent]
    cut: str | None = field(default=None, compare=False)
    # the reader passes True: it checked each line by the same rules as it read it
    checked: InitVar[bool] = False

    def __post_init__(self, checked: bool) -> None:
        # A trace built in memory (retimed, synthesised, by a user) meets the rules a file
        # meets: a NaN or decreasing time would otherwise hang or silently skew a simulation.
        if not isinstance(self.events, list):
            raise TypeError(f"Trace: events must be a list of TraceEvent, "
                            f"got {type(self.events).__name__}")  # fmt: skip
        if not checked:
            check_events(self.events, IN_MEMORY)

    @property
    def description(self) -> str:
        return str(self.header.get("description", ""))

    @property
    def source(self) -> str | None:
        value = self.header.get("source")
        return value if isinstance(value, str) else None

    @property
    def is_synthetic(self) -> bool:
        return self.source == "synthetic"

    @property
    def duration_ms(self) -> float:
        """Arrival time of the last event (0 for a trace without events)."""
        return self.events[-1].t_ms if self.events else 0.0

    @cached_property
    def audio_ms(self) -> float:
        """Media duration of all audio in the trace."""
        return sum(len(event.audio) for event in self.audio_events()) / BYTES_PER_MS

    def audio_events(self) -> Iterator[TraceEvent]:
        return (event for event in self.events if event.type == "audio")

    @cached_property
    def _by_item(self) -> dict[ItemKey, ItemAudio]:
        grouped: dict[ItemKey, list[TraceEvent]] = {}
        for event in self.audio_events():
            key = event.key
            if key is not None:
                grouped.setdefault(key, []).append(event)
        return {key: _item_audio(events) for key, events in grouped.items()}

    @property
    def items(self) -> list[ItemKey]:
        """Items with audio, in the order of their first audio event."""
        return list(self._by_item)

    def _item(self, key: ItemKey) -> ItemAudio:
        try:
            return self._by_item[(key[0], key[1])]
        except KeyError:
            raise KeyError(f"no audio for item {key!r}; items with audio: {self.items}") from None

    def arrivals_ms(self, key: ItemKey) -> npt.NDArray[np.float64]:
        return self._item(key).arrivals_ms

    def sizes(self, key: ItemKey) -> npt.NDArray[np.int64]:
        return self._item(key).sizes

    def offsets_ms(self, key: ItemKey) -> npt.NDArray[np.float64]:
        """Media time of each audio event's first byte: its byte offset in the item / 8."""
        return self._item(key).offsets_ms

    def item_audio(self, key: ItemKey) -> bytes:
        return self._item(key).audio

    @cached_property
    def interrupted_items(self) -> set[ItemKey]:
        return {
            key
            for event in self.events
            if event.type == "audio_interrupted" and (key := event.key) is not None
        }

    @cached_property
    def done_items(self) -> set[ItemKey]:
        return {
            key
            for event in self.events
            if event.type == "audio_done" and (key := event.key) is not None
        }

    def render(self, key: ItemKey | None = None) -> Audio:
        """The item's audio, or all the trace's audio back to back (no gaps), to listen to."""
        if key is not None:
            return Audio.from_ulaw(self.item_audio(key))
        return Audio.from_ulaw(b"".join(event.audio for event in self.audio_events()))

    def __repr__(self) -> str:
        cut = f", cut at {self.cut}" if self.cut else ""
        return (
            f"Trace({self.source}, {len(self.events)} events, {len(self.items)} items, "
            f"{self.audio_ms:.0f} ms audio over {self.duration_ms:.0f} ms{cut})"
        )


def _item_audio(events: list[TraceEvent]) -> ItemAudio:
    sizes = np.fromiter((len(event.audio) for event in events), dtype=np.int64, count=len(events))
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    arrays = (
        np.fromiter((event.t_ms for event in events), dtype=np.float64, count=len(events)),
        sizes,
        starts / BYTES_PER_MS,
    )
    for array in arrays:
        array.flags.writeable = False  # shared by every caller: nobody may edit the cache
    return ItemAudio(*arrays, audio=b"".join(event.audio for event in events))

"""One line of a trace: an event the Realtime session delivered and the time it arrived.

See notebooks/00_traces.ipynb and docs/TRACE_FORMAT.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ItemKey = tuple[str, int]  # (item_id, content_index): one audio stream within a response

FORMAT_VERSION = 1
AUDIO_FORMAT = "g711_ulaw"
SAMPLE_RATE_HZ = 8000

# Fields each known event type must carry, in the order the writer puts them, and the JSON types
# allowed. turn_started/turn_ended may carry null: the SDK's events default response_id to None.
STR = (str,)
OPTIONAL_STR = (str, type(None))
INT = (int,)
EVENT_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "turn_started": {"response_id": OPTIONAL_STR},
    "audio": {"response_id": STR, "item_id": STR, "content_index": INT, "audio": STR},
    "transcript_delta": {"response_id": STR, "item_id": STR, "delta": STR},
    "audio_done": {"item_id": STR, "content_index": INT},
    "audio_interrupted": {"item_id": STR, "content_index": INT},
    "turn_ended": {"response_id": OPTIONAL_STR},
}


@dataclass(frozen=True)
class TraceEvent:
    """An event at ``t_ms`` (ms since the session started).

    ``fields`` holds the event's JSON fields except t_ms, type and audio; for ``audio`` events
    ``audio`` holds the decoded mu-law bytes. Unknown types keep all their fields as read.
    """

    t_ms: float
    type: str
    fields: dict[str, Any] = field(default_factory=dict)
    audio: bytes = b""

    @property
    def item_id(self) -> str | None:
        value = self.fields.get("item_id")
        return value if isinstance(value, str) else None

    @property
    def content_index(self) -> int | None:
        value = self.fields.get("content_index")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def response_id(self) -> str | None:
        value = self.fields.get("response_id")
        return value if isinstance(value, str) else None

    @property
    def key(self) -> ItemKey | None:
        """(item_id, content_index), or None for events not about one item's audio."""
        item_id, content_index = self.item_id, self.content_index
        if item_id is None or content_index is None:
            return None
        return (item_id, content_index)

    @property
    def audio_ms(self) -> float:
        return len(self.audio) / (SAMPLE_RATE_HZ / 1000)


def audio_event(
    t_ms: float, response_id: str, item_id: str, content_index: int, data: bytes
) -> TraceEvent:
    """An ``audio`` event carrying the mu-law bytes ``data``."""
    fields = {"response_id": response_id, "item_id": item_id, "content_index": content_index}
    return TraceEvent(t_ms, "audio", fields, data)


def item_event(kind: str, t_ms: float, item_id: str, content_index: int) -> TraceEvent:
    """An ``audio_done`` or ``audio_interrupted`` event."""
    return TraceEvent(t_ms, kind, {"item_id": item_id, "content_index": content_index})


def turn_event(kind: str, t_ms: float, response_id: str | None) -> TraceEvent:
    """A ``turn_started`` or ``turn_ended`` event."""
    return TraceEvent(t_ms, kind, {"response_id": response_id})


def make_header(source: str, description: str, **extra: Any) -> dict[str, Any]:
    """A v1 header; ``extra`` holds ``generator`` (synthetic) or ``recorder`` (recorded), etc."""
    return {
        "labkit_trace": FORMAT_VERSION,
        "audio_format": AUDIO_FORMAT,
        "sample_rate": SAMPLE_RATE_HZ,
        "source": source,
        "description": description,
        **extra,
    }

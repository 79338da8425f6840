"""Trace format v1: what a Realtime session delivered, with the time each event arrived.

See notebooks/00_traces.ipynb and docs/TRACE_FORMAT.md.
"""

from __future__ import annotations

from labkit.traces.errors import TraceFormatError
from labkit.traces.event import (
    EVENT_FIELDS,
    FORMAT_VERSION,
    ItemKey,
    TraceEvent,
    audio_event,
    item_event,
    make_header,
    turn_event,
)
from labkit.traces.limits import TraceLimits
from labkit.traces.reader import read
from labkit.traces.realtime_log import LogImport, import_log
from labkit.traces.recorder import TraceRecorder
from labkit.traces.session_recorder import SessionRecorder, record_session
from labkit.traces.shipped import SHIPPED_DIR, shipped
from labkit.traces.trace import ItemAudio, Trace
from labkit.traces.writer import write

__all__ = [
    "EVENT_FIELDS",
    "FORMAT_VERSION",
    "SHIPPED_DIR",
    "ItemAudio",
    "ItemKey",
    "LogImport",
    "SessionRecorder",
    "Trace",
    "TraceEvent",
    "TraceFormatError",
    "TraceLimits",
    "TraceRecorder",
    "audio_event",
    "import_log",
    "item_event",
    "make_header",
    "read",
    "record_session",
    "shipped",
    "turn_event",
    "write",
]

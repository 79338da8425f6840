"""Record a live Realtime session's model events as a v1 trace, one flushed line at a time.

See notebooks/04_live_call.ipynb. The SDK is not imported: events are recognised by ``.type``, so
core stays free of it. A recorder killed mid-call leaves a file that ``read(path, salvage=True)``
reads up to the line being written. No API key is ever taken, so none can be written.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from labkit.traces.errors import TraceFormatError
from labkit.traces.event import (
    TraceEvent,
    audio_event,
    item_event,
    make_header,
    turn_event,
)
from labkit.traces.validation import SequenceCheck
from labkit.traces.writer import encode_event, encode_header

_SECRET_WORDS = ("key", "secret", "token", "password", "auth")


class TraceRecorder:
    """Write model events to ``path`` as they arrive, timed from the recorder's start.

    ``recorder`` describes the source (sdk version, model name, date) and goes in the header.
    ``clock`` returns seconds (``time.monotonic`` by default; tests inject a fake one).
    ``exclusive``: refuse (``FileExistsError``) to replace an existing file.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        description: str,
        recorder: dict[str, Any],
        clock: Callable[[], float] = time.monotonic,
        exclusive: bool = False,
    ) -> None:
        _refuse_secrets(recorder)
        self.path = Path(path)
        self.skipped: list[str] = []  # events left out because the trace would be invalid
        self._clock = clock
        self._start_s = clock()
        self._last_t_ms = 0.0
        self._line = 1
        self._sequence = SequenceCheck(self.path)
        header = make_header("recorded", description, recorder=recorder)
        self._raw: IO[bytes] = self.path.open("xb" if exclusive else "wb")
        self._out: IO[bytes] | gzip.GzipFile = self._raw
        if self.path.name.endswith(".gz"):
            self._out = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0)
        self._write(encode_header(header, self.path))

    def record(self, model_event: Any, t_ms: float | None = None) -> TraceEvent | None:
        """Append the trace event for an SDK model event; other event types are ignored.

        ``t_ms`` defaults to the clock's time since the start; it never goes back.
        Returns the event written, or None if the event was ignored or skipped.
        """
        if getattr(model_event, "type", None) == "raw_model_event":  # a session event wrapper
            model_event = model_event.data
        t_ms = self._now_ms() if t_ms is None else t_ms
        t_ms = max(float(t_ms), self._last_t_ms)
        event = to_trace_event(model_event, t_ms)
        if event is None:
            return None
        try:
            line = encode_event(event, self.path, self._line + 1)
            self._sequence.check(event, self._line + 1)
        except TraceFormatError as error:
            self.skipped.append(error.reason)
            return None
        self._last_t_ms = t_ms
        self._line += 1
        self._write(line)
        return event

    def _now_ms(self) -> float:
        return (self._clock() - self._start_s) * 1000.0

    def _write(self, line: bytes) -> None:
        self._out.write(line)
        self._out.flush()  # GzipFile.flush is a zlib sync flush: whole lines reach the disk
        if self._out is not self._raw:
            self._raw.flush()

    @property
    def closed(self) -> bool:
        return self._raw.closed

    def close(self) -> None:
        if self.closed:
            return
        if self._out is not self._raw:
            self._out.close()
        self._raw.close()

    def __enter__(self) -> TraceRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def to_trace_event(model_event: Any, t_ms: float) -> TraceEvent | None:
    """The trace event for an SDK model event at ``t_ms``, or None for types a trace omits."""
    kind = getattr(model_event, "type", None)
    if kind == "audio":
        return audio_event(
            t_ms,
            model_event.response_id,
            model_event.item_id,
            model_event.content_index,
            bytes(model_event.data),
        )
    if kind in ("audio_done", "audio_interrupted"):
        return item_event(kind, t_ms, model_event.item_id, model_event.content_index)
    if kind in ("turn_started", "turn_ended"):
        return turn_event(kind, t_ms, getattr(model_event, "response_id", None))
    if kind == "transcript_delta":
        fields = {
            "response_id": model_event.response_id,
            "item_id": model_event.item_id,
            "delta": model_event.delta,
        }
        return TraceEvent(t_ms, kind, fields)
    return None


def _refuse_secrets(recorder: dict[str, Any]) -> None:
    for name in recorder:
        if any(word in str(name).lower() for word in _SECRET_WORDS):
            raise ValueError(f"recorder info must not hold secrets; remove the field {name!r}")

"""Record a live Realtime session's model events as a v1 trace, one flushed line at a time.

See notebooks/04_live_call.ipynb. The SDK is not imported: events are recognised by ``.type``, so
core stays free of it. A recorder killed mid-call leaves a file that ``read(path, salvage=True)``
reads up to the line being written. No API key is ever taken, so none can be written.
A recorder only ever creates its file (exclusive creation): it never overwrites a trace, and no
two recorders write one file. ``create_recorder`` picks a name no other call has in a directory.

Failures: a write that fails (a full disk, a file size limit) raises its OSError once; the
recorder then stops at once (``failure`` says why, ``closed`` is true): the file is closed with
nothing more written to it, so what reached the disk stays readable by ``read(path,
salvage=True)``, and a second failure while closing is ignored. If even the header cannot be
written, the constructor raises (the OSError names the file) and removes the file it created, which
holds nothing; a file it did not create is never removed. An event the trace cannot hold (audio
after its item's audio_done, a field of the wrong type...) is skipped: the first
``SKIPS_LOGGED`` are logged one by one (the path, the event type and why; never a payload) and
kept in ``skipped``, the rest only counted (``skipped_count``) and summed up in one line on close.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import hashlib
import logging
import os
import re
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

log = logging.getLogger(__name__)

_SECRET_WORDS = ("key", "secret", "token", "password", "auth")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
NAME_PREFIX_CHARS = 40  # the readable part of a file name taken from the label
NAME_DIGEST_HEX = 16  # 64 bits of SHA-256 of the whole label: distinct labels, distinct names
MAX_NAME_ATTEMPTS = 1000  # counter suffixes tried when calls share a label and a second
TRACE_SUFFIX = ".jsonl.gz"
SKIPS_LOGGED = 10  # per recording; the rest are counted and summed up when it closes
REASON_CHARS = 200  # a skip's reason is cut to this in the log


class TraceRecorder:
    """Write model events to ``path`` as they arrive, timed from the recorder's start.

    ``path`` must not exist (FileExistsError otherwise): a trace is never overwritten.
    ``recorder`` describes the source (sdk version, model name, date) and goes in the header.
    ``clock`` returns seconds (``time.monotonic`` by default; tests inject a fake one).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        description: str,
        recorder: dict[str, Any],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _refuse_secrets(recorder)
        self.path = Path(path)
        # events left out because the trace would be invalid: the first SKIPS_LOGGED reasons
        # ("<event type>: <why>"), and how many in all
        self.skipped: list[str] = []
        self.skipped_count = 0
        self.failure: str | None = None  # the write failure that stopped the recording, if any
        self._skips_summed_up = False
        self._clock = clock
        self._start_s = clock()
        self._last_t_ms = 0.0
        self._line = 1
        self._sequence = SequenceCheck(self.path)
        header = make_header("recorded", description, recorder=recorder)
        first_line = encode_header(header, self.path)  # a header refused leaves no file behind
        self._raw: IO[bytes] = self.path.open("xb")
        self._out: IO[bytes] | gzip.GzipFile = self._raw
        created: os.stat_result | None = None
        try:
            created = os.fstat(self._raw.fileno())  # to know the file at the path is still ours
            if self.path.name.endswith(".gz"):
                self._out = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0)
            self._write(first_line)
        except BaseException as exc:
            self.abandon()
            if created is not None:
                _remove_if_same_file(self.path, created)  # no whole header: it holds nothing
            if isinstance(exc, OSError) and exc.filename is None:
                exc.filename = str(self.path)  # the caller has no recorder to ask which file
            raise

    def record(self, model_event: Any, t_ms: float | None = None) -> TraceEvent | None:
        """Append the trace event for an SDK model event; other event types are ignored.

        ``t_ms`` defaults to the clock's time since the start; it never goes back.
        Returns the event written, or None if the event was ignored or skipped.
        """
        if getattr(model_event, "type", None) == "raw_model_event":  # a session event wrapper
            model_event = model_event.data
        try:
            t_ms = self._now_ms() if t_ms is None else t_ms
            t_ms = max(float(t_ms), self._last_t_ms)
            event = to_trace_event(model_event, t_ms)
            if event is None:
                return None
            line = encode_event(event, self.path, self._line + 1)
            self._sequence.check(event, self._line + 1)
        except TraceFormatError as error:
            self._skip(model_event, error.reason)
            return None
        except (TypeError, ValueError, AttributeError) as error:  # an event missing a field,
            # a time that is no number: skipped like any bad event, the recording goes on
            self._skip(model_event, str(error))
            return None
        self._last_t_ms = t_ms
        self._line += 1
        self._write(line)
        return event

    def _now_ms(self) -> float:
        return (self._clock() - self._start_s) * 1000.0

    def _skip(self, model_event: Any, reason: str) -> None:
        """Count a skipped event; log its type and reason (never its payload) while few."""
        self.skipped_count += 1
        if self.skipped_count > SKIPS_LOGGED:
            return
        kind = _log_safe(str(getattr(model_event, "type", "?")), 40)
        self.skipped.append(f"{kind}: {reason}")
        last = self.skipped_count == SKIPS_LOGGED
        more = "; more skips are counted, summed up at the end" if last else ""
        log.warning("recording %s: skipped one %s event (the trace cannot hold it): %s%s",
                    self.path, kind, _log_safe(reason, REASON_CHARS), more)  # fmt: skip

    def _sum_up_skips(self) -> None:
        if self._skips_summed_up:
            return
        self._skips_summed_up = True
        if self.skipped_count > SKIPS_LOGGED:
            log.warning("recording %s: %d more events skipped (%d in all)", self.path,
                        self.skipped_count - SKIPS_LOGGED, self.skipped_count)  # fmt: skip

    def _write(self, line: bytes) -> None:
        try:
            self._out.write(line)
            self._out.flush()  # GzipFile.flush is a zlib sync flush: whole lines reach the disk
            if self._out is not self._raw:
                self._raw.flush()
        except OSError as exc:  # a full disk: nothing more is written, what is there stays
            self.failure = f"{type(exc).__name__}: {exc}"
            self.abandon()
            raise

    @property
    def closed(self) -> bool:
        return self._raw.closed

    def close(self) -> None:
        """Finish the file (the gzip trailer) and close it. A failure to (a full disk) raises its
        OSError once, the file closed all the same; closing again does nothing."""
        if self.closed:
            return
        try:
            if self._out is not self._raw:
                self._out.close()  # the gzip trailer; may fail (a full disk)
            self._raw.close()  # flushes: may fail too
        except OSError as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
            self.abandon()  # the file is closed either way
            raise
        finally:
            self._sum_up_skips()

    def abandon(self) -> None:
        """Stop at once after a failure: close the file, writing nothing more (no gzip trailer
        after a line that did not reach the disk whole), ignoring any error. Idempotent."""
        with contextlib.suppress(OSError, ValueError):
            self._raw.close()  # what is still buffered may fail again: ignored, closed anyway
        if self._out is not self._raw:
            # the raw file is closed: the trailer's writes fail, nothing reaches the file
            with contextlib.suppress(OSError, ValueError):
                self._out.close()
        self._sum_up_skips()

    def __enter__(self) -> TraceRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def trace_file_stem(label: str, started: datetime.datetime) -> str:
    """A file name stem for a trace of ``label`` (e.g. a stream sid) started at ``started``:
    ``20250101T120000Z_<readable prefix>_<digest of the whole label>``. Any label gives a safe
    name (no path separator, no dot); two labels give two names however alike they are."""
    when = started.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    readable = _UNSAFE_NAME_CHARS.sub("_", label)[:NAME_PREFIX_CHARS] or "trace"
    whole = label.encode("utf-8", "surrogatepass")  # a JSON string may hold a lone surrogate
    digest = hashlib.sha256(whole).hexdigest()[:NAME_DIGEST_HEX]
    return f"{when}_{readable}_{digest}"


def create_recorder(
    directory: Path,
    label: str,
    started: datetime.datetime,
    *,
    description: str,
    recorder: dict[str, Any],
    clock: Callable[[], float] = time.monotonic,
) -> TraceRecorder:
    """A recorder on a new file in ``directory`` named by ``trace_file_stem``; if that name is
    taken (a call with the same label in the same second), ``-1``, ``-2``... is added."""
    stem = trace_file_stem(label, started)
    for attempt in range(MAX_NAME_ATTEMPTS):
        suffix = f"-{attempt}" if attempt else ""
        path = directory / f"{stem}{suffix}{TRACE_SUFFIX}"
        try:
            return TraceRecorder(path, description=description, recorder=recorder, clock=clock)
        except FileExistsError:
            continue
    raise FileExistsError(f"{directory}: {MAX_NAME_ATTEMPTS} traces named {stem}* already exist")


def to_trace_event(model_event: Any, t_ms: float) -> TraceEvent | None:
    """The trace event for an SDK model event at ``t_ms``, or None for types a trace omits."""
    kind = getattr(model_event, "type", None)
    if kind == "audio":
        data = model_event.data
        if not isinstance(data, bytes | bytearray | memoryview):  # bytes(5) is five zero bytes
            raise TypeError(f"audio data must be bytes, got {type(data).__name__}")
        return audio_event(
            t_ms,
            model_event.response_id,
            model_event.item_id,
            model_event.content_index,
            bytes(data),
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


def _remove_if_same_file(path: Path, created: os.stat_result) -> None:
    """Remove ``path`` if it is still the file ``created`` describes, never another one."""
    with contextlib.suppress(OSError):
        now = os.lstat(path)
        if (now.st_dev, now.st_ino) == (created.st_dev, created.st_ino):
            path.unlink()


def _log_safe(text: str, limit: int) -> str:
    """``text`` for a log line: cut to ``limit`` characters, non-printables escaped."""
    cut = text[:limit]
    if not cut.isprintable():
        cut = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in cut)
    return cut + ("..." if len(text) > limit else "")


def _refuse_secrets(recorder: dict[str, Any]) -> None:
    for name in recorder:
        if any(word in str(name).lower() for word in _SECRET_WORDS):
            raise ValueError(f"recorder info must not hold secrets; remove the field {name!r}")

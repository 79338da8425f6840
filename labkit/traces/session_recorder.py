"""Record a v1 trace from any ``openai-agents`` ``RealtimeSession``, in your own server.

Wrap the session's event loop; every event still reaches your code, unchanged::

    from labkit.traces import record_session

    async with session:
        async for event in record_session(session, "data/recorded/"):
            ...  # your own handling, as before

A directory gets a new file per session (``session-<UTC time>.jsonl.gz``); a file path must not
exist yet (nothing is overwritten). Model events (audio, audio_done, audio_interrupted, turns,
transcripts) are written as they arrive, timed from the call to ``record_session``, one flushed
line at a time, so a server killed mid-call leaves a trace ``read(path, salvage=True)`` reads. The
file is closed when the session's events end or raise, or by ``close()`` (or ``with``) if you break
out of the loop early. Recording never disturbs the call: a recording failure is logged once and
recording stops, the events keep flowing (``failure`` says why). A write that fails (a full disk)
writes nothing more: what reached the file stays readable by ``read(path, salvage=True)``; if
even the header cannot be written, the file (which holds nothing) is removed and the session goes
on unrecorded. Events a trace cannot hold are skipped and logged (the first few one by one, then
a count; never their audio); ``skipped_count`` counts them. The session's output audio format is
learnt from its ``session.created``/``session.updated`` events: mu-law is written as is, pcm16
(the SDK's default) becomes mu-law 8 kHz (``labkit.traces.realtime_log.UlawConverter``). No API
key is ever seen.
The SDK is not imported: events are recognised by ``.type``, as ``TraceRecorder`` does.
See notebooks/04_live_call.ipynb and the README's "Your own traces".
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

from labkit.traces.realtime_log import SESSION_EVENTS, UlawConverter, output_format_of
from labkit.traces.recorder import TraceRecorder

log = logging.getLogger(__name__)

SUFFIX = ".jsonl.gz"


class SessionRecorder:
    """An async iterator over ``session``'s events that records their model events to ``path``."""

    def __init__(
        self,
        session: AsyncIterable[Any],
        path: str | Path,
        *,
        description: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.converter = UlawConverter()
        self.failure: str | None = None  # why recording stopped early, if it did
        self.recorder: TraceRecorder | None = None  # None: the recording could not start
        try:
            self.path = _target(self.path)
            self.recorder = TraceRecorder(
                self.path,
                description=description or "recorded from an openai-agents RealtimeSession",
                recorder=_recorder_info(),
                clock=clock,
            )
        except FileExistsError:  # a trace is never overwritten: the caller named a taken file
            raise
        except OSError as exc:  # no space even for the header: the session goes on unrecorded
            why = str(exc)
            if exc.filename == str(self.path) and exc.errno is not None:  # named in the log line
                why = f"[Errno {exc.errno}] {exc.strerror}"
            self._stop(f"{type(exc).__name__}: {why}")
        self._events: AsyncIterator[Any] = aiter(session)

    def __aiter__(self) -> SessionRecorder:
        return self

    async def __anext__(self) -> Any:
        try:
            event = await anext(self._events)
        except BaseException:  # the session ended, failed, or the task was cancelled
            self.close()
            raise
        if self.recorder is not None and not self.recorder.closed:
            self._record(self.recorder, event)
        return event

    @property
    def skipped_count(self) -> int:
        """Events the trace could not hold, skipped (each logged, or counted past the first few)."""
        return 0 if self.recorder is None else self.recorder.skipped_count

    def _record(self, recorder: TraceRecorder, event: Any) -> None:
        if getattr(event, "type", None) != "raw_model_event":
            return
        model_event = event.data
        try:
            if getattr(model_event, "type", None) == "raw_server_event":
                self._learn_format(model_event.data)
            elif getattr(model_event, "type", None) == "audio":
                self._record_audio(recorder, model_event)
            else:
                recorder.record(model_event)
        except Exception as exc:  # a full disk must not end the caller's call
            self._stop(f"{type(exc).__name__}: {exc}")

    def _learn_format(self, server_event: Any) -> None:
        if not isinstance(server_event, dict) or server_event.get("type") not in SESSION_EVENTS:
            return
        fmt = output_format_of(server_event.get("session"))
        if fmt is not None and fmt != self.converter.audio_format:
            self.converter = UlawConverter(fmt)  # ValueError (a-law): recording stops

    def _record_audio(self, recorder: TraceRecorder, model_event: Any) -> None:
        key = (model_event.item_id, model_event.content_index)
        data = self.converter.convert(key, bytes(model_event.data))
        if data:
            recorder.record(dataclasses.replace(model_event, data=data))

    def _stop(self, reason: str) -> None:
        """Log the first failure (only that one) and finish what can be finished."""
        if self.failure is None:
            self.failure = reason
            if self.recorder is None:
                log.error("recording %s not started (the call goes on, unrecorded): %s",
                          self.path, reason)  # fmt: skip
            else:
                log.error("recording %s stopped (the call goes on): %s", self.path, reason)
        self.close()

    def close(self) -> None:
        """Finish the file (idempotent). A failure to is logged (once), never raised."""
        recorder = self.recorder
        if recorder is None or recorder.closed:
            return
        try:
            recorder.close()
        except OSError as exc:  # the recorder closed the file anyway, writing nothing more
            self._stop(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> SessionRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def record_session(
    session: AsyncIterable[Any], path: str | Path, *, description: str | None = None
) -> SessionRecorder:
    """Iterate ``session`` through this to record its trace at ``path`` (a file or a directory)."""
    return SessionRecorder(session, path, description=description)


def _target(path: Path) -> Path:
    """The file to write: a new one in a directory, or ``path`` itself if it does not exist."""
    if path.is_dir() or not path.name.endswith((".jsonl", ".jsonl.gz")):
        path.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        candidate = path / f"session-{stamp}{SUFFIX}"
        for n in range(2, 1000):
            if not candidate.exists():
                return candidate
            candidate = path / f"session-{stamp}-{n}{SUFFIX}"
        raise FileExistsError(f"no free file name for a session trace in {path}")
    if path.exists():
        raise FileExistsError(f"{path} exists; record_session never overwrites a trace")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _recorder_info() -> dict[str, Any]:
    try:
        sdk = f"openai-agents {metadata.version('openai-agents')}"
    except metadata.PackageNotFoundError:
        sdk = "openai-agents (version unknown)"
    return {
        "sdk": sdk,
        "tool": "labkit.traces.record_session",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }

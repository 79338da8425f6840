"""Where live calls record their traces (``labkit serve --record DIR``): a new file per call.

Each call writes its own file, created exclusively (``labkit.traces.TraceRecorder``), named from
the UTC start time, a readable prefix of the stream sid and a digest of the whole sid
(``labkit.traces.recorder.trace_file_stem``), with a counter when two calls would still share a
name: no trace is ever overwritten or written by two calls. When the directory holds
``record_max_bytes`` or more (checked as each call starts), calls go unrecorded and one log line
says so, until space is freed. A file removed while the directory is counted is skipped; a
directory that cannot be counted at all (replaced by a file, unreadable) leaves the calls starting
then unrecorded, with a log line: recording never disturbs a call. The directory is counted in a
thread, never on the event loop: listing a directory of many traces takes seconds, and every
other call must go on meanwhile.
See notebooks/04_live_call.ipynb.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
from pathlib import Path

import agents

from labkit.live.log_text import escaped, shown
from labkit.live.models import ModelChoice
from labkit.traces import TraceRecorder
from labkit.traces.recorder import create_recorder

log = logging.getLogger(__name__)


class CallRecordings:
    """One per server: opens each call's recorder in ``directory``, within ``max_bytes``."""

    def __init__(self, directory: Path, max_bytes: int | None, models: ModelChoice) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.models = models
        self.full = False  # the cap was reached (logged once); cleared when space is freed
        self._count: asyncio.Future[int] | None = None  # the count under way, if any

    async def open(self, stream_sid: str) -> TraceRecorder | None:
        """A recorder for a call that starts now, or None (logged) when it cannot record."""
        if await self._over_cap():
            return None
        started = datetime.datetime.now(datetime.UTC)
        info = {
            "sdk": f"openai-agents {agents.__version__}",
            "model": self.models.description,
            "date": started.isoformat(timespec="seconds"),
            "stream_sid": stream_sid,
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            return create_recorder(
                self.directory, stream_sid, started,
                description=f"recorded live call {stream_sid}", recorder=info,
            )  # fmt: skip
        except OSError as exc:  # a full disk must not end the call: it goes on unrecorded
            log.error("call %s: not recorded: %s", shown(stream_sid), escaped(str(exc)))
            return None

    def used_bytes(self) -> int:
        """Bytes in the directory's files; raises OSError when the directory cannot be listed."""
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        return sum(_file_bytes(entry) for entry in entries)

    async def _used_bytes_off_loop(self) -> int:
        """``used_bytes`` in a thread; calls starting while a count is under way share it."""
        if self._count is None or self._count.done():
            self._count = asyncio.ensure_future(asyncio.to_thread(self.used_bytes))
        return await asyncio.shield(self._count)

    async def _over_cap(self) -> bool:
        if self.max_bytes is None:
            return False
        try:
            used = await self._used_bytes_off_loop()
        except OSError as exc:  # recording must never disturb a call: this one goes unrecorded
            log.error("record directory %s cannot be counted: %s: calls starting now are not "
                      "recorded", self.directory, escaped(str(exc)))  # fmt: skip
            return True
        if used < self.max_bytes:
            if self.full:
                log.warning("record directory %s is under its cap again: calls are recorded",
                            self.directory)  # fmt: skip
            self.full = False
            return False
        if not self.full:
            log.warning(
                "record directory %s holds %d bytes, at or over its cap of %d bytes "
                "(--record-max-mib): calls are not recorded until space is freed",
                self.directory, used, self.max_bytes,
            )  # fmt: skip
        self.full = True
        return True


def _file_bytes(entry: os.DirEntry[str]) -> int:
    """The size of a file in the directory, 0 for anything else or for a file that vanished
    since the listing (an operator freeing space as calls start)."""
    try:
        return entry.stat().st_size if entry.is_file() else 0
    except OSError:
        return 0

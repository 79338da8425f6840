"""The emulator's WebSocket server: one ``EmulatedSession`` per connection, replayed on time.

Per connection two tasks run: the reader (client frames -> ``session.receive`` -> replies) and the
replay (sleeps until the next trace event is due at ``start + t_ms / speed``, on an absolute
schedule so a long trace does not drift). The replay clock starts at the client's first valid
``session.update`` (the session is configured, the playback tracker knows mu-law). When the trace
is replayed the connection stays open, as OpenAI's does: the call ends when the caller hangs up
and the client closes the session. With ``close_when_done=True`` the server closes it normally
(1000) instead, which the SDK's model reports to its session as the end of the stream. Both tasks
are cancelled and awaited when the connection ends. See notebooks/04_live_call.ipynb.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from labkit.live.log_text import escaped
from labkit.live.realtime_emulator.session import EmulatedSession, Event
from labkit.live.settings import check_replay_speed
from labkit.traces import Trace
from labkit.traces.realtime_log import log_line

log = logging.getLogger(__name__)
# websockets logs every handshake header at DEBUG, the client's Authorization among them: its
# server logger never goes below INFO, so no key (not even a placeholder) reaches a log.
_websockets_log = logging.getLogger(f"{__name__}.websockets")
_websockets_log.setLevel(logging.INFO)

# The key the SDK's model sends to the emulator: a placeholder, not a secret. The emulator refuses
# any other bearer token, so a real key sent here by mistake is refused (and never logged).
EMULATOR_API_KEY = "labkit-realtime-emulator-placeholder-not-a-secret"
REALTIME_PATH = "/v1/realtime"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
MS_PER_S = 1000.0
CLOSE_NORMAL = 1000
CLOSE_INTERNAL_ERROR = 1011
SESSIONS_KEPT = 256  # the latest sessions, for tests and loopback calls: not every one, forever
MAX_CLIENT_FRAME_BYTES = 1 << 20  # a 1 MiB append is ~2 minutes of mu-law: far beyond any chunk


class RealtimeEmulator:
    """A local Realtime server replaying ``trace`` to every connection, ``speed`` times faster.

    ``async with RealtimeEmulator(trace) as emulator:`` then point the SDK's model at
    ``emulator.url`` with ``api_key=EMULATOR_API_KEY``. ``sessions`` keeps every connection's
    ``EmulatedSession`` (truncations, cancels, protocol errors, caller audio received). With
    ``log_dir`` each connection writes the server events it sent as a Realtime log
    (``session-N.jsonl``, the schema ``labkit import`` reads; times on the trace's clock).
    """

    def __init__(
        self,
        trace: Trace,
        *,
        speed: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        log_dir: str | Path | None = None,
        compression: bool = False,
        close_when_done: bool = False,
    ) -> None:
        check_replay_speed("RealtimeEmulator: speed", speed)
        if host not in LOOPBACK_HOSTS:
            raise ValueError(
                f"RealtimeEmulator binds loopback only ({LOOPBACK_HOSTS}), not {host!r}"
            )
        self.trace = trace
        self.speed = speed
        self.host = host
        self.port = port
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.compression = compression
        self.close_when_done = close_when_done
        self.sessions: list[EmulatedSession] = []
        self.refused_handshakes = 0
        self._numbers = itertools.count(1)
        self._server: Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        # audio events as base64, encoded once for every connection
        self._audio_b64 = [
            base64.b64encode(event.audio).decode("ascii") if event.audio else ""
            for event in trace.events
        ]

    @property
    def url(self) -> str:
        """The WebSocket URL for the SDK's model config (``url``)."""
        if self._server is None:
            raise RuntimeError("RealtimeEmulator is not serving; use `async with`")
        return f"ws://{self.host}:{self.port}{REALTIME_PATH}"

    @property
    def live_connections(self) -> int:
        return len(self._connections)

    async def __aenter__(self) -> RealtimeEmulator:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        self._server = await serve(
            self._serve,
            self.host,
            self.port,
            process_request=self._check_handshake,
            compression="deflate" if self.compression else None,
            max_size=MAX_CLIENT_FRAME_BYTES,
            logger=_websockets_log,
        )
        self.port = int(next(iter(self._server.sockets)).getsockname()[1])
        # debug, not info: `labkit emulate` and `labkit serve` print the URL in their banners
        log.debug("Realtime emulator on %s replaying %r x%g", self.url, self.trace, self.speed)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()  # closes every connection (1001) and stops listening
        await server.wait_closed()

    # ------------------------------------------------------------------ one connection

    def _check_handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        """The path the SDK uses, and a bearer token that is the placeholder (never a real key)."""
        path = request.path.split("?", 1)[0]
        if path != REALTIME_PATH:
            return self._refuse(
                connection, HTTPStatus.NOT_FOUND, f"no Realtime endpoint at {path!r:.80}"
            )
        # get_all: two Authorization headers made get() raise, a 500 with a traceback
        if request.headers.get_all("Authorization") != [f"Bearer {EMULATOR_API_KEY}"]:
            return self._refuse(
                connection,
                HTTPStatus.UNAUTHORIZED,
                "the Authorization header must be 'Bearer <labkit's placeholder key>'; "
                "a real OpenAI key is never sent to the emulator",
            )
        return None

    def _refuse(self, connection: ServerConnection, status: HTTPStatus, reason: str) -> Response:
        self.refused_handshakes += 1
        log.warning("Realtime emulator refused a handshake (%d): %s", status.value, reason)
        return connection.respond(status, reason + "\n")

    async def _serve(self, connection: ServerConnection) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        session = EmulatedSession(
            self.trace, number=next(self._numbers), audio_b64=self._audio_b64.__getitem__
        )
        self.sessions.append(session)
        del self.sessions[:-SESSIONS_KEPT]
        try:
            with self._log_file(session) as log_file:
                await _Connection(self, connection, session, log_file).run()
        finally:
            self._connections.discard(task)

    @contextlib.contextmanager
    def _log_file(self, session: EmulatedSession) -> Any:
        """The session's log, a new file (``session-N.jsonl``, the next N no earlier log holds:
        an old log is never overwritten); None when there is no log or it cannot be made (said
        once: the session is served all the same)."""
        if self.log_dir is None:
            yield None
            return
        for attempt in itertools.count(session.number):
            try:
                handle = (self.log_dir / f"session-{attempt}.jsonl").open("x", encoding="utf-8")
                break
            except FileExistsError:
                continue
            except OSError as exc:
                log.error("Realtime emulator session %d: not logged: %s", session.number, exc)
                yield None
                return
        with handle:
            yield handle


class _Connection:
    """The two tasks of one connection around its sans-I/O session."""

    def __init__(
        self,
        emulator: RealtimeEmulator,
        connection: ServerConnection,
        session: EmulatedSession,
        log_file: IO[str] | None,
    ) -> None:
        self.connection = connection
        self.session = session
        self.speed = emulator.speed
        self.close_when_done = emulator.close_when_done
        self.log_file = log_file
        self.loop = asyncio.get_running_loop()
        self.start_s: float | None = None  # loop time of the replay's t = 0
        self.configured = asyncio.Event()

    async def run(self) -> None:
        number = self.session.number
        reader = asyncio.create_task(self._read(), name=f"labkit-emulator-{number}-reader")
        replay = asyncio.create_task(self._replay(), name=f"labkit-emulator-{number}-replay")
        try:
            await self._send(self.session.opening())
            await reader  # until the client closes (or the replay closed the connection)
        except ConnectionClosed:
            pass
        finally:
            for task in (reader, replay):
                task.cancel()
            await asyncio.gather(reader, replay, return_exceptions=True)

    def _now_ms(self) -> float:
        """Trace time: real ms since the replay started, times the speed (0 before it starts)."""
        if self.start_s is None:
            return 0.0
        return (self.loop.time() - self.start_s) * MS_PER_S * self.speed

    async def _read(self) -> None:
        session = self.session
        async for frame in self.connection:
            errors_before = len(session.protocol_errors)
            if isinstance(frame, str):
                replies = session.receive(frame, self._now_ms())
            else:
                replies = session.refuse_binary(len(frame), self._now_ms())
            for error in session.protocol_errors[errors_before:]:
                log.warning(
                    "Realtime emulator session %d: client %s refused (%s): %s",
                    session.number, escaped(error.event_type, 60), error.code,
                    escaped(error.message),
                )  # fmt: skip
            if session.replay_started and self.start_s is None:
                self.start_s = self.loop.time()
                self.configured.set()
            await self._send(replies)

    async def _replay(self) -> None:
        try:
            await self._replay_trace()
        except ConnectionClosed:
            return  # the client left: nothing more to say
        except Exception as exc:  # a bug here must end this connection, loudly, not hang it
            log.error("Realtime emulator session %d failed: %r", self.session.number, exc)
            await self.connection.close(CLOSE_INTERNAL_ERROR, "emulator error")
            return
        if self.close_when_done:
            await self.connection.close(CLOSE_NORMAL, "trace replayed")

    async def _replay_trace(self) -> None:
        await self.configured.wait()
        assert self.start_s is not None
        while (due_ms := self.session.next_due_ms()) is not None:
            delay_s = self.start_s + due_ms / MS_PER_S / self.speed - self.loop.time()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            await self._send(self.session.replay_due(self._now_ms()))

    async def _send(self, events: list[Event]) -> None:
        if not events:
            return
        t_ms = self._now_ms()
        for event in events:
            text = json.dumps(event, separators=(",", ":"))
            self._log(log_line(t_ms, event))
            await self.connection.send(text)
        if self.log_file is not None:
            try:
                self.log_file.flush()
            except OSError as exc:
                self._stop_logging(exc)

    def _log(self, line: str) -> None:
        """A line of the session's log: a disk that fills stops the log, never the session
        (the log's last line may then be cut; ``labkit import`` names it)."""
        if self.log_file is None:
            return
        try:
            self.log_file.write(line)
        except OSError as exc:
            self._stop_logging(exc)

    def _stop_logging(self, exc: OSError) -> None:
        log.error("Realtime emulator session %d: its log stopped (the session goes on): %s",
                  self.session.number, exc)  # fmt: skip
        self.log_file = None

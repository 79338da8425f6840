"""A deadline on each HTTP request, the one limit uvicorn's options lack (slowloris).

uvicorn closes a connection that idles between requests (``timeout_keep_alive``) and bounds the
size of a request head (h11's ``max_incomplete_event_size``, 16 KiB), but a client that sends its
headers a byte at a time keeps a connection, and a file descriptor, forever. This protocol is
uvicorn's own h11 protocol plus one timer per connection: armed when the connection opens and
after each response, disarmed once a request has arrived whole (head and body) or the connection
has become a WebSocket; when it fires, the connection is closed. A request that takes longer
than ``request_timeout_s`` to arrive is refused that way. See README, "Bad input".
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

_RECEIVING = (h11.IDLE, h11.SEND_BODY)  # h11 states of a client still sending its request


class RequestDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol; a request must arrive whole within ``request_timeout_s``."""

    request_timeout_s: float = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()  # the next request on this connection gets its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _receiving_a_request(self) -> bool:
        transport = self.transport
        if transport.is_closing() or transport.get_protocol() is not self:  # closed, or now a WS
            return False
        return self.conn.their_state in _RECEIVING

    def _watch(self) -> None:
        if not self._receiving_a_request():
            self._disarm()
        elif self._deadline is None:  # counted from when the wait began, not from the last byte
            self._deadline = self.loop.call_later(self.request_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self._receiving_a_request():
            log.debug("closed a connection whose request was not whole after %g s",
                      self.request_timeout_s)  # fmt: skip
            self.transport.close()


def request_deadline_protocol(request_timeout_s: float) -> type[asyncio.Protocol]:
    """The protocol class to give uvicorn (``Config(http=...)``) for this deadline."""
    name = RequestDeadlineProtocol.__name__
    attributes = {"request_timeout_s": request_timeout_s}
    protocol: type[asyncio.Protocol] = type(name, (RequestDeadlineProtocol,), attributes)
    return protocol

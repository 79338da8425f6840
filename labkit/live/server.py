"""The live server: Twilio's voice webhook and the Media Streams WebSocket (FastAPI + uvicorn).

- ``POST /incoming-call`` answers with TwiML ``<Connect><Stream url="wss://HOST/media-stream">``
  and one ``<Parameter>`` per call setting (strategy, threshold_ms, mark_every_ms, align_frames),
  which Twilio hands back in ``start.customParameters``. HOST is ``settings.public_url``'s host, or
  the request's ``Host`` header.
- ``WS /media-stream`` runs a ``TwilioHandler`` per connection, at most ``limits.max_streams`` at
  once: a handshake over the cap is answered HTTP 503 (with ``Retry-After``), before any message.
- ``GET /health`` says which model answers and how many calls are live.
- ``GET /stats`` lists recent calls' handler stats (the load benchmark reads it). With
  ``LABKIT_STATS_TOKEN`` set it needs ``Authorization: Bearer <that token>`` (401 otherwise);
  without it, it is closed (403) when ``TWILIO_AUTH_TOKEN`` is set, open when neither is set (a
  loopback lab server with no secret).

Limits (``ServerLimits``, ``labkit serve`` flags, README "Bad input"): a media stream must send a
valid ``start`` within ``start_timeout_s`` (handler); a WebSocket message over
``max_frame_bytes`` ends its call with close code 1009 (uvicorn's ``ws_max_size``); an HTTP
request must arrive whole within ``request_timeout_s`` (``labkit.live.http_deadline``).

Signatures. When a Twilio auth token is configured (``TWILIO_AUTH_TOKEN``), both the webhook and
the WebSocket handshake must carry a valid ``X-Twilio-Signature`` (HMAC-SHA1 of the URL Twilio
requested, then the sorted POST parameters, keyed by the token; checked with the ``twilio``
package's ``RequestValidator``); otherwise the webhook answers 403 and the handshake is refused
(HTTP 403, before any message). The URL is rebuilt as Twilio saw it, not as the server saw it
behind a proxy: from ``settings.public_url`` when set, else from ``X-Forwarded-Proto`` (or the
request's own scheme) and the ``Host`` header, with the path and query string. For the WebSocket
handshake Twilio signs the URL it connected to, i.e. the ``wss://`` URL of the ``<Stream>``, with
no parameters (a GET has no body): so the handshake URL uses scheme ``wss`` when the public side
is https (public_url ``https://``, ``X-Forwarded-Proto: https``/``wss``, or a TLS socket) and ``ws``
otherwise. Twilio documents the handshake signature for ConversationRelay and asks Media Streams
servers to validate it "as for webhooks"; that the signed string is the ``wss://`` URL with no
parameters is how the helper libraries validate it, stated here as inference.
See notebooks/04_live_call.ipynb.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import uvicorn
from fastapi import FastAPI, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from starlette.datastructures import URL
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, Stream, VoiceResponse

from labkit.live.handler import TwilioHandler
from labkit.live.http_deadline import request_deadline_protocol
from labkit.live.models import ModelChoice
from labkit.live.recording import CallRecordings
from labkit.live.settings import ServerSettings

log = logging.getLogger(__name__)

MEDIA_STREAM_PATH = "/media-stream"
WEBHOOK_PATH = "/incoming-call"
SIGNATURE_HEADER = "X-Twilio-Signature"
POLICY_VIOLATION = 1008  # WebSocket close code; before accept, Starlette answers HTTP 403
TRY_AGAIN_LATER = 1013  # close code for an over-cap handshake on a server without HTTP denials
RETRY_AFTER_S = 1
# Recent finished calls kept for /stats and loopback_call; bounded, as a server runs for days.
FINISHED_CALLS_KEPT = 256
# uvicorn's own limits, stated rather than inherited (README, "Bad input").
KEEP_ALIVE_TIMEOUT_S = 5  # an idle HTTP connection between requests is closed after this
MAX_REQUEST_HEAD_BYTES = 16 * 1024  # h11: a larger request head is refused (400)
MAX_WEBHOOK_BODY_BYTES = 64 * 1024  # Twilio's webhook form is ~2 KB; a larger body is refused (413)
WS_PING_INTERVAL_S = 20.0  # uvicorn pings every WebSocket...
WS_PING_TIMEOUT_S = 20.0  # ...and closes one that does not answer in time


def create_app(settings: ServerSettings) -> FastAPI:
    """The ASGI app; one ``ModelChoice`` (trace read once) serves every call."""
    app = FastAPI(title="labkit live server", docs_url=None, redoc_url=None, openapi_url=None)
    models = ModelChoice(settings)
    validator = RequestValidator(settings.twilio_auth_token) if settings.twilio_auth_token else None
    live_calls: set[TwilioHandler] = set()
    recordings = None
    if settings.record_dir is not None:
        recordings = CallRecordings(settings.record_dir, settings.limits.record_max_bytes, models)
    cap = StreamCap(settings.limits.max_streams)
    app.state.settings = settings
    app.state.models = models
    app.state.live_calls = live_calls
    finished_calls: list[TwilioHandler] = []
    app.state.finished_calls = finished_calls

    @app.get("/health")
    async def health() -> dict[str, object]:
        return {
            "status": "ok",
            "model": models.description,
            "replay": models.is_replay,
            "signatures_required": validator is not None,
            "live_calls": len(live_calls),
        }

    @app.get("/stats", response_model=None)
    async def stats(request: Request) -> dict[str, object] | JSONResponse:
        """Each recent call's handler stats (timer lateness, drops...): the load benchmark."""
        refusal = stats_refusal(settings, request.headers.get("authorization"))
        if refusal is not None:
            return refusal
        calls = [(h, False) for h in finished_calls] + [(h, True) for h in live_calls]
        return {"live_calls": len(live_calls), "calls": [call_stats(h, live) for h, live in calls]}

    @app.post(WEBHOOK_PATH)
    async def incoming_call(request: Request) -> Response:
        if validator is not None:
            params = await _webhook_form(request)
            if params is None:
                log.warning("webhook refused: a body over %d bytes", MAX_WEBHOOK_BODY_BYTES)
                return JSONResponse({"detail": "request body too large"}, status_code=413)
            url = public_http_url(request.url, request.headers, settings.public_url)
            if not _signed(validator, url, params, request.headers.get(SIGNATURE_HEADER)):
                log.warning("webhook refused: missing or invalid %s", SIGNATURE_HEADER)
                return JSONResponse({"detail": "invalid Twilio signature"}, status_code=403)
        host = public_host(request.headers, settings.public_url)
        return Response(twiml(host, settings), media_type="application/xml")

    @app.websocket(MEDIA_STREAM_PATH)
    async def media_stream(websocket: WebSocket) -> None:
        if validator is not None:
            url = public_ws_url(websocket.url, websocket.headers, settings.public_url)
            if not _signed(validator, url, {}, websocket.headers.get(SIGNATURE_HEADER)):
                log.warning("media stream refused: missing or invalid %s", SIGNATURE_HEADER)
                await websocket.close(code=POLICY_VIOLATION)
                return
        if cap.full(len(live_calls)):
            await refuse_over_cap(websocket)
            return
        handler = TwilioHandler(websocket, settings, models=models, recordings=recordings)
        live_calls.add(handler)  # counted from now on: no await between the check and this
        try:
            await websocket.accept()
            await handler.run()
        finally:
            live_calls.discard(handler)
            cap.released(len(live_calls))
            finished_calls.append(handler)
            del finished_calls[:-FINISHED_CALLS_KEPT]

    return app


def call_stats(handler: TwilioHandler, live: bool) -> dict[str, object]:
    return {"stream_sid": handler.stream_sid, "live": live, **handler.stats.as_json()}


def stats_refusal(settings: ServerSettings, authorization: str | None) -> JSONResponse | None:
    """None when this request may read /stats, else the response that refuses it."""
    if settings.stats_token is None:
        if settings.twilio_auth_token is None:
            return None  # no secret at all: a lab server on loopback
        detail = "/stats is closed: set LABKIT_STATS_TOKEN and send Authorization: Bearer <it>"
        return JSONResponse({"detail": detail}, status_code=403)
    expected = f"Bearer {settings.stats_token}".encode()
    given = (authorization or "").encode("latin-1", "replace")  # the header's bytes as sent
    if hmac.compare_digest(given, expected):
        return None
    return JSONResponse(
        {"detail": "/stats needs Authorization: Bearer <LABKIT_STATS_TOKEN>"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


class StreamCap:
    """At most ``limit`` media streams at once. Refusals are logged once per spell at the cap
    (when it is reached, then how many were refused once under it again), never one per refusal."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.refused = 0  # handshakes refused since the cap was last reached

    def full(self, open_streams: int) -> bool:
        if open_streams < self.limit:
            return False
        if not self.refused:
            log.warning("media streams at the cap of %d (--max-streams): new handshakes get "
                        "HTTP 503 until one ends", self.limit)  # fmt: skip
        self.refused += 1
        return True

    def released(self, open_streams: int) -> None:
        if self.refused and open_streams < self.limit:
            log.warning("media streams under the cap again; %d handshakes were refused",
                        self.refused)  # fmt: skip
            self.refused = 0


async def refuse_over_cap(websocket: WebSocket) -> None:
    """HTTP 503 with Retry-After before accepting; close code 1013 if the server cannot."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        response = JSONResponse(
            {"detail": "too many media streams; try again later"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
        await websocket.send_denial_response(response)
    else:
        await websocket.close(code=TRY_AGAIN_LATER)


def twiml(host: str, settings: ServerSettings) -> str:
    """``<Connect><Stream>`` to this server, carrying the call settings as ``<Parameter>``s."""
    response = VoiceResponse()
    connect = Connect()
    stream = Stream(url=f"wss://{host}{MEDIA_STREAM_PATH}")
    for name, value in settings.call.as_parameters().items():
        stream.parameter(name=name, value=value)
    connect.append(stream)
    response.append(connect)
    return str(response)


# ---------------------------------------------------------------------- URL reconstruction


def public_host(headers: Mapping[str, str], public_url: str | None) -> str:
    if public_url:
        return urlsplit(public_url).netloc
    return headers.get("host", "localhost")


def _public_scheme_is_tls(url: URL, headers: Mapping[str, str], public_url: str | None) -> bool:
    if public_url:
        return public_url.startswith("https://")
    forwarded = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if forwarded:
        return forwarded in ("https", "wss")
    return url.scheme in ("https", "wss")


def _path_and_query(url: URL, public_url: str | None) -> str:
    prefix = urlsplit(public_url).path.rstrip("/") if public_url else ""
    return prefix + url.path + (f"?{url.query}" if url.query else "")


def public_http_url(url: URL, headers: Mapping[str, str], public_url: str | None) -> str:
    """The webhook URL as Twilio requested it (what it signed)."""
    scheme = "https" if _public_scheme_is_tls(url, headers, public_url) else "http"
    return f"{scheme}://{public_host(headers, public_url)}{_path_and_query(url, public_url)}"


def public_ws_url(url: URL, headers: Mapping[str, str], public_url: str | None) -> str:
    """The WebSocket URL as Twilio connected to it (what it signed)."""
    scheme = "wss" if _public_scheme_is_tls(url, headers, public_url) else "ws"
    return f"{scheme}://{public_host(headers, public_url)}{_path_and_query(url, public_url)}"


def _signed(
    validator: RequestValidator, url: str, params: Mapping[str, str], signature: str | None
) -> bool:
    if not signature:
        return False
    try:
        return bool(validator.validate(url, dict(params), signature))
    except ValueError:  # a Host header no URL can hold (port 99999, "[::1"): nothing signed it
        return False


async def _webhook_form(request: Request) -> dict[str, str] | None:
    """The webhook's urlencoded form, read within MAX_WEBHOOK_BODY_BYTES; None beyond it (the
    form parser would hold a body of any size in memory first)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_WEBHOOK_BODY_BYTES:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WEBHOOK_BODY_BYTES:
            return None
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


# ---------------------------------------------------------------------- running it


@dataclass
class BackgroundServer:
    """A server running in this event loop (``serve_in_background``)."""

    app: FastAPI
    host: str
    port: int

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}{MEDIA_STREAM_PATH}"


class ClientFrameNotUtf8(logging.Filter):
    """uvicorn's websockets-sansio layer logs a caller's text frame that is not UTF-8 as an
    ERROR with a traceback, though it handles it (the connection closes): a caller's mistake,
    so one WARNING line, as for every other."""

    UVICORN_MESSAGE = "Invalid UTF-8 sequence received from client."

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == self.UVICORN_MESSAGE:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text, record.args = None, None, ()
            record.msg = "a caller sent a text frame that is not UTF-8: its connection is closed"
        return True


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: Ctrl-C stays with the notebook or the test runner."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def uvicorn_config(
    app: FastAPI, host: str, port: int, log_level: str = "warning"
) -> uvicorn.Config:
    """uvicorn for ``create_app``'s app, with every limit set from its settings or stated here."""
    settings: ServerSettings = app.state.settings
    limits = settings.limits
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, ClientFrameNotUtf8) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(ClientFrameNotUtf8())
    # The codec caps Twilio frames at 64 KiB; the socket allows up to max_frame_bytes so that an
    # oversized frame reaches the handler's policy (dropped and counted) instead of ending the
    # call. A frame over max_frame_bytes ends its call: it would be held whole before any check.
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        # The process's logging is the application's (labkit serve sets it up; a notebook or a
        # test has its own): uvicorn's own config would replace the handlers on its loggers at
        # every server start, and its records would bypass them.
        log_config=None,
        lifespan="off",
        http=request_deadline_protocol(limits.request_timeout_s),
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT_S,
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
        ws=settings.ws_implementation,
        ws_per_message_deflate=settings.ws_per_message_deflate,
        ws_max_size=limits.max_frame_bytes,
        ws_ping_interval=WS_PING_INTERVAL_S,
        ws_ping_timeout=WS_PING_TIMEOUT_S,
    )


def freeze_long_lived_heap() -> None:
    """Move every object alive now (imports, the app, shipped traces) out of the collector's sight.

    A full collection scans every tracked object while the event loop waits, so every call's timers
    wait too: with a few hundred thousand objects that is ~200 ms, heard as an underrun on every
    call at once. What exists before calls start lives for the whole process anyway.
    """
    gc.collect()
    gc.freeze()


@contextlib.asynccontextmanager
async def serve_in_background(
    settings: ServerSettings, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[BackgroundServer]:
    """A real uvicorn server in the running event loop; ``port=0`` picks a free port."""
    app = create_app(settings)
    freeze_long_lived_heap()
    server = _QuietServer(uvicorn_config(app, host, port))
    task = asyncio.create_task(server.serve(), name="labkit-uvicorn")
    try:
        while not server.started:
            if task.done():
                task.result()  # startup failed (port taken...): raise why
                raise RuntimeError("uvicorn stopped during startup")
            await asyncio.sleep(0.01)
        bound_port = server.servers[0].sockets[0].getsockname()[1]
        yield BackgroundServer(app=app, host=host, port=int(bound_port))
    finally:
        server.should_exit = True
        await task

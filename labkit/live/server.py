"""The live server: Twilio's voice webhook and the Media Streams WebSocket (FastAPI + uvicorn).

- ``POST /incoming-call`` answers with TwiML ``<Connect><Stream url="wss://HOST/media-stream">``
  and one ``<Parameter>`` per call setting (strategy, threshold_ms, mark_every_ms, align_frames),
  which Twilio hands back in ``start.customParameters``. HOST is ``settings.public_url``'s host, or
  the request's ``Host`` header.
- ``WS /media-stream`` runs a ``TwilioHandler`` per connection.
- ``GET /health`` says which model answers and how many calls are live.

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
import dataclasses
import gc
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import uvicorn
from fastapi import FastAPI, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from starlette.datastructures import URL
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, Stream, VoiceResponse

from labkit.live.handler import TwilioHandler
from labkit.live.models import ModelChoice
from labkit.live.settings import ServerSettings

log = logging.getLogger(__name__)

MEDIA_STREAM_PATH = "/media-stream"
WEBHOOK_PATH = "/incoming-call"
SIGNATURE_HEADER = "X-Twilio-Signature"
POLICY_VIOLATION = 1008  # WebSocket close code; before accept, Starlette answers HTTP 403
# Recent finished calls kept for /stats and loopback_call; bounded, as a server runs for days.
FINISHED_CALLS_KEPT = 256


def create_app(settings: ServerSettings) -> FastAPI:
    """The ASGI app; one ``ModelChoice`` (trace read once) serves every call."""
    app = FastAPI(title="labkit live server", docs_url=None, redoc_url=None, openapi_url=None)
    models = ModelChoice(settings)
    validator = RequestValidator(settings.twilio_auth_token) if settings.twilio_auth_token else None
    live_calls: set[TwilioHandler] = set()
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

    @app.get("/stats")
    async def stats() -> dict[str, object]:
        """Each recent call's handler stats (timer lateness, drops...): the load benchmark."""
        calls = [(h, False) for h in finished_calls] + [(h, True) for h in live_calls]
        return {"live_calls": len(live_calls), "calls": [call_stats(h, live) for h, live in calls]}

    @app.post(WEBHOOK_PATH)
    async def incoming_call(request: Request) -> Response:
        if validator is not None:
            form = await request.form()
            params = {key: str(value) for key, value in form.items()}
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
        await websocket.accept()
        handler = TwilioHandler(websocket, settings, models=models)
        live_calls.add(handler)
        try:
            await handler.run()
        finally:
            live_calls.discard(handler)
            finished_calls.append(handler)
            del finished_calls[:-FINISHED_CALLS_KEPT]

    return app


def call_stats(handler: TwilioHandler, live: bool) -> dict[str, object]:
    return {"stream_sid": handler.stream_sid, "live": live, **dataclasses.asdict(handler.stats)}


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
    return bool(validator.validate(url, dict(params), signature))


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


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: Ctrl-C stays with the notebook or the test runner."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def uvicorn_config(
    app: FastAPI, host: str, port: int, log_level: str = "warning"
) -> uvicorn.Config:
    # The codec caps Twilio frames at 64 KiB; the socket allows more so that an oversized frame
    # reaches the handler's policy (dropped and counted) instead of killing the call.
    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, lifespan="off", ws_max_size=1 << 20
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

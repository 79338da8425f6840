"""The live server: TwiML, Twilio signatures (webhook and WebSocket handshake), settings."""

from __future__ import annotations

import asyncio
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from labkit import traces
from labkit import twilio_messages as tm
from labkit.cli import build_parser
from labkit.cli.serve import settings_from_args
from labkit.live.server import MAX_WEBHOOK_BODY_BYTES, create_app, serve_in_background
from labkit.live.settings import CallSettings, ServerLimits, ServerSettings, strategy_names
from labkit.traces import Trace, TraceLimits, audio_event, item_event, make_header

pytestmark = pytest.mark.anyio

TOKEN = "test-auth-token-0123456789abcdef"
FORM = {"CallSid": "CA123", "From": "+15550001111", "To": "+15550002222"}
SID = "MZ00000000000000000000000000000009"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def trace_path(tmp_path: Path) -> Path:
    events = [
        audio_event(0.0, "r1", "i1", 0, b"\x01" * 320),
        item_event("audio_done", 1.0, "i1", 0),
    ]
    path = tmp_path / "tiny.jsonl.gz"
    traces.write(Trace(make_header("synthetic", "tiny"), events), path)
    return path


def settings(trace_path: Path, **kw: object) -> ServerSettings:
    return ServerSettings(replay_trace=trace_path, replay_speed=20.0, **kw)  # type: ignore[arg-type]


def sign(url: str, params: dict[str, str] | None = None) -> str:
    return str(RequestValidator(TOKEN).compute_signature(url, params or {}))


async def post_call(app_settings: ServerSettings, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(app_settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.post("/incoming-call", data=FORM, headers=headers)


# ---------------------------------------------------------------------- webhook


async def test_webhook_answers_twiml_that_connects_a_stream_with_the_call_settings(
    trace_path: Path,
) -> None:
    call = CallSettings("preroll", 120.0, None, True)
    response = await post_call(settings(trace_path, call=call), {"Host": "agent.example"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    stream = ET.fromstring(response.text).find("./Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://agent.example/media-stream"
    params = {str(p.get("name")): str(p.get("value")) for p in stream.findall("Parameter")}
    assert params == call.as_parameters()
    assert CallSettings().with_parameters(params) == (call, [])  # what start will carry back


async def test_webhook_uses_the_public_url_host(trace_path: Path) -> None:
    app_settings = settings(trace_path, public_url="https://abc.ngrok.app")
    response = await post_call(app_settings, {})
    stream = ET.fromstring(response.text).find("./Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://abc.ngrok.app/media-stream"


@pytest.mark.parametrize(
    ("public_url", "headers", "signed_url", "status"),
    [
        (None, {}, "http://testserver/incoming-call", 200),
        (None, {}, None, 403),  # no signature at all
        (None, {}, "http://testserver/other-path", 403),
        (None, {"X-Forwarded-Proto": "https"}, "https://testserver/incoming-call", 200),
        (None, {"X-Forwarded-Proto": "https"}, "http://testserver/incoming-call", 403),
        ("https://abc.ngrok.app", {}, "https://abc.ngrok.app/incoming-call", 200),
        ("https://abc.ngrok.app", {}, "http://testserver/incoming-call", 403),
    ],
)
async def test_webhook_signature(
    trace_path: Path,
    public_url: str | None,
    headers: dict[str, str],
    signed_url: str | None,
    status: int,
) -> None:
    app_settings = settings(trace_path, public_url=public_url, twilio_auth_token=TOKEN)
    if signed_url is not None:
        headers = {**headers, "X-Twilio-Signature": sign(signed_url, FORM)}
    response = await post_call(app_settings, headers)
    assert response.status_code == status


async def test_webhook_refuses_a_signature_over_other_parameters(trace_path: Path) -> None:
    forged = sign("http://testserver/incoming-call", {**FORM, "From": "+15559999999"})
    response = await post_call(
        settings(trace_path, twilio_auth_token=TOKEN), {"X-Twilio-Signature": forged}
    )
    assert response.status_code == 403


@pytest.mark.parametrize("host", ["x:99999", "x:abc", "[::1", "x:-1"])
async def test_a_host_no_url_can_hold_is_refused_not_a_server_error(
    trace_path: Path, host: str
) -> None:
    """Twilio's validator raised ValueError on such a Host (its port, its brackets): a 500 and a
    traceback in the log for every request any client cared to send."""
    app_settings = settings(trace_path, twilio_auth_token=TOKEN)
    headers = {"Host": host, "X-Twilio-Signature": sign("http://testserver/incoming-call", FORM)}
    response = await post_call(app_settings, headers)
    assert response.status_code == 403


async def test_a_webhook_body_beyond_any_twilio_form_is_refused_unread(trace_path: Path) -> None:
    """The form parser held any body in memory before the signature was checked: 300 MiB of form
    cost the server 300 MiB. Now 64 KiB is the most it reads (a declared length, or a chunked
    body as it streams in)."""
    transport = httpx.ASGITransport(app=create_app(settings(trace_path, twilio_auth_token=TOKEN)))
    big = {"Pad": "x" * (MAX_WEBHOOK_BODY_BYTES + 1)}
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        declared = await client.post("/incoming-call", data=big)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(MAX_WEBHOOK_BODY_BYTES // 1024 + 2):
                yield b"Pad=" + b"x" * 1020

        streamed = await client.post("/incoming-call", content=chunks(), headers={
            "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        signed = await client.post("/incoming-call", data=FORM, headers={
            "X-Twilio-Signature": sign("http://testserver/incoming-call", FORM)})  # fmt: skip
    assert (declared.status_code, streamed.status_code, signed.status_code) == (413, 413, 200)


async def test_health_reports_the_model(trace_path: Path) -> None:
    transport = httpx.ASGITransport(app=create_app(settings(trace_path, twilio_auth_token=TOKEN)))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        body = (await client.get("/health")).json()
    assert body["status"] == "ok" and body["replay"] is True and body["signatures_required"]
    assert TOKEN not in str(body)


# ---------------------------------------------------------------------- WebSocket handshake


async def dial(url: str, headers: dict[str, str]) -> None:
    """A minimal call: start, then stop; returns when the server has closed."""
    async with connect(url, additional_headers=headers) as ws:
        await ws.send(tm.start_json(SID, "CA1", "AC1"))
        await ws.send(tm.stop_json(SID, "AC1", "CA1", 2))
        await asyncio.wait_for(ws.wait_closed(), timeout=5)


@pytest.mark.parametrize(
    ("public_url", "extra", "signed", "accepted"),
    [
        (None, {}, "ws://{host}/media-stream", True),
        (None, {}, None, False),
        (None, {}, "ws://{host}/elsewhere", False),
        (None, {"X-Forwarded-Proto": "https"}, "wss://{host}/media-stream", True),
        (None, {"X-Forwarded-Proto": "https"}, "ws://{host}/media-stream", False),
        ("https://abc.ngrok.app", {}, "wss://abc.ngrok.app/media-stream", True),
        ("https://abc.ngrok.app", {}, "ws://{host}/media-stream", False),
    ],
)
async def test_websocket_handshake_signature(
    trace_path: Path,
    public_url: str | None,
    extra: dict[str, str],
    signed: str | None,
    accepted: bool,
) -> None:
    app_settings = settings(trace_path, public_url=public_url, twilio_auth_token=TOKEN)
    async with serve_in_background(app_settings) as server:
        host = f"{server.host}:{server.port}"
        headers = dict(extra)
        if signed is not None:
            headers["X-Twilio-Signature"] = sign(signed.format(host=host))
        if accepted:
            await dial(server.ws_url, headers)
            assert len(server.app.state.finished_calls) == 1
        else:
            with pytest.raises(InvalidStatus) as refused:
                await dial(server.ws_url, headers)
            assert refused.value.response.status_code == 403
            assert server.app.state.finished_calls == []


# ---------------------------------------------------------------------- settings and CLI


call_settings = st.builds(
    CallSettings,
    strategy=st.sampled_from(strategy_names()),
    threshold_ms=st.floats(0, 5000, allow_nan=False).map(lambda x: float(f"{x:g}")),
    mark_every_ms=st.none() | st.floats(1, 1000).map(lambda x: float(f"{x:g}")),
    align_frames=st.booleans(),
)


@given(call_settings)
def test_call_settings_survive_the_twiml_round_trip(call: CallSettings) -> None:
    assert CallSettings().with_parameters(call.as_parameters()) == (call, [])


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("strategy", "turbo"),
        ("threshold_ms", "-5"),
        ("threshold_ms", "inf"),
        ("threshold_ms", "fifty"),
        ("mark_every_ms", "0"),
        ("align_frames", "perhaps"),
    ],
)
def test_an_invalid_parameter_is_named_and_the_default_kept(key: str, value: str) -> None:
    default = CallSettings("rechunk", 70.0)
    settings_out, problems = default.with_parameters({key: value, "unrelated": "x"})
    assert settings_out == default
    assert len(problems) == 1 and f"customParameters.{key}" in problems[0]


@pytest.mark.parametrize("fields, refused", [
    ({"strategy": "bogus"}, "unknown outbound strategy 'bogus'"),
    ({"threshold_ms": -1.0}, "threshold_ms must be a finite number of ms from 0"),
    ({"threshold_ms": math.nan}, "threshold_ms must be a finite number of ms from 0"),
    ({"threshold_ms": 1e12}, "threshold_ms must be a finite number of ms from 0 to 600000"),
    ({"mark_every_ms": 0.0}, "mark_every_ms must be > 0 or None"),
])  # fmt: skip
def test_call_settings_a_strategy_would_refuse_are_refused_when_made(
        fields: dict[str, Any], refused: str) -> None:  # fmt: skip
    # by the strategy's own checks, not at the start of a call when its handler builds it
    with pytest.raises(ValueError, match=re.escape(refused)):
        CallSettings(**fields)


def test_a_replay_speed_must_be_finite_and_positive(trace_path: Path) -> None:
    for speed in (0.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="replay_speed must be a finite number > 0"):
            ServerSettings(replay_trace=trace_path, replay_speed=speed)


def test_secrets_come_from_the_environment_and_stay_out_of_repr() -> None:
    env = {"TWILIO_AUTH_TOKEN": TOKEN, "OPENAI_API_KEY": "sk-secret-value"}
    server_settings = ServerSettings.from_env(env)
    assert server_settings.twilio_auth_token == TOKEN
    assert not server_settings.uses_replay
    assert TOKEN not in repr(server_settings) and "sk-secret" not in repr(server_settings)
    assert ServerSettings.from_env({}).uses_replay


def test_public_url_must_be_http(trace_path: Path) -> None:
    with pytest.raises(ValueError, match="public_url"):
        settings(trace_path, public_url="abc.ngrok.app")


def test_serve_flags_build_the_settings(trace_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    argv = ["serve", "--replay", str(trace_path), "--strategy", "paced", "--threshold-ms", "40"]
    argv += ["--mark-every-ms", "none", "--public-url", "https://x.example", "--speed", "2"]
    server_settings = settings_from_args(build_parser().parse_args(argv))
    assert server_settings.call == CallSettings("paced", 40.0, None, False)
    assert server_settings.replay_trace == trace_path and server_settings.replay_speed == 2.0
    assert server_settings.public_url == "https://x.example" and server_settings.uses_replay


def test_serve_websocket_flags_and_an_emulator_of_ones_own(trace_path: Path) -> None:
    base = ["serve", "--replay", str(trace_path)]
    defaults = settings_from_args(build_parser().parse_args(base))
    assert defaults.ws_implementation == "websockets-sansio"
    assert defaults.ws_per_message_deflate is False and defaults.realtime_emulator_url is None
    argv = [*base, "--ws", "websockets", "--ws-per-message-deflate"]
    argv += ["--realtime-emulator-url", "ws://127.0.0.1:8766/v1/realtime"]
    chosen = settings_from_args(build_parser().parse_args(argv))
    assert chosen.ws_implementation == "websockets" and chosen.ws_per_message_deflate is True
    assert chosen.realtime_emulator_url == "ws://127.0.0.1:8766/v1/realtime"
    for bad, says in [(["--realtime-emulator-url", "http://x"], "ws:// URL"),
                      (["--realtime-emulator", "--realtime-emulator-url", "ws://x"], "pick one")]:
        with pytest.raises(SystemExit, match=says):
            settings_from_args(build_parser().parse_args([*base, *bad]))
    with pytest.raises(ValueError, match="ws_implementation"):
        ServerSettings(ws_implementation="tornado")


def test_serve_says_how_to_get_wsproto_when_it_is_missing(
    trace_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wsproto is only in the [bench] extra: without it, --ws wsproto is refused by name."""
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *rest: Any) -> Any:
        return None if name == "wsproto" else real_find_spec(name, *rest)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    args = build_parser().parse_args(["serve", "--replay", str(trace_path), "--ws", "wsproto"])
    with pytest.raises(SystemExit, match=r"needs the wsproto package .*\[bench\]"):
        settings_from_args(args)


@pytest.mark.parametrize("accept", [False, True])
async def test_permessage_deflate_is_declined_unless_asked_for(trace_path: Path,
                                                               accept: bool) -> None:  # fmt: skip
    """A caller that offers compression (whether Twilio does is undocumented) gets none by
    default: it costs CPU on every message both ways (benchmarks/README.md)."""
    server_settings = settings(trace_path, ws_per_message_deflate=accept)
    async with (
        serve_in_background(server_settings) as server,
        connect(server.ws_url, compression="deflate") as ws,
    ):
        negotiated = [type(e).__name__ for e in ws.protocol.extensions]
        await ws.send(tm.stop_json(SID, "AC1", "CA1", 1))
    assert negotiated == (["PerMessageDeflate"] if accept else [])


def test_serve_limit_flags_build_the_limits(trace_path: Path) -> None:
    argv = ["serve", "--replay", str(trace_path), "--start-timeout-s", "3", "--max-streams", "7"]
    argv += ["--request-timeout-s", "2.5", "--max-frame-kib", "128", "--record-max-mib", "none"]
    argv += ["--max-trace-mib", "10", "--max-line-mib", "0.5"]
    server_settings = settings_from_args(build_parser().parse_args(argv))
    assert server_settings.limits == ServerLimits(3.0, 7, 2.5, 128 * 1024, None)
    assert server_settings.trace_limits == TraceLimits(10 << 20, 1 << 19)
    defaults = settings_from_args(build_parser().parse_args(["serve", "--replay", str(trace_path)]))
    assert defaults.limits == ServerLimits() and defaults.trace_limits == TraceLimits()


@pytest.mark.parametrize(
    "flags",
    [
        ["--start-timeout-s", "0"],
        ["--start-timeout-s", "inf"],
        ["--max-streams", "0"],
        ["--request-timeout-s", "-1"],
        ["--max-frame-kib", "63"],
        ["--record-max-mib", "lots"],
        ["--max-trace-mib", "0"],
    ],
)
def test_serve_refuses_nonsense_limits(flags: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve", *flags])
    assert exited.value.code == 2


def test_the_stats_token_comes_from_the_environment_and_stays_out_of_repr() -> None:
    server_settings = ServerSettings.from_env({"LABKIT_STATS_TOKEN": "stats-secret-value"})
    assert server_settings.stats_token == "stats-secret-value"
    assert "stats-secret" not in repr(server_settings)

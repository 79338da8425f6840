"""Settings of the live server and of each call it bridges.

``ServerSettings`` is fixed when the app is created (``labkit serve`` flags, environment).
``CallSettings`` is the outbound strategy and its parameters: the server's default, overridable per
call through the ``<Parameter>``s of the TwiML ``<Stream>``, which Twilio hands back in
``start.customParameters`` (keys ``strategy``, ``threshold_ms``, ``mark_every_ms``,
``align_frames``). An invalid override is reported and the server default kept: a typo in a
console must not drop a call. ``ServerLimits`` are the server's own bounds on what a caller may
cost it (README, "Bad input"). Secrets (Twilio auth token, OpenAI key, the ``/stats`` token) never
appear in ``repr``. See notebooks/04_live_call.ipynb.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from labkit.traces.limits import TraceLimits

DEFAULT_STRATEGY = "forward"  # what the SDK's Twilio example does today: the baseline
DEFAULT_THRESHOLD_MS = 50.0
DEFAULT_MARK_EVERY_MS = 100.0
DEFAULT_VOICE = "alloy"
DEFAULT_INSTRUCTIONS = "You are a friendly phone assistant. Keep answers short."
CALL_PARAMETER_KEYS = ("strategy", "threshold_ms", "mark_every_ms", "align_frames")
_TRUE_WORDS = ("1", "true", "yes", "on")
_FALSE_WORDS = ("0", "false", "no", "off")
_NONE_WORDS = ("", "none", "null")
KIB = 1 << 10
MIB = 1 << 20
DEFAULT_START_TIMEOUT_S = 10.0  # Twilio sends `start` right after `connected`, within milliseconds
DEFAULT_MAX_STREAMS = 256  # above the 200 concurrent calls benchmarks/bench_load.py runs
DEFAULT_REQUEST_TIMEOUT_S = 10.0  # for a whole HTTP request (headers and body) to arrive
# One WebSocket message is held whole before anyone looks at it: frames up to this are read and,
# over the codec's 64 KiB, dropped and counted; a larger one ends its call (close code 1009).
DEFAULT_MAX_FRAME_BYTES = 1 * MIB
DEFAULT_RECORD_MAX_BYTES = 2048 * MIB  # the record directory's size past which calls go unrecorded
MIN_FRAME_BYTES = 64 * KIB  # labkit.twilio_messages.MAX_MESSAGE_BYTES: a valid message must fit
# uvicorn's WebSocket implementations; the default measured cheapest per message
# (benchmarks/bench_live_vs_upstream.py, benchmarks/README.md)
WS_IMPLEMENTATIONS = ("websockets-sansio", "websockets", "wsproto")
DEFAULT_WS_IMPLEMENTATION = "websockets-sansio"
MAX_HOST_NAME_CHARS = 253  # a DNS name's longest text form (RFC 1035)
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")  # RFC 1123
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")  # spaces and control characters


def check_replay_speed(what: str, speed: float) -> float:
    """The one rule for a replay's speed factor (the server's, the replay model's, the Realtime
    emulator's): a finite number > 0. ``what`` names the value in the error."""
    if not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"{what} must be a finite number > 0, got {speed!r}")
    return speed


def check_public_url(what: str, url: str) -> str:
    """The one rule for the server's public URL (``--public-url``): Twilio fetches the webhook and
    opens the media stream there, and every TwiML answer carries it, so it must be an http(s) URL
    with a valid host name (an optional port and path) and nothing else: no user or password (they
    would be in every answer and banner), no query or fragment (the server appends its own paths).
    ``what`` names the value in the ValueError; a URL that may hold a password is never echoed."""
    if "@" in url:
        raise ValueError(f"{what} must not hold a user name or password ('@'): Twilio would get "
                         "them in every TwiML answer")  # fmt: skip
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{what} must start with http:// or https://, got {url!r}")
    if _URL_FORBIDDEN.search(url):
        raise ValueError(f"{what} must hold no spaces or control characters, got {url!r}")
    if "?" in url or "#" in url:
        raise ValueError(f"{what} must have no query or fragment ('?', '#'), got {url!r}")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is no number 0..65535
    except ValueError as exc:
        raise ValueError(f"{what} must have a valid host and port ({exc}), got {url!r}") from None
    if port == 0:  # no one can connect to port 0
        raise ValueError(f"{what} must have a port in 1..65535, got {url!r}")
    if not _valid_host(parts.hostname or ""):
        raise ValueError(f"{what} must name a valid host (e.g. https://abc.ngrok.app), "
                         f"got {url!r}")  # fmt: skip
    return url


def _valid_host(host: str) -> bool:
    """A DNS name (letters, digits, hyphens, dot-separated labels) or an IP address."""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return True
    labels = host.removesuffix(".").split(".")
    return len(host) <= MAX_HOST_NAME_CHARS and all(_HOST_LABEL.fullmatch(x) for x in labels)


def strategy_names() -> tuple[str, ...]:
    from labkit.outbound import STRATEGY_NAMES

    return tuple(STRATEGY_NAMES)


@dataclass(frozen=True, slots=True)
class CallSettings:
    """Which outbound strategy a call uses, with its parameters."""

    strategy: str = DEFAULT_STRATEGY
    threshold_ms: float = DEFAULT_THRESHOLD_MS
    mark_every_ms: float | None = DEFAULT_MARK_EVERY_MS  # None: a mark after every media
    align_frames: bool = False

    def __post_init__(self) -> None:
        # Refused now, by the strategy's own checks (its name, threshold and mark cadence), not
        # when a call starts and its handler builds the strategy
        from labkit.outbound import make_strategy

        make_strategy(self.strategy, self.threshold_ms, mark_every_ms=self.mark_every_ms)

    def as_parameters(self) -> dict[str, str]:
        """The TwiML ``<Parameter>`` values that reproduce these settings."""
        mark = "none" if self.mark_every_ms is None else _number_text(self.mark_every_ms)
        return {
            "strategy": self.strategy,
            "threshold_ms": _number_text(self.threshold_ms),
            "mark_every_ms": mark,
            "align_frames": "true" if self.align_frames else "false",
        }

    def with_parameters(self, params: Mapping[str, str]) -> tuple[CallSettings, list[str]]:
        """These settings overridden by ``params``; invalid values are listed and ignored."""
        settings, problems = self, []
        for key in CALL_PARAMETER_KEYS:
            if key not in params:
                continue
            try:
                settings = replace(settings, **{key: _PARSERS[key](params[key])})
            except ValueError as exc:
                problems.append(f"customParameters.{key}: {exc}; keeping {getattr(self, key)!r}")
        return settings, problems


def parse_strategy(text: str) -> str:
    name = text.strip().lower()
    names = strategy_names()
    if name == "original_report":  # a model of the PR's code, held to it in the simulator only
        raise ValueError(f"'original_report' (the report's buffer, modelled from its code) runs in "
                         f"simulate and sweep, not in a call; expected one of {', '.join(names)}")
    if name not in names:
        raise ValueError(f"unknown strategy {text!r:.40}, expected one of {', '.join(names)}")
    return name


def parse_threshold_ms(text: str) -> float:
    from labkit.outbound.queued import check_threshold_ms

    return check_threshold_ms(_finite_float(text))  # the strategies' rule, before a call starts


def parse_mark_every_ms(text: str) -> float | None:
    if text.strip().lower() in _NONE_WORDS:
        return None
    value = _finite_float(text)
    if value <= 0:
        raise ValueError(f"mark_every_ms must be > 0 or 'none', got {text!r:.40}")
    return value


def parse_align_frames(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError(f"align_frames must be true or false, got {text!r:.40}")


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r:.40}") from None
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r:.40}")
    return value


def _number_text(value: float) -> str:
    return f"{value:g}"


_PARSERS: dict[str, Callable[[str], Any]] = {
    "strategy": parse_strategy,
    "threshold_ms": parse_threshold_ms,
    "mark_every_ms": parse_mark_every_ms,
    "align_frames": parse_align_frames,
}


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one caller may cost the server; each is a ``labkit serve`` flag (README: Bad input)."""

    start_timeout_s: float = DEFAULT_START_TIMEOUT_S  # a media stream with no valid start: closed
    max_streams: int = DEFAULT_MAX_STREAMS  # media streams open at once; more: HTTP 503
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S  # HTTP request not whole by then: closed
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES  # a larger WebSocket message ends its call
    record_max_bytes: int | None = DEFAULT_RECORD_MAX_BYTES  # None: no cap on the record directory

    def __post_init__(self) -> None:
        for name in ("start_timeout_s", "request_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"ServerLimits.{name} must be a finite number > 0, got {value}")
        if self.max_streams < 1:
            raise ValueError(f"ServerLimits.max_streams must be >= 1, got {self.max_streams}")
        if self.max_frame_bytes < MIN_FRAME_BYTES:
            raise ValueError(
                f"ServerLimits.max_frame_bytes must be >= {MIN_FRAME_BYTES} (a valid Twilio "
                f"message must fit), got {self.max_frame_bytes}"
            )
        if self.record_max_bytes is not None and self.record_max_bytes < 0:
            raise ValueError(
                f"ServerLimits.record_max_bytes must be >= 0, got {self.record_max_bytes}"
            )


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Everything the live server needs. Build with ``from_env`` to pick up the secrets."""

    call: CallSettings = field(default_factory=CallSettings)
    replay_trace: Path | None = None  # None with no API key: the shipped multi_turn trace
    replay_speed: float = 1.0
    record_dir: Path | None = None
    public_url: str | None = None  # e.g. https://abc.ngrok.app; else the request's Host header
    twilio_auth_token: str | None = field(default=None, repr=False)
    openai_api_key: str | None = field(default=None, repr=False)
    voice: str = DEFAULT_VOICE
    instructions: str = DEFAULT_INSTRUCTIONS
    model_name: str | None = None  # None: the SDK's default realtime model
    limits: ServerLimits = field(default_factory=ServerLimits)
    trace_limits: TraceLimits = field(default_factory=TraceLimits)  # for the replayed trace
    # Bearer token for GET /stats (LABKIT_STATS_TOKEN). Unset: /stats is closed when a Twilio
    # token is set (a public server), open otherwise (a loopback lab server with no secret).
    stats_token: str | None = field(default=None, repr=False)
    # A local Realtime emulator replaying the trace: the SDK's own OpenAI model talks to it
    realtime_emulator_url: str | None = None
    # The media stream's WebSocket layer (uvicorn). permessage-deflate is declined by default: it
    # halves a call's bytes (base64 mu-law in JSON) for ~25 us of CPU per message, both ways
    # (benchmarks/README.md, "labkit vs the SDK's Twilio example").
    ws_implementation: str = DEFAULT_WS_IMPLEMENTATION
    ws_per_message_deflate: bool = False

    def __post_init__(self) -> None:
        if self.ws_implementation not in WS_IMPLEMENTATIONS:
            raise ValueError(
                f"ServerSettings.ws_implementation must be one of {', '.join(WS_IMPLEMENTATIONS)}, "
                f"got {self.ws_implementation!r}"
            )
        check_replay_speed("ServerSettings.replay_speed", self.replay_speed)
        if self.public_url is not None:
            check_public_url("ServerSettings.public_url", self.public_url)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> ServerSettings:
        """Settings with TWILIO_AUTH_TOKEN, OPENAI_API_KEY and LABKIT_STATS_TOKEN read from the
        environment."""
        env = os.environ if environ is None else environ
        secrets: dict[str, object] = {
            "twilio_auth_token": env.get("TWILIO_AUTH_TOKEN") or None,
            "openai_api_key": env.get("OPENAI_API_KEY") or None,
            "stats_token": env.get("LABKIT_STATS_TOKEN") or None,
        }
        return cls(**{**secrets, **overrides})  # type: ignore[arg-type]

    @property
    def uses_replay(self) -> bool:
        """A trace is replayed (by the replay model or the Realtime emulator) when asked to, or
        when there is no API key."""
        asked = self.replay_trace is not None or self.realtime_emulator_url is not None
        return asked or not self.openai_api_key

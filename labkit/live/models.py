"""Which Realtime model a call talks to, and the ``model_config`` it connects with.

With an OpenAI key (``OPENAI_API_KEY``) and no ``--replay``: the SDK's real
``OpenAIRealtimeWebSocketModel``, mu-law 8 kHz both ways (what Twilio carries, so no resampling),
server VAD that interrupts the response when the caller talks. Otherwise a trace is replayed (by
default the shipped ``multi_turn`` trace), so the whole live path runs offline, in one of two ways:

- ``settings.realtime_emulator_url`` set (``--realtime-emulator``): the same SDK model, unmodified,
  talking the Realtime protocol to a local ``RealtimeEmulator`` that replays the trace. The key
  it sends is ``EMULATOR_API_KEY``, a placeholder: a real key is never sent there.
- otherwise a ``TraceReplayModel`` hands the trace's events straight to the session (cheaper; the
  SDK's WebSocket model, its parsing and its truncation are not exercised).

The key goes only into ``model_config``; it is never logged. See notebooks/04_live_call.ipynb.
"""

from __future__ import annotations

from pathlib import Path

from agents.realtime.config import RealtimeSessionModelSettings
from agents.realtime.model import RealtimeModel, RealtimeModelConfig, RealtimePlaybackTracker
from agents.realtime.openai_realtime import OpenAIRealtimeWebSocketModel

from labkit import traces
from labkit.live.realtime_emulator import EMULATOR_API_KEY
from labkit.live.replay_model import TraceReplayModel
from labkit.live.settings import ServerSettings

DEFAULT_REPLAY_TRACE = "multi_turn"
AUDIO_FORMAT = "g711_ulaw"


def replay_trace_path(settings: ServerSettings) -> Path:
    """The trace a replay plays: ``settings.replay_trace`` or the shipped default."""
    if settings.replay_trace is not None:
        return settings.replay_trace
    return Path(traces.shipped(DEFAULT_REPLAY_TRACE))


class ModelChoice:
    """Builds one fresh model per call (a model instance carries one connection's state)."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.is_replay = settings.uses_replay
        self.emulator_url = settings.realtime_emulator_url
        # the emulator holds its own copy of the trace: read it here only for the replay model
        replays_here = self.is_replay and self.emulator_url is None
        self.trace = (
            traces.read(replay_trace_path(settings), limits=settings.trace_limits)
            if replays_here
            else None
        )

    @property
    def description(self) -> str:
        replay = f"x{self.settings.replay_speed:g} ({replay_trace_path(self.settings)})"
        if self.emulator_url is not None:
            return f"SDK OpenAI model, Realtime emulator {self.emulator_url} replaying {replay}"
        if self.trace is None:
            return f"OpenAI Realtime ({self.settings.model_name or 'SDK default model'})"
        return f"trace replay {replay}"

    def new_model(self) -> RealtimeModel:
        if self.trace is not None:
            return TraceReplayModel(self.trace, speed=self.settings.replay_speed)
        return OpenAIRealtimeWebSocketModel()

    def model_config(self, tracker: RealtimePlaybackTracker) -> RealtimeModelConfig:
        config: RealtimeModelConfig = {
            "initial_model_settings": initial_model_settings(self.settings),
            "playback_tracker": tracker,
        }
        if self.emulator_url is not None:
            # Always the placeholder: without an api_key the SDK would read OPENAI_API_KEY itself.
            config["url"] = self.emulator_url
            config["api_key"] = EMULATOR_API_KEY
        elif self.trace is None and self.settings.openai_api_key:
            config["api_key"] = self.settings.openai_api_key
        return config


def initial_model_settings(settings: ServerSettings) -> RealtimeSessionModelSettings:
    model_settings: RealtimeSessionModelSettings = {
        "audio": {
            "input": {
                "format": AUDIO_FORMAT,
                "turn_detection": {"type": "server_vad", "interrupt_response": True},
            },
            "output": {"format": AUDIO_FORMAT, "voice": settings.voice},
        },
    }
    if settings.model_name:
        model_settings["model_name"] = settings.model_name
    return model_settings

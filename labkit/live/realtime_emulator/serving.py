"""``labkit serve --realtime-emulator``: the live server and a Realtime emulator in one event loop.

Every call the server bridges runs the SDK's own ``OpenAIRealtimeWebSocketModel`` against the
emulator, which replays the server's replay trace (``--replay``, default ``multi_turn``) at
``--speed``. Both bind as asked (the emulator on 127.0.0.1 only) and stop together on Ctrl-C.
See notebooks/04_live_call.ipynb.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from labkit.live.models import replay_trace_path
from labkit.live.realtime_emulator.server import RealtimeEmulator
from labkit.live.server import create_app, freeze_long_lived_heap, uvicorn_config
from labkit.live.settings import ServerSettings
from labkit.traces import read


async def serve_with_emulator(
    settings: ServerSettings,
    host: str,
    port: int,
    *,
    announce: Callable[[FastAPI], None] | None = None,
    log_dir: str | Path | None = None,
) -> None:
    """Serve until stopped; ``announce(app)`` runs once both are listening."""
    # within the settings' limits (--max-line-mib, --max-trace-mib), as the server reads it
    trace = read(replay_trace_path(settings), limits=settings.trace_limits)
    async with RealtimeEmulator(trace, speed=settings.replay_speed, log_dir=log_dir) as emulator:
        app = create_app(replace(settings, realtime_emulator_url=emulator.url))
        if announce is not None:
            announce(app)
        freeze_long_lived_heap()
        await uvicorn.Server(uvicorn_config(app, host, port, log_level="info")).serve()

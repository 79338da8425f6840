"""labkit: a lab measuring outbound audio buffering between a Realtime voice agent and Twilio."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {"simulate": "labkit.sim", "sweep": "labkit.sim"}  # keeps `import labkit` cheap


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")

"""Outbound strategies: how the model's audio deltas become Twilio messages.

``make_strategy(name, threshold_ms, **options)`` builds one; every strategy implements the
sans-I/O ``OutboundStrategy`` protocol of ``labkit.outbound.base``. See
notebooks/01_why_tiny_packets_jitter.ipynb and notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any

from labkit.outbound.base import (
    BYTES_PER_MS,
    FRAME_BYTES,
    FRAME_MS,
    AudioChunk,
    Clear,
    LedgerView,
    Mark,
    Media,
    Outbound,
    OutboundStrategy,
)
from labkit.values import is_real

STRATEGY_NAMES = ("forward", "rechunk", "paced", "preroll", "adaptive")

# name -> (module, class). Imported on demand: labkit.marks imports labkit.outbound.base, so
# importing the strategies here eagerly would make `import labkit.marks` circular.
_REGISTRY = {
    "forward": ("labkit.outbound.forward", "ForwardStrategy"),
    "rechunk": ("labkit.outbound.rechunk", "RechunkStrategy"),
    "paced": ("labkit.outbound.paced", "PacedStrategy"),
    "preroll": ("labkit.outbound.preroll", "PrerollStrategy"),
    "adaptive": ("labkit.outbound.adaptive", "AdaptiveStrategy"),
    "original_report": ("labkit.outbound.original_report", "OriginalReportBuffer"),
}


def strategy_class(name: str) -> type[Any]:
    """The class behind ``name`` (one of STRATEGY_NAMES or "original_report")."""
    if name not in _REGISTRY:
        known = ", ".join(repr(n) for n in _REGISTRY)
        raise ValueError(f"unknown outbound strategy {name!r}; known: {known}")
    module_name, class_name = _REGISTRY[name]
    cls: type[Any] = getattr(importlib.import_module(module_name), class_name)
    return cls


def threshold_meaning(name: str) -> str | None:
    """What ``threshold_ms`` is to strategy ``name`` (a label with its unit), or None when the
    strategy ignores it: its class says so (``threshold_means``)."""
    meaning: str | None = strategy_class(name).threshold_means
    return meaning


def strategy_options(name: str) -> tuple[str, ...]:
    """The keyword options strategy ``name`` accepts (besides threshold_ms)."""
    return tuple(_option_types(name))


@functools.cache
def _option_types(name: str) -> dict[str, str]:
    """Each keyword option of strategy ``name`` with its annotation's text (read once: a sweep
    makes a strategy per run)."""
    parameters = inspect.signature(strategy_class(name)).parameters.values()
    return {p.name: str(p.annotation) for p in parameters
            if p.kind is inspect.Parameter.KEYWORD_ONLY}  # fmt: skip


def make_strategy(name: str, threshold_ms: float, **options: Any) -> OutboundStrategy:
    """Build strategy ``name``; ``threshold_ms`` means what that strategy documents.

    Options: ``mark_every_ms`` and ``honor_generations`` (all), ``align_frames`` (rechunk,
    preroll, paced, adaptive), ``flush_interval_ms`` (rechunk), ``frame_ms`` (paced), and
    the learning parameters of adaptive. An option a strategy does not take is a ValueError.
    """
    cls = strategy_class(name)
    annotations = _option_types(name)
    unknown = sorted(set(options) - set(annotations))
    if unknown:
        raise ValueError(f"strategy {name!r} does not take option(s) {', '.join(unknown)}; "
                         f"it takes: {', '.join(annotations)}")
    for option, value in options.items():
        problem = _option_problem(annotations[option], value)
        if problem is not None:
            raise ValueError(f"strategy {name!r}: option {option} {problem}, got {value!r}")
        if annotations[option] == "int":  # 4.0 is the whole number 4
            options[option] = int(value)
    strategy: OutboundStrategy = cls(threshold_ms, **options)
    return strategy


def _option_problem(annotation: str, value: Any) -> str | None:
    """Why ``value`` is not of the option's declared type (its annotation's text), or None. A
    string "no" is not False, and "100" is not a number."""
    kinds = {kind.strip() for kind in annotation.split("|")}
    if value is None:
        return None if "None" in kinds else "may not be None"
    if "bool" in kinds:
        return None if isinstance(value, bool) else "must be True or False"
    if kinds & {"int", "float"}:
        if not is_real(value):
            return "must be a number"
        if "float" not in kinds and not float(value).is_integer():
            return "must be a whole number"
    if "str" in kinds and not isinstance(value, str):
        return "must be a string"
    return None


__all__ = [
    "BYTES_PER_MS",
    "FRAME_BYTES",
    "FRAME_MS",
    "STRATEGY_NAMES",
    "AudioChunk",
    "Clear",
    "LedgerView",
    "Mark",
    "Media",
    "Outbound",
    "OutboundStrategy",
    "make_strategy",
    "strategy_class",
    "strategy_options",
    "threshold_meaning",
]

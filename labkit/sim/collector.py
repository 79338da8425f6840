"""Runs of the simulator with Python's cyclic garbage collector paused.

A run allocates tens of thousands of small objects (a row per message, strategy records) and
no reference cycles: reference counting frees all of it. With the collector on, those
allocations set off collections that find nothing, and every so often a full one that walks
the whole heap, which in a notebook (numpy, pandas, matplotlib, widgets) is large. On the 98 s
trace, 181 paced runs in a row spent about 40% of their time there (gen2 passes dominate);
paused, that is gone. The pause is scoped to the call and restores the collector's previous
state, so a cycle made meanwhile (none is expected) is only collected a few ms later.
See benchmarks/bench_sim.py.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def collector_paused(run: Callable[P, R]) -> Callable[P, R]:
    """``run`` with the cyclic collector paused for the duration of each call."""

    @wraps(run)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        if not gc.isenabled():
            return run(*args, **kwargs)
        gc.disable()
        try:
            return run(*args, **kwargs)
        finally:
            gc.enable()

    return paused

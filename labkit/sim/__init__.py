"""The simulator: real outbound strategies on a virtual clock, through link and playout models.

See notebooks/01_why_tiny_packets_jitter.ipynb and notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

from labkit.sim.links import LINK_NAMES, make_link
from labkit.sim.metrics import Metrics, measure
from labkit.sim.playout import PLAYOUT_NAMES, make_playout
from labkit.sim.simulator import SimResult, prepare, simulate
from labkit.sim.sweep import sweep

__all__ = [
    "LINK_NAMES",
    "PLAYOUT_NAMES",
    "Metrics",
    "SimResult",
    "make_link",
    "make_playout",
    "measure",
    "prepare",
    "simulate",
    "sweep",
]

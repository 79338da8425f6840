"""Synthetic traces: espeak-ng phrases delivered by documented, seeded arrival models.

No public recording of real Realtime delta timings exists; these traces stand in until users record
their own (``labkit serve --record``). See notebooks/00_traces.ipynb and data/README.md.
"""

from labkit.synth.arrivals import ArrivalModel as ArrivalModel
from labkit.synth.build import build_trace as build_trace
from labkit.synth.build import write_catalog_trace as write_catalog_trace
from labkit.synth.catalog import CATALOG as CATALOG
from labkit.synth.catalog import BargeIn as BargeIn
from labkit.synth.catalog import TraceSpec as TraceSpec
from labkit.synth.catalog import spec_named as spec_named

"""Trace format v1: what a Realtime session delivered, with the time each event arrived.

See notebooks/00_traces.ipynb and ../shared/design/TRACE_FORMAT.md.
"""

"""Plots for the lab: every function takes ``ax=`` (created when None) and returns it; axes carry units.

The views layer: imports core, never imported by core.
"""

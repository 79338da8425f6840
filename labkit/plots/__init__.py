"""Plots for the lab: every function takes ``ax=`` (new figure when None) and returns it.

Axes carry units.

The views layer: imports core, never imported by core.
"""

from labkit.plots.calibration import coverage_vs_seeds_above_0 as coverage_vs_seeds_above_0
from labkit.plots.compare import arrivals_vs_simulation as arrivals_vs_simulation
from labkit.plots.compare import gap_distribution as gap_distribution
from labkit.plots.compare import intervals_by_link as intervals_by_link
from labkit.plots.compare import metric_vs_setting as metric_vs_setting
from labkit.plots.compare import stale_audio_vs_lead as stale_audio_vs_lead
from labkit.plots.compare import strategy_vs_frontier as strategy_vs_frontier
from labkit.plots.marks import ledger_over_time as ledger_over_time
from labkit.plots.marks import tracker_claim_vs_heard as tracker_claim_vs_heard
from labkit.plots.sweep import latency_vs_underruns as latency_vs_underruns
from labkit.plots.sweep import metric_by_link as metric_by_link
from labkit.plots.sweep import metric_vs_threshold as metric_vs_threshold
from labkit.plots.sweep import strategy_color as strategy_color
from labkit.plots.timeline import fifo_playout as fifo_playout
from labkit.plots.timeline import gaps_text as gaps_text
from labkit.plots.timeline import packet_timeline as packet_timeline
from labkit.plots.timeline import playout_gaps as playout_gaps
from labkit.plots.trace import plot_delta_sizes as plot_delta_sizes
from labkit.plots.trace import plot_trace_timeline as plot_trace_timeline

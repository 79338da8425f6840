"""Uncertainty over seeds: means with 95% confidence intervals, and paired differences.

Each seed of a sweep is one draw of the world's randomness (link delays, sender stalls, echo
trips), so a metric's values over seeds are a sample. ``summarize`` gives, per setting (trace,
strategy, threshold_ms, link, playout), ``n_seeds`` and for each metric ``<metric>_mean``,
``<metric>_ci_low`` and ``<metric>_ci_high``: the 95% confidence interval of the mean by
Student's t distribution with n - 1 degrees of freedom (mean +- t * s / sqrt(n), s the sample
standard deviation), and for a count or an amount ``<metric>_seeds_above_0``, the seeds that
carry its mean. It assumes seeds are independent draws; with one seed, or a metric that is
NaN in some seed, the interval is NaN; with every seed equal it is that value. Many metrics are
zero in most seeds (underruns are rare events), so the t interval can reach below zero, and a MOS
near a clean copy's can reach above P.862.1's ceiling: each is cut to what its metric can be
(``natural_range``: no silence below zero). The true mean lies in that range, so the cut interval
holds it whenever the t interval does. A wide interval that touches zero still says that more
seeds are needed to pin the mean down. A *difference* is never cut.

The t interval's 95% is nominal: it holds for values near normal, not for a metric that is zero
in most seeds and long in a few. Measured against the mean of 400 seeds, a 20-seed interval of
silence in gaps holds it 94-96% of the time where nearly every seed has gaps, but 64-80% where
5-50% of them do, and a verdict of "no difference shown" can hide a real difference; a named
direction was reversed in at most 2% of draws (``labkit.sim.calibration``,
notebooks/09_how_far_twenty_seeds_go.ipynb). Count the seeds with gaps before trusting an interval.

Comparing two strategies: on the ``tcp`` link one seed gives every strategy the same path delays
and stalls (they are functions of time), so the per-seed *difference* of two strategies removes
the world's variation they share. ``paired_difference`` gives its mean and 95% interval; two
strategies differ when that interval excludes zero. (Non-overlapping per-strategy intervals imply
it, but overlapping ones do not rule it out.) See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
SETTING_COLUMNS = ("trace", "strategy", "threshold_ms", "link", "playout")
SUMMARY_METRICS = (
    "concealed_ms",
    "concealment_events",
    "mean_time_to_first_audio_ms",
    "onset_concealed_ms",
    "onset_concealment_events",
    "mos_lqo",  # when the sweep scored the audio (--mos)
)


# Metrics that count things (gaps, messages): a difference in them is "fewer" or "more".
COUNTS = frozenset({
    "concealment_events", "onset_concealment_events", "onset_gaps_per_answer",
    "messages", "media_messages", "mark_messages", "clear_messages", "messages_per_audio_s",
    "interruption_count",
})  # fmt: skip
# Metrics that are amounts of time or audio, never below zero.
AMOUNTS = frozenset({
    "concealed_ms", "onset_concealed_ms", "gap_ms_per_audio_s", "mean_time_to_first_audio_ms",
    "total_interruption_duration_ms", "stale_after_barge_in_ms", "oracle_min_delay_ms",
    "jitter_ms", "audio_ms", "played_ms", "bytes", "wire_bytes",
})  # fmt: skip
UNBOUNDED = (-math.inf, math.inf)
NON_NEGATIVE = (0.0, math.inf)
# P.862's raw score is 4.5 less its disturbances (never above 4.5); P.862.1 maps it into
# (0.999, 4.999) by 0.999 + 4 / (1 + exp(-1.4945 x + 4.6607)), 4.549 at the top.
MOS_LQO_RANGE = (0.999, 0.999 + 4 / (1 + math.exp(-1.4945 * 4.5 + 4.6607)))


def natural_range(metric: str) -> tuple[float, float]:
    """What a mean of ``metric`` can be: ``[0, inf)`` for a count or an amount, P.862.1's range
    for a MOS-LQO, else unbounded (a lag, a difference, a column of your own)."""
    if metric.startswith("mos_lqo"):
        return MOS_LQO_RANGE
    return NON_NEGATIVE if metric in COUNTS or metric in AMOUNTS else UNBOUNDED


@dataclass(frozen=True)
class Interval:
    """A mean over seeds with its 95% confidence interval."""

    mean: float
    low: float
    high: float
    n: int

    def excludes(self, value: float) -> bool:
        """Whether the interval lies wholly above or below ``value``."""
        return bool(self.low > value or self.high < value)

    def __str__(self) -> str:
        return f"{self.mean:.1f} [{self.low:.1f}, {self.high:.1f}] (n={self.n})"


def mean_interval(values: Sequence[float] | npt.NDArray[np.float64],
                  within: tuple[float, float] = UNBOUNDED) -> Interval:  # fmt: skip
    """The mean of ``values`` and its 95% t interval, cut to ``within`` (the range the values
    can take: ``natural_range``); NaN with fewer than two values or NaNs."""
    data = np.asarray(values, dtype=np.float64)
    n = len(data)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(data.mean())
    if n < 2 or np.isnan(data).any():
        return Interval(mean, math.nan, math.nan, n)
    spread = float(data.std(ddof=1))
    if spread == 0.0:
        return Interval(mean, mean, mean, n)
    half = _t_quantile(n - 1) * spread / math.sqrt(n)
    floor, ceiling = within
    return Interval(mean, max(mean - half, floor), min(mean + half, ceiling), n)


@functools.cache
def _t_quantile(degrees_of_freedom: int) -> float:
    # scipy's ppf costs ~50 us, more than the rest of an interval; calibration calls it 10^5 times
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, degrees_of_freedom))


def summarize(runs: pd.DataFrame, metrics: Sequence[str] | None = None,
              by: Sequence[str] = SETTING_COLUMNS) -> pd.DataFrame:  # fmt: skip
    """One row per setting: ``n_seeds`` and ``<metric>_mean``, ``_ci_low``, ``_ci_high``, and
    for a count or an amount ``<metric>_seeds_above_0`` (few of them: trust the interval less).
    ``metrics``: those named, each a column of ``runs``; by default the SUMMARY_METRICS it has
    (``mos_lqo`` only with ``--mos``)."""
    if metrics is None:
        present = [metric for metric in SUMMARY_METRICS if metric in runs.columns]
    else:
        require_metrics(runs, metrics, "summarize: metrics")
        present = list(metrics)
    keys = [column for column in by if column in runs.columns]
    if not keys:
        raise ValueError(f"summarize: the runs have none of the setting columns {list(by)}")
    rows = []
    for setting, group in runs.groupby(keys, sort=True, dropna=False):
        values = setting if isinstance(setting, tuple) else (setting,)
        row: dict[str, object] = dict(zip(keys, values, strict=True))
        row["n_seeds"] = len(group)
        for metric in present:
            interval = mean_interval(group[metric].to_numpy(dtype=np.float64),
                                     natural_range(metric))
            row[f"{metric}_mean"] = interval.mean
            row[f"{metric}_ci_low"] = interval.low
            row[f"{metric}_ci_high"] = interval.high
            if natural_range(metric) == NON_NEGATIVE:  # how many seeds carry the mean
                row[f"{metric}_seeds_above_0"] = int((group[metric] > 0).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def thinly_carried(summary: pd.DataFrame, metric: str = "concealed_ms",
                   draws: str = "seeds") -> int:  # fmt: skip
    """How many settings of ``summary`` have ``metric`` above zero in some ``draws`` (its
    ``<metric>_<draws>_above_0`` of ``n_<draws>``: seeds, or a fleet's calls) but fewer than
    half: there a 20-seed t interval held the mean of 400 seeds 64-80% of the time, not 95%
    (notebooks/09_how_far_twenty_seeds_go.ipynb); a mean carried by a few calls is as skewed."""
    column = f"{metric}_{draws}_above_0"
    if column not in summary.columns:
        return 0
    carried = summary[column]
    return int(((carried > 0) & (carried < summary[f"n_{draws}"] / 2)).sum())


# Differences within this of zero are zero: the same gaps summed in another order differ in
# their last bits (1e-12 ms), and an interval of [1e-12, 3e-12] is no evidence of "more".
NOISE = 1e-6
LESS, FEWER, LOWER = "less", "fewer", "lower"
MORE, HIGHER, NO_DIFFERENCE = "more", "higher", "no difference shown"


def words(metric: str) -> tuple[str, str]:
    """How a difference in ``metric`` below and above zero reads: ``fewer`` / ``more`` for a
    count (gaps, messages), ``lower`` / ``higher`` for a score (MOS), else ``less`` / ``more``
    (an amount: ms of silence in gaps, bytes)."""
    if metric in COUNTS:
        return FEWER, MORE
    if metric.startswith("mos_lqo"):
        return LOWER, HIGHER
    return LESS, MORE


def direction(interval: Interval, metric: str) -> str:
    """The verdict on a paired difference in ``metric``: its below-zero word (``less``,
    ``fewer`` or ``lower``, see ``words``) when the interval lies wholly below zero, its
    above-zero word wholly above, else ``no difference shown`` (the one rule of every such
    verdict in the lessons)."""
    below, above = words(metric)
    if interval.high < -NOISE:
        return below
    return above if interval.low > NOISE else NO_DIFFERENCE


def paired_difference(runs: pd.DataFrame, metric: str, column: str, a: object, b: object,
                      pair_on: str = "seed") -> Interval:  # fmt: skip
    """Mean and 95% interval over seeds of ``metric`` at ``column == a`` minus at
    ``column == b``, the other settings of ``runs`` being equal (``runs`` holds one row per
    seed for each of the two). ``pair_on``: what pairs two rows (a fleet pairs calls,
    ``"trace"``: labkit/sim/fleet_summary.py)."""
    require_metrics(runs, (metric, column, pair_on), "paired_difference")
    left = runs[runs[column] == a].set_index(pair_on)[metric]
    right = runs[runs[column] == b].set_index(pair_on)[metric]
    if not left.index.is_unique or not right.index.is_unique:
        raise ValueError(f"paired_difference: more than one {column}={a!r} or {b!r} run per "
                         f"{pair_on}; filter the other settings first")  # fmt: skip
    both = left.index.intersection(right.index)
    if len(both) == 0:
        raise ValueError(f"paired_difference: no {pair_on} has both {column}={a!r} and {b!r}")
    return mean_interval((left[both] - right[both]).to_numpy(dtype=np.float64))


def require_metrics(runs: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """A misspelt metric or column is named, with what there is (never silently dropped)."""
    missing = [column for column in columns if column not in runs.columns]
    if missing:
        raise ValueError(f"{what}: no column {', '.join(map(repr, missing))} in the runs; they "
                         f"have {', '.join(map(str, runs.columns))}")  # fmt: skip

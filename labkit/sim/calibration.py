"""How far an interval over a few seeds can be trusted: its coverage and its verdicts, measured.

``labkit.sim.summary.mean_interval`` gives the 95% Student-t interval of a metric's mean over the
seeds of a setting. The t interval holds its 95% when the mean of the seeds is near normal. Silence
in gaps is not: it is zero in most seeds and tens of milliseconds in a few, so 20 seeds often
hold too few gaps to show the spread, and a setting where a call has a gap with chance p shows
none at all in (1 - p)^20 of its 20-seed draws (a zero-width interval at 0).

The check here needs no theory: run many seeds of one setting (say 400), take their mean as the
truth, draw ``draws`` subsets of ``n_seeds`` of them, and count how often a subset's interval holds
the truth (``coverage``), or how often a subset's paired verdict names the direction the many
seeds name (``verdict_shares``). The intervals and verdicts are computed by ``summary``'s own
rule (``mean_interval``, ``direction``), never a copy of it. Subsets are drawn without
replacement, so ``n_seeds`` must be well below the seeds run for the draws to differ.
See notebooks/09_how_far_twenty_seeds_go.ipynb.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from labkit.sim.summary import (
    NO_DIFFERENCE,
    UNBOUNDED,
    direction,
    mean_interval,
    natural_range,
    words,
)

DRAWS = 2000  # subsets per setting: a coverage of 0.95 is then known to about +-0.01


@dataclass(frozen=True)
class Coverage:
    """How often an interval over ``n_seeds`` drawn seeds holds the mean of all of them."""

    truth: float  # the mean over every seed run
    seeds_run: int
    n_seeds: int  # seeds per drawn interval
    covered: float  # share of the drawn intervals that hold ``truth``
    point_intervals: float  # share of zero width (every drawn seed equal, e.g. no gap in any)
    seeds_above_0: float  # share of every seed run whose value is above zero


def subsets(seeds_run: int, n_seeds: int, draws: int = DRAWS, seed: int = 0,
            ) -> npt.NDArray[np.intp]:  # fmt: skip
    """``draws`` rows of ``n_seeds`` distinct positions in ``range(seeds_run)``, reproducibly."""
    if not 2 <= n_seeds < seeds_run:
        raise ValueError(f"calibration: n_seeds must be at least 2 and below the {seeds_run} "
                         f"seeds run (got {n_seeds}); run more seeds")  # fmt: skip
    if draws < 1:
        raise ValueError(f"calibration: draws must be at least 1 (got {draws})")
    order = np.random.default_rng(seed).random((draws, seeds_run)).argsort(axis=1)
    return order[:, :n_seeds]


def coverage(values: Sequence[float] | npt.NDArray[np.float64], n_seeds: int,
             within: tuple[float, float] = UNBOUNDED, draws: int = DRAWS, seed: int = 0,
             ) -> Coverage:  # fmt: skip
    """The coverage of ``mean_interval`` over ``n_seeds`` of ``values`` (one per seed run), cut
    to ``within`` as ``summarize`` cuts it (``natural_range`` of the metric)."""
    data = _finite(values)
    truth = float(data.mean())
    held = point = 0
    for rows in subsets(len(data), n_seeds, draws, seed):
        interval = mean_interval(data[rows], within)
        held += interval.low <= truth <= interval.high
        point += interval.low == interval.high
    return Coverage(truth, len(data), n_seeds, held / draws, point / draws,
                    float((data > 0).mean()))  # fmt: skip


def coverage_table(runs: pd.DataFrame, metric: str, by: Sequence[str], n_seeds: int,
                   draws: int = DRAWS, seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """One row per group of ``by`` (each group one row per seed): the ``Coverage`` of its
    ``metric`` at ``n_seeds``, cut to the metric's ``natural_range``."""
    rows = []
    for key, group in runs.groupby(list(by), sort=True):
        keys = key if isinstance(key, tuple) else (key,)
        found = coverage(group[metric].to_numpy(dtype=np.float64), n_seeds,
                         natural_range(metric), draws, seed)  # fmt: skip
        rows.append({**dict(zip(by, keys, strict=True)), **found.__dict__})
    return pd.DataFrame(rows).set_index(list(by))


@dataclass(frozen=True)
class VerdictShares:
    """What paired verdicts over ``n_seeds`` drawn seeds say, against every seed run's verdict."""

    all_seeds: str  # the verdict of every seed run (``summary.direction``)
    mean: float  # every seed run's mean difference
    shares: dict[str, float]  # each verdict's share of the drawn subsets: below, none, above

    @property
    def agree(self) -> float:
        """The share of drawn verdicts that match every seed's."""
        return self.shares[self.all_seeds]

    @property
    def opposite(self) -> float:
        """The share naming the direction opposite to the sign of every seed's mean (a wrong
        "less" or "more"; with no difference shown by every seed, the one against its mean)."""
        below, _, above = self.shares
        return self.shares[above] if self.mean < 0 else self.shares[below]


def verdict_shares(differences: Sequence[float] | npt.NDArray[np.float64], metric: str,
                   n_seeds: int, draws: int = DRAWS, seed: int = 0) -> VerdictShares:  # fmt: skip
    """Of ``draws`` subsets of ``n_seeds`` paired differences (one per seed run), the share whose
    verdict (``summary.direction``) is each word: below zero, ``no difference shown``, above zero
    (``summary.words``), beside the verdict of every seed run."""
    data = _finite(differences)
    below, above = words(metric)
    counts = dict.fromkeys((below, NO_DIFFERENCE, above), 0)
    for rows in subsets(len(data), n_seeds, draws, seed):
        counts[direction(mean_interval(data[rows]), metric)] += 1
    return VerdictShares(direction(mean_interval(data), metric), float(data.mean()),
                         {word: count / draws for word, count in counts.items()})  # fmt: skip


def _finite(values: Sequence[float] | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or not np.isfinite(data).all():
        raise ValueError("calibration: the values must be one finite number per seed run")
    return data

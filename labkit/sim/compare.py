"""Strategies side by side over links and seeds, with intervals: the lessons' comparisons.

``compare`` runs each labelled strategy on each link for every seed (through
``labkit.sim.batch.simulate_many``) and returns one tidy row per run with the metrics and two
per-call rates (``Metrics.gap_ms_per_audio_s`` and ``onset_gaps_per_answer``). ``intervals``
gives each (link, strategy)'s mean and 95% interval over seeds; ``versus`` the paired difference
of each strategy from a baseline on the same seeds (labkit/sim/summary.py says why paired).
See notebooks/01_why_tiny_packets_jitter.ipynb.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from labkit.sim.batch import Task, score_many, simulate_many
from labkit.sim.summary import direction, mean_interval, natural_range, paired_difference
from labkit.sim.sweep_runs import one_or_many, seed_tuple
from labkit.traces import Trace

Contender = tuple[str, float] | tuple[str, float, dict[str, Any]]  # name, threshold[, options]


def compare(
    trace: Trace,
    contenders: Mapping[str, Contender],
    links: str | Sequence[str] = ("tcp", "jitter"),
    seeds: int | Iterable[int] = range(20),
    playout: str = "fifo",
    link_params: dict[str, float] | None = None,
    playout_params: dict[str, Any] | None = None,
    jobs: int = 1,
    progress: bool = True,
    mos: tuple[str, ...] = (),
) -> pd.DataFrame:
    """One row per link, strategy label and seed: every metric plus the two rates, and with
    ``mos`` (concealment modes, e.g. ``("plc", "silence")``) a ``mos_lqo_<mode>`` column each."""
    seed_list = seed_tuple(seeds)  # a count, or the seeds; checked as a sweep checks them
    if not seed_list:
        raise ValueError("compare: no seeds given")
    meta, tasks = [], []
    for link in one_or_many(links):
        for label, spec in contenders.items():
            name, threshold = spec[0], spec[1]
            options = spec[2] if len(spec) > 2 else {}
            for seed in seed_list:
                meta.append((link, label, seed))
                tasks.append(Task.of("trace", name, threshold, link, playout, seed, link_params,
                                     playout_params, options))  # fmt: skip
    if mos:
        scored = score_many({"trace": trace}, tasks, mos, jobs=jobs, progress=progress)
    else:
        scored = [(m, {}) for m in simulate_many({"trace": trace}, tasks, jobs, progress)]
    rows = []
    for (link, label, seed), (metrics, scores) in zip(meta, scored, strict=True):
        rows.append({"link": link, "strategy": label, "seed": seed, **metrics.as_row(),
                     **{f"mos_lqo_{mode}": score for mode, score in scores.items()}})  # fmt: skip
    return pd.DataFrame(rows)


def intervals(frame: pd.DataFrame, metric: str,
              by: Sequence[str] = ("link", "strategy")) -> pd.DataFrame:  # fmt: skip
    """Per group: the mean of ``metric`` over seeds, its 95% interval, and in how many seeds it
    was above zero."""
    rows = []
    for key, group in frame.groupby(list(by), sort=False):
        values = group[metric].to_numpy(dtype=float)
        interval = mean_interval(values, natural_range(metric))
        keys = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, keys, strict=True)), "mean": interval.mean,
                     "ci_low": interval.low, "ci_high": interval.high,
                     "seeds": interval.n, "seeds_above_0": int((values > 0).sum())})  # fmt: skip
    return pd.DataFrame(rows).set_index(list(by))


def versus(frame: pd.DataFrame, metric: str, baseline: str) -> pd.DataFrame:
    """Per link and strategy: ``metric`` minus the baseline's, paired by seed (mean and 95%
    interval), and whether the interval lies wholly below or above zero, in the metric's words
    (``labkit.sim.summary.direction``: less / more silence, fewer / more gaps)."""
    rows = []
    for link, runs in frame.groupby("link", sort=False):
        for label in runs["strategy"].unique():
            if label == baseline:
                continue
            pair = runs[runs["strategy"].isin([label, baseline])]
            interval = paired_difference(pair, metric, "strategy", label, baseline)
            verdict = direction(interval, metric)
            rows.append({"link": link, "strategy": label, "difference": interval.mean,
                         "ci_low": interval.low, "ci_high": interval.high,
                         "verdict": verdict})  # fmt: skip
    return pd.DataFrame(rows).set_index(["link", "strategy"])

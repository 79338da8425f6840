"""Where each verdict flips: the lab's claims re-checked while one assumption varies.

The world's parameters are assumptions (no public data pins them down): the path's mean delay and
correlation time, the per-message cost, how often and how long the sending loop stalls, and how
fast the model generates audio. ``sensitivity`` varies one at a time around the defaults and
re-evaluates each ``Claim`` with its 95% interval over seeds: ``yes``, ``no`` or ``uncertain``.
A claim that reads ``yes`` at every value holds whatever that assumption; a row that changes
colour shows where it flips. See notebooks/06_which_explanation_survives.ipynb.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from labkit.sim.batch import Task, simulate_many
from labkit.sim.hypotheses import (
    CLEAN_GAP_MS_PER_AUDIO_S,
    CLEAN_ONSET_GAPS_PER_ANSWER,
    NO,
    STUTTER_ONSET_GAPS_PER_ANSWER,
    UNCERTAIN,
    YES,
    judged_trace,
)
from labkit.sim.links import DEFAULT_LINK
from labkit.sim.summary import NON_NEGATIVE, Interval, mean_interval
from labkit.traces import Trace
from labkit.traces.retime import at_generation_speed

SPEED = "speed_x_real_time"  # not a link parameter: the trace is retimed
P99_OVER_MEAN = 3.0  # the path's p99 delay follows its mean


@dataclass(frozen=True)
class Parameter:
    """One assumption and the values tried (the default among them)."""

    name: str
    label: str
    values: tuple[float, ...]
    default: float


PARAMETERS = (
    Parameter("mean_ms", "path: mean one-way delay (ms; p99 = 3 x mean)",
              (20.0, 50.0, 100.0, 200.0), 50.0),
    Parameter("tau_ms", "path: correlation time of its delay (ms)",
              (10.0, 100.0, 500.0, 2000.0), 500.0),
    Parameter("send_cost_ms", "sender: cost of each message (ms)",
              (0.01, 0.05, 0.3, 1.0), 0.05),
    Parameter("stall_rate_per_s", "sender: loop stalls per second", (0.0, 0.5, 2.0, 5.0), 0.5),
    Parameter("stall_ms", "sender: mean stall length (ms)", (5.0, 20.0, 50.0, 150.0), 20.0),
    Parameter(SPEED, "model: generation speed (x real time)", (1.0, 1.25, 1.6, 2.5, 4.0), 0.0),
)  # fmt: skip


@dataclass(frozen=True)
class Run:
    """A strategy the claims read: label, name, threshold and options."""

    label: str
    strategy: str
    threshold_ms: float
    options: dict[str, Any]


RUNS = (
    Run("forward, a mark per delta", "forward", 0.0, {"mark_every_ms": None}),
    Run("the report's 50 ms rechunk", "original_report", 50.0, {}),
    Run("preroll 100 ms", "preroll", 100.0, {}),
    Run("paced, 100 ms lead", "paced", 100.0, {}),
)


@dataclass(frozen=True)
class Claim:
    """A sentence the lessons state, and how to test it on per-seed metrics (a frame with one
    row per seed and a column per run label: onset gaps per answer, gap ms per audio s)."""

    text: str
    judge: Callable[[pd.DataFrame, pd.DataFrame], tuple[str, Interval]]


def _stutters(label: str) -> Callable[[pd.DataFrame, pd.DataFrame], tuple[str, Interval]]:
    def judge(onset: pd.DataFrame, gaps: pd.DataFrame) -> tuple[str, Interval]:
        interval = mean_interval(onset[label].to_numpy(), NON_NEGATIVE)
        return _side(interval, STUTTER_ONSET_GAPS_PER_ANSWER, above=True), interval
    return judge


def _clean(label: str) -> Callable[[pd.DataFrame, pd.DataFrame], tuple[str, Interval]]:
    def judge(onset: pd.DataFrame, gaps: pd.DataFrame) -> tuple[str, Interval]:
        on = mean_interval(onset[label].to_numpy(), NON_NEGATIVE)
        gap = mean_interval(gaps[label].to_numpy(), NON_NEGATIVE)
        if on.high < CLEAN_ONSET_GAPS_PER_ANSWER and gap.high < CLEAN_GAP_MS_PER_AUDIO_S:
            return YES, gap
        if on.low >= CLEAN_ONSET_GAPS_PER_ANSWER or gap.low >= CLEAN_GAP_MS_PER_AUDIO_S:
            return NO, gap
        return UNCERTAIN, gap
    return judge


def _less_silence(better: str, worse: str) -> Callable[[pd.DataFrame, pd.DataFrame],
                                                       tuple[str, Interval]]:  # fmt: skip
    """yes when ``better`` leaves less silence in gaps (ms per s of audio) than ``worse``."""

    def judge(onset: pd.DataFrame, gaps: pd.DataFrame) -> tuple[str, Interval]:
        difference = mean_interval((gaps[better] - gaps[worse]).to_numpy())
        if difference.mean == 0 and difference.low == difference.high:
            return NO, difference  # identical in every seed: not less
        return _side(difference, 0.0, above=False), difference
    return judge


def _side(interval: Interval, threshold: float, *, above: bool) -> str:
    """yes when the interval lies wholly on the claimed side of ``threshold``."""
    if above:
        return YES if interval.low >= threshold else (NO if interval.high < threshold else
                                                     UNCERTAIN)  # fmt: skip
    return YES if interval.high < threshold else (NO if interval.low >= threshold else UNCERTAIN)


CLAIMS = (
    Claim("forwarding each delta stutters at word starts", _stutters(RUNS[0].label)),
    Claim("the report's 50 ms rechunk is clean", _clean(RUNS[1].label)),
    Claim("the report's rechunk leaves less silence in gaps than forwarding",
          _less_silence(RUNS[1].label, RUNS[0].label)),
    Claim("a 100 ms pre-roll is clean", _clean(RUNS[2].label)),
    Claim("a 100 ms pre-roll leaves less silence in gaps than forwarding",
          _less_silence(RUNS[2].label, RUNS[0].label)),
    Claim("pacing (100 ms lead) leaves more silence in gaps than forwarding",
          _less_silence(RUNS[0].label, RUNS[3].label)),
)  # fmt: skip


def judge_claims(onset: pd.DataFrame, gaps: pd.DataFrame,
                 claims: Sequence[Claim] = CLAIMS) -> list[dict[str, Any]]:  # fmt: skip
    """Each claim's result and interval on per-seed metrics (a row per seed, a column per run)."""
    rows = []
    for claim in claims:
        result, interval = claim.judge(onset, gaps)
        rows.append({"claim": claim.text, "result": result, "mean": interval.mean,
                     "ci_low": interval.low, "ci_high": interval.high})  # fmt: skip
    return rows


def _setting(trace: Trace, parameter: Parameter, value: float,
             traces: dict[str, Trace]) -> tuple[str, dict[str, float] | None]:  # fmt: skip
    """The trace key and link parameters of one point of the analysis."""
    if parameter.name == SPEED:
        key = f"speed {value:g}"
        traces[key] = at_generation_speed(trace, value)
        return key, None
    if parameter.name == "mean_ms":
        return "base", {"mean_ms": value, "p99_ms": P99_OVER_MEAN * value}
    return "base", {parameter.name: value}


def sensitivity(trace: Trace, seeds: int | Iterable[int],
                parameters: Sequence[Parameter] = PARAMETERS, link: str = DEFAULT_LINK,
                playout: str = "fifo", runs: Sequence[Run] = RUNS,
                claims: Sequence[Claim] = CLAIMS, jobs: int = 1, progress: bool = True,
                ) -> pd.DataFrame:  # fmt: skip
    """One row per parameter, value and claim: ``result`` (yes / no / uncertain) and the
    interval it was judged on. Each parameter varies alone; the others keep their defaults."""
    seed_list = judged_trace(trace, seeds)
    traces: dict[str, Trace] = {"base": trace}
    points, tasks = [], []
    for parameter in parameters:
        for value in parameter.values:
            key, params = _setting(trace, parameter, value, traces)
            points.append((parameter, value))
            tasks += [Task.of(key, run.strategy, run.threshold_ms, link, playout, seed, params,
                              None, run.options) for run in runs for seed in seed_list]
    metrics = iter(simulate_many(traces, tasks, jobs=jobs, progress=progress))
    rows = []
    for parameter, value in points:
        onset: dict[str, list[float]] = {}
        gaps: dict[str, list[float]] = {}
        for run in runs:
            for _ in seed_list:
                m = next(metrics)
                onset.setdefault(run.label, []).append(m.onset_gaps_per_answer)
                gaps.setdefault(run.label, []).append(m.gap_ms_per_audio_s)
        for row in judge_claims(pd.DataFrame(onset), pd.DataFrame(gaps), claims):
            rows.append({"parameter": parameter.name, "label": parameter.label, "value": value,
                         "default": value == parameter.default, **row})  # fmt: skip
    return pd.DataFrame(rows)

"""What a fleet of recorded calls says: each call's rates, pooled over calls with a 95% interval.

``summarize`` (labkit/sim/summary.py) gives one trace's means over seeds: a seed draws the link
and the sending loop, never the model's delivery, so its interval says nothing about the next
call. Over many recorded calls, the calls are the sample. ``summarize_fleet`` takes each run's
rates that compare calls of any length (``Metrics.gap_ms_per_audio_s``: ms of silence in gaps
per second of the model's audio; ``Metrics.onset_gaps_per_answer``: word-start gaps per answer),
with the mean time to first audio (and MOS when scored), averages each call over its seeds, then
gives per setting (strategy, threshold_ms, link, playout):

- ``n_calls``, ``seeds_per_call`` and ``audio_min`` (the fleet's audio, in minutes);
- for each rate: the mean over calls with its 95% t interval over calls (cut to what the rate can
  be, as in ``summarize``; a call with nothing to divide by, e.g. no answer, is left out of that
  rate), the median and 90th-percentile call, and for the two gap rates ``_calls_above_0``, the
  calls with any (for a team, often the number that matters: how many callers heard a gap);
- ``worst_call``: the call with the most silence in gaps per second of audio, the one to hear;
- against a baseline strategy (forwarding) in the same call, threshold and world: each call's
  difference in the two gap rates, its mean and interval over calls (never cut), and the
  verdict word of ``summary.direction`` ("less", "fewer", "more", "no difference shown").

The interval is about calls like these, drawn the same way (the t interval's 95% is nominal, as
in ``summarize``: a rate that is zero in most calls and long in a few needs many calls). Seed k
draws the same world for every call (rows reproduce by seed), so with few seeds the calls share
their link's luck: run several seeds. Intervals and paired verdicts are explained in
notebooks/02_threshold_sweep.ipynb, how far they hold where few draws carry a mean in
notebooks/09_how_far_twenty_seeds_go.ipynb; README.md ("A fleet of calls") shows the command.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from labkit.outbound import threshold_meaning
from labkit.sim.summary import (
    NOISE,
    Interval,
    direction,
    mean_interval,
    natural_range,
    paired_difference,
    require_metrics,
)

FLEET_SETTING_COLUMNS = ("strategy", "threshold_ms", "link", "playout")
WORLD_COLUMNS = ["threshold_ms", "link", "playout"]  # a setting but its strategy: what pairs
CALL_COLUMN = "trace"
BASELINE_STRATEGY = "forward"
MS_PER_MIN = 60_000.0
TAIL_PERCENTILE = 90
GAP_RATES = ("gap_ms_per_audio_s", "onset_gaps_per_answer")  # Metrics' rates; compared
OTHER_RATES = ("mean_time_to_first_audio_ms", "mos_lqo")  # pooled where the runs have them
WORST_BY = "gap_ms_per_audio_s"


def per_call(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (call, setting) of ``runs`` (a sweep's rows): ``n_seeds``, ``audio_min``
    and each rate's mean over the call's seeds (NaN seeds, e.g. no answer, left out)."""
    rates = fleet_rates(runs)
    keys = [CALL_COLUMN, *FLEET_SETTING_COLUMNS]
    require_metrics(runs, (*keys, "seed", "audio_ms", *GAP_RATES), "summarize_fleet")
    columns = runs[[*keys, *rates]].assign(audio_min=runs["audio_ms"] / MS_PER_MIN)
    grouped = columns.groupby(keys, sort=True, dropna=False)
    calls = grouped.mean()
    calls.insert(0, "n_seeds", grouped.size())
    return calls.reset_index()


def fleet_rates(runs: pd.DataFrame) -> list[str]:
    """The rates ``summarize_fleet`` pools for ``runs`` (``mos_lqo`` only when it was scored)."""
    return [*GAP_RATES, *(rate for rate in OTHER_RATES if rate in runs.columns)]


def summarize_fleet(runs: pd.DataFrame, baseline: str = BASELINE_STRATEGY) -> pd.DataFrame:
    """One row per setting of ``runs`` pooled over its calls (the module's docstring lists the
    columns); the comparison columns only when ``runs`` holds ``baseline``."""
    calls = per_call(runs)
    rates = fleet_rates(runs)
    rows = []
    for setting, group in calls.groupby(list(FLEET_SETTING_COLUMNS), sort=True, dropna=False):
        row: dict[str, object] = dict(zip(FLEET_SETTING_COLUMNS, setting, strict=True))
        row["n_calls"] = len(group)
        row["seeds_per_call"] = int(group["n_seeds"].min())
        row["audio_min"] = float(group["audio_min"].sum())
        for rate in rates:
            row.update(_pooled(rate, group[rate].to_numpy(dtype=np.float64)))
        row["worst_call"] = _worst(group)
        rows.append(row)
    fleet = pd.DataFrame(rows)
    if baseline in set(calls["strategy"]):
        for rate in GAP_RATES:
            fleet = fleet.merge(compare_calls(calls, rate, baseline), how="left",
                                on=list(FLEET_SETTING_COLUMNS))  # fmt: skip
    return fleet


def _pooled(rate: str, values: np.ndarray) -> dict[str, object]:
    """A rate over calls: mean and 95% interval, median, tail call, and calls with any of it."""
    known = values[~np.isnan(values)]
    interval = mean_interval(known, natural_range(rate))
    median, tail = np.percentile(known, [50, TAIL_PERCENTILE]) if len(known) else (np.nan,) * 2
    pooled: dict[str, object] = {
        f"{rate}_mean": interval.mean,
        f"{rate}_ci_low": interval.low,
        f"{rate}_ci_high": interval.high,
        f"{rate}_median": float(median),
        f"{rate}_p{TAIL_PERCENTILE}": float(tail),
    }
    if rate in GAP_RATES:  # how many callers heard any
        pooled[f"{rate}_calls_above_0"] = int((known > 0).sum())
    return pooled


def _worst(group: pd.DataFrame) -> str:
    """The call with the most silence in gaps per second of audio (the first by name on a tie);
    empty when no call has any."""
    ranked = group.sort_values([WORST_BY, CALL_COLUMN], ascending=[False, True])
    top = ranked.iloc[0]
    return str(top[CALL_COLUMN]) if top[WORST_BY] > 0 else ""


def compare_calls(calls: pd.DataFrame, rate: str, baseline: str = BASELINE_STRATEGY,
                  ) -> pd.DataFrame:  # fmt: skip
    """Per setting of ``calls`` (``per_call``'s rows): ``rate`` minus the baseline strategy's
    in the same call, threshold, link and playout, as ``<rate>_vs_<baseline>_mean``, ``_ci_low``,
    ``_ci_high`` (over calls; never cut) and ``_verdict``; NaN and empty for the baseline."""
    prefix = f"{rate}_vs_{baseline}"
    known = calls[calls[rate].notna()]  # a call with no value (no answer) pairs with nothing
    rows = []
    for world, group in known.groupby(WORLD_COLUMNS, sort=True, dropna=False):
        base_calls = set(group.loc[group["strategy"] == baseline, CALL_COLUMN])
        for strategy, own in group.groupby("strategy", sort=True):
            row: dict[str, object] = dict(zip(WORLD_COLUMNS, world, strict=True))
            row["strategy"] = strategy
            if strategy == baseline or not base_calls & set(own[CALL_COLUMN]):
                row.update({f"{prefix}_mean": np.nan, f"{prefix}_ci_low": np.nan,
                            f"{prefix}_ci_high": np.nan, f"{prefix}_verdict": ""})  # fmt: skip
            else:
                interval = paired_difference(group, rate, "strategy", strategy, baseline,
                                             pair_on=CALL_COLUMN)  # fmt: skip
                row.update({f"{prefix}_mean": interval.mean, f"{prefix}_ci_low": interval.low,
                            f"{prefix}_ci_high": interval.high,
                            f"{prefix}_verdict": _verdict(interval, rate)})  # fmt: skip
            rows.append(row)
    return pd.DataFrame(rows, columns=[*FLEET_SETTING_COLUMNS, f"{prefix}_mean",
                                       f"{prefix}_ci_low", f"{prefix}_ci_high",
                                       f"{prefix}_verdict"])  # fmt: skip


def _verdict(interval: Interval, rate: str) -> str:
    if np.isnan(interval.low):  # one call, or none: no interval, no verdict
        return ""
    return direction(interval, rate)


def fewest_gaps(fleet: pd.DataFrame, rate: str = WORST_BY) -> pd.DataFrame:
    """Per (link, playout) of ``fleet``: the setting with the lowest mean ``rate`` (the first
    strategy, then threshold, on a tie), with ``as_low_also``: the other strategies that reach
    the same mean somewhere (all of them, where no call has gaps). For the sweep's closing lines;
    a world where no call has a value of ``rate`` has none."""
    mean = f"{rate}_mean"
    known = fleet[fleet[mean].notna()].sort_values([mean, "strategy", "threshold_ms"])
    best = known.groupby(["link", "playout"], sort=True).head(1).sort_values(["link", "playout"])
    also = []
    for _, row in best.iterrows():
        world = known[(known["link"] == row["link"]) & (known["playout"] == row["playout"])]
        tied = world.loc[(world[mean] - row[mean]).abs() <= NOISE, "strategy"]
        also.append(", ".join(sorted(set(tied) - {row["strategy"]})))
    return best.assign(as_low_also=also)


def describe_best(row: pd.Series, rate: str = WORST_BY,
                  baseline: str = BASELINE_STRATEGY) -> str:  # fmt: skip
    """One line about ``fewest_gaps``'s row: the setting, its rate with interval and calls with
    gaps, and its verdict against the baseline where there is one."""
    line = (f"{row['link']}/{row['playout']}: least silence in gaps with "
            f"{_setting_words(str(row['strategy']), float(row['threshold_ms']))}: "
            f"{row[f'{rate}_mean']:.2f} "
            f"[{row[f'{rate}_ci_low']:.2f}, {row[f'{rate}_ci_high']:.2f}] ms per s of audio over "
            f"{row['n_calls']} calls, {row[f'{rate}_calls_above_0']} with gaps")  # fmt: skip
    verdict = row.get(f"{rate}_vs_{baseline}_verdict")
    if isinstance(verdict, str) and verdict:
        line += f"; vs {baseline}: {verdict} ({row[f'{rate}_vs_{baseline}_mean']:+.2f} ms per s)"
    also = row.get("as_low_also")
    if isinstance(also, str) and also:
        line += f"; as low: {also}"
    return line


def _setting_words(strategy: str, threshold_ms: float) -> str:
    """``preroll at 160 ms (pre-roll held per answer)``: what the threshold is to the strategy,
    or that it ignores it (its rows repeat at every threshold)."""
    try:
        meaning = threshold_meaning(strategy)
    except ValueError:  # not a labkit strategy (a user's own, pooled by name)
        return f"{strategy} at {threshold_ms:g} ms"
    if meaning is None:
        return f"{strategy} (it ignores the threshold)"
    return f"{strategy} at {threshold_ms:g} ms ({re.sub(r' *[(][^()]*[)]$', '', meaning)})"

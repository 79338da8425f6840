"""Which explanation of the reported stutter survives the report's own three observations.

The original report (PR #1926, with issue #1906) observed three things:

1. forwarding every model delta as it comes, one ``media`` and one ``mark`` each (the Python
   SDK's Twilio example, shared/reference/upstream_before_pr1926_twilio_handler.py), stutters at
   word starts ("h-h-hello");
2. the JavaScript SDK's example, which also forwards every delta with a mark
   (``TwilioRealtimeTransportLayer``), sounds clean;
3. buffering into 50 ms messages (the report's code, ``original_report``) cured it.

A hypothesis is a model of the world the lab can switch on: Twilio's playout (labkit/sim/playout.py)
and what differs between the Python and the JavaScript sender (their event loops,
labkit/sim/sender_loop.py). For each hypothesis and link, ``predictions`` simulates the three
senders over many seeds and says whether the hypothesis predicts each observation: ``yes`` or
``no`` when the 95% interval of the mean (labkit/sim/summary.py) lies wholly on one side of the
observation's threshold, ``uncertain`` otherwise. A hypothesis is consistent with the report
when it predicts all three. (e), spurious interruptions at call start, is not modelled: the lab
has no model of the Realtime server's voice activity detection.

"Stutter" and "clean" are thresholds on metrics (constants below, in one place): a stutter is
at least one gap every other answer within its first 200 ms (``ONSET_MS``); clean is fewer than
one such gap in ten answers and under 2 ms of gaps per second of audio.
See notebooks/06_which_explanation_survives.ipynb.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from labkit.sim.batch import Task, simulate_many
from labkit.sim.links import TcpLink
from labkit.sim.summary import NON_NEGATIVE, Interval, mean_interval
from labkit.sim.sweep_runs import one_or_many, seed_tuple
from labkit.traces import Trace

STUTTER_ONSET_GAPS_PER_ANSWER = 0.5  # at least one gap in the first 200 ms of every other answer
CLEAN_ONSET_GAPS_PER_ANSWER = 0.1  # fewer than one in ten answers...
CLEAN_GAP_MS_PER_AUDIO_S = 2.0  # ...and under 2 ms of gaps per second of audio
YES, NO, UNCERTAIN = "yes", "no", "uncertain"

PYTHON_LOOP: dict[str, float] = dict(TcpLink.sender_defaults)  # the tcp link's sender: Python
JS_LOOP: dict[str, float] = {  # Node's loop: no stalls assumed, cheaper sends
    "lateness_ms": 0.1,
    "stall_rate_per_s": 0.0,
    "stall_ms": 0.0,
    "send_cost_ms": 0.01,
}


@dataclass(frozen=True)
class Observation:
    """One of the report's observations: who sends, and what was heard (stutter or clean)."""

    key: str
    text: str
    runtime: str  # "python" or "js": whose event loop sends
    strategy: str
    threshold_ms: float
    options: dict[str, Any]
    heard: str  # "stutter" or "clean"


OBSERVATIONS = (
    Observation("1 Python example stutters",
                "forwarding each delta (media + mark) from Python stutters at word starts",
                "python", "forward", 0.0, {"mark_every_ms": None}, "stutter"),
    Observation("2 JS example is clean",
                "the JS SDK, also forwarding each delta with a mark, sounds clean",
                "js", "forward", 0.0, {"mark_every_ms": None}, "clean"),
    Observation("3 50 ms rechunk cures it",
                "the report's code (400 B buffer, 50 ms loop) sounds clean",
                "python", "original_report", 50.0, {}, "clean"),
)  # fmt: skip


@dataclass(frozen=True)
class Hypothesis:
    """A model of why forwarding stutters: Twilio's playout, and whether the Python sender's
    loop differs from Node's (``python_stalls``: only Python's loop stalls)."""

    key: str
    text: str
    evidence: str
    playout: str
    python_stalls: bool = False
    playout_params: dict[str, Any] = field(default_factory=dict)

    def loop(self, runtime: str, overrides: dict[str, float] | None = None) -> dict[str, float]:
        """The sending loop's parameters for ``runtime`` under this hypothesis (``overrides``
        apply to every loop that stalls, e.g. from a sensitivity analysis)."""
        stalls = runtime == "python" or not self.python_stalls
        base = dict(PYTHON_LOOP if stalls else JS_LOOP)
        for key, value in (overrides or {}).items():
            if stalls or not key.startswith("stall"):
                base[key] = value
        return base


HYPOTHESES = (
    Hypothesis("a fifo", "Twilio's queue runs dry (FIFO playout, as documented)",
               "Twilio docs: media is buffered and played in the order received", "fifo"),
    Hypothesis("b frame clock, pad", "a 20 ms frame clock pads a partial frame when the queue "
               "is dry", "G.711 travels in 20 ms RTP frames (RFC 3551); Twilio documents "
               "no padding", "frame_clock"),
    Hypothesis("b' frame clock, skip", "a 20 ms frame clock skips the tick when less than a "
               "frame is queued", "as (b); the carrier conceals the skipped frame",
               "frame_clock_skip"),
    Hypothesis("c pad every message", "every message is padded to whole 20 ms frames",
               "none; the extreme form of (b)", "pad_every_message"),
    Hypothesis("p prefetch", "Twilio re-buffers 60 ms after running dry (not told where "
               "answers end)", "a common receiver policy (PJSIP); Twilio documents no jitter "
               "buffer", "prefetch"),
    Hypothesis("d Python stalls (fifo)", "only the Python sender's event loop stalls",
               "Python and Node differ in their loops; the SDKs differ in per-event work",
               "fifo", python_stalls=True),
    Hypothesis("d+b Python stalls (frame clock)", "(d) with (b)'s frame clock", "as (b), (d)",
               "frame_clock", python_stalls=True),
)  # fmt: skip


def judged_trace(trace: Trace, seeds: int | Iterable[int]) -> tuple[int, ...]:
    """The seeds of a judgement on ``trace``; a ValueError when there is nothing to judge."""
    if not trace.audio_ms:
        raise ValueError("the trace has no audio: no observation can be judged on it")
    seed_list = seed_tuple(seeds)
    if not seed_list:
        raise ValueError("no seeds given: a judgement needs at least one (20 give its interval)")
    return seed_list


def observation_runs(
    trace: Trace, hypotheses: Sequence[Hypothesis] = HYPOTHESES,
    links: str | Sequence[str] = ("tcp",), seeds: int | Iterable[int] = range(20),
    observations: Sequence[Observation] = OBSERVATIONS,
    link_params: dict[str, float] | None = None, loop_overrides: dict[str, float] | None = None,
    jobs: int = 1, progress: bool = True,
) -> pd.DataFrame:  # fmt: skip
    """One row per hypothesis, link, observation and seed: the two metrics predictions read.
    Runs shared by several hypotheses (same sender and playout) are simulated once."""
    meta, tasks = [], []
    seed_list = judged_trace(trace, seeds)
    for hypothesis in hypotheses:
        for link in one_or_many(links):
            for observation in observations:
                params = {**(link_params or {}),
                          **hypothesis.loop(observation.runtime, loop_overrides)}  # fmt: skip
                for seed in seed_list:
                    meta.append((hypothesis.key, link, observation.key, seed))
                    tasks.append(Task.of("trace", observation.strategy, observation.threshold_ms,
                                         link, hypothesis.playout, seed, params,
                                         hypothesis.playout_params, observation.options))
    metrics = simulate_many({"trace": trace}, tasks, jobs=jobs, progress=progress)
    rows = [{"hypothesis": h, "link": link, "observation": o, "seed": seed,
             "onset_gaps_per_answer": m.onset_gaps_per_answer,
             "gap_ms_per_audio_s": m.gap_ms_per_audio_s}
            for (h, link, o, seed), m in zip(meta, metrics, strict=True)]  # fmt: skip
    return pd.DataFrame(rows)


def predict(heard: str, onset: Interval, gaps: Interval) -> str:
    """Does a run with these intervals reproduce what was ``heard``? yes / no / uncertain."""
    if heard == "stutter":
        if onset.low >= STUTTER_ONSET_GAPS_PER_ANSWER:
            return YES
        if onset.high < STUTTER_ONSET_GAPS_PER_ANSWER:
            return NO
        return UNCERTAIN
    if onset.high < CLEAN_ONSET_GAPS_PER_ANSWER and gaps.high < CLEAN_GAP_MS_PER_AUDIO_S:
        return YES
    if onset.low >= CLEAN_ONSET_GAPS_PER_ANSWER or gaps.low >= CLEAN_GAP_MS_PER_AUDIO_S:
        return NO
    return UNCERTAIN


def predictions(runs: pd.DataFrame, observations: Sequence[Observation] = OBSERVATIONS,
                ) -> pd.DataFrame:  # fmt: skip
    """Per hypothesis, link and observation: the metrics' means and intervals, and the
    prediction (``observation_runs`` of several hypotheses and links, concatenated)."""
    heard = {observation.key: observation.heard for observation in observations}
    rows = []
    for (hypothesis, link, key), group in runs.groupby(["hypothesis", "link", "observation"],
                                                       sort=False):  # fmt: skip
        onset = mean_interval(group["onset_gaps_per_answer"].to_numpy(), NON_NEGATIVE)
        gaps = mean_interval(group["gap_ms_per_audio_s"].to_numpy(), NON_NEGATIVE)
        rows.append({"hypothesis": hypothesis, "link": link, "observation": key,
                     "heard": heard[str(key)], "seeds": onset.n,
                     "onset gaps per answer": onset.mean, "onset ci": (onset.low, onset.high),
                     "gap ms per audio s": gaps.mean, "gap ci": (gaps.low, gaps.high),
                     "predicted": predict(heard[str(key)], onset, gaps)})  # fmt: skip
    return pd.DataFrame(rows)


def verdicts(predicted: pd.DataFrame) -> pd.DataFrame:
    """Per hypothesis and link: ``consistent`` (predicts all three), ``ruled out`` (predicts
    the opposite of at least one; which ones are listed) or ``open`` (some uncertain)."""
    rows = []
    for (hypothesis, link), group in predicted.groupby(["hypothesis", "link"], sort=False):
        failed = group.loc[group["predicted"] == NO, "observation"].tolist()
        open_ = group.loc[group["predicted"] == UNCERTAIN, "observation"].tolist()
        verdict = "ruled out" if failed else ("open" if open_ else "consistent")
        rows.append({"hypothesis": hypothesis, "link": link, "verdict": verdict,
                     "contradicts": ", ".join(o.split(" ")[0] for o in failed) or "-",
                     "uncertain": ", ".join(o.split(" ")[0] for o in open_) or "-"})  # fmt: skip
    return pd.DataFrame(rows)

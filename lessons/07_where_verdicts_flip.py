# %% [markdown]
# # 07 · Where the verdicts flip
#
# **Question.** Every verdict of lessons 01-06 rests on assumptions that no public data pins
# down: the path's mean delay and how fast it drifts, what each message costs the sender, how
# often and how long the sender's event loop stalls, and above all how fast the model generates
# audio. Which verdicts hold whatever those are, and where does each one flip?
#
# `labkit.sim.sensitivity` varies one assumption at a time around the defaults of the `tcp` world
# (Twilio as documented, FIFO playout) and re-judges six claims on `tiny_deltas_call`
# (**synthetic**: the report's logged 20-60 byte sizes, delivered at an assumed 1.5-3x real time),
# each with twenty seeds and the same rule as before: `yes` or `no` only when the 95% interval
# says so; then the same grid over two hundred seeds, recorded and checked in CI (four minutes of
# runs). The playout is varied separately, after the grid: FIFO, lesson 06's frame clock (b) and
# prefetch (p), at the defaults and at generation in real time, over a hundred seeds.

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from labkit.plots.sensitivity import verdict_grid
from labkit.sim import recorded_grid
from labkit.sim.batch import Task, simulate_many
from labkit.sim.hypotheses import (
    CLEAN_GAP_MS_PER_AUDIO_S,
    CLEAN_ONSET_GAPS_PER_ANSWER,
    HYPOTHESES,
    OBSERVATIONS,
    STUTTER_ONSET_GAPS_PER_ANSWER,
    observation_runs,
    predict,
    predictions,
    verdicts,
)
from labkit.sim.links import make_world
from labkit.sim.sensitivity import CLAIMS, PARAMETERS, RUNS, SPEED, Claim, judge_claims, sensitivity
from labkit.sim.summary import mean_interval
from labkit.traces import read, shipped
from labkit.traces.retime import at_generation_speed, delivery_speed

notebook_started = time.perf_counter()
trace = read(shipped("tiny_deltas_call"))
speeds = [delivery_speed(trace, key) for key in trace.items]
print(f"the trace's own answers arrive at {min(speeds):.1f}-{max(speeds):.1f}x real time "
      "(the generator's assumption, labkit/synth/catalog.py: 1.5-3x)")
assert min(speeds) >= 1.5 and max(speeds) <= 3.0
display(pd.DataFrame([{"assumption": p.label, "values tried": ", ".join(f"{v:g}" for v in p.values),
                       "default": "the trace's own" if p.default == 0 else f"{p.default:g}"}
                      for p in PARAMETERS]))
display(pd.DataFrame([{"run": r.label, "strategy": r.strategy, "threshold (ms)": r.threshold_ms}
                      for r in RUNS]))

# %% [markdown]
# ## The grid
#
# Each column of a panel is one value of that panel's assumption (the default outlined); each row
# a claim. Green: the claim holds there; red: it is false there; grey: twenty seeds cannot tell.
# The generation speed is varied by retiming the trace
# (`labkit.traces.retime.at_generation_speed`: every answer delivered at that speed, the shape
# of its timing kept). The same runs also judge a seventh claim, read in the playout section
# below and not drawn here: "forwarding each delta is clean".

# %%
def forward_is_clean(onset, gaps):
    """Lesson 06's 'clean' (labkit.sim.hypotheses.predict) applied to forwarding."""
    on, gap = (mean_interval(frame[RUNS[0].label].to_numpy()) for frame in (onset, gaps))
    return predict("clean", on, gap), gap


FORWARD_CLEAN = Claim("forwarding each delta is clean", forward_is_clean)
grid = sensitivity(trace, range(20), claims=(*CLAIMS, FORWARD_CLEAN),
                   jobs=2)  # ~30 s: a progress bar
verdict_grid(grid, [claim.text for claim in CLAIMS],
             title="Over 20 seeds: where each claim holds (green), is false (red) or cannot be "
                   "told (grey); default values outlined")
plt.show()

# %% [markdown]
# The same results as a table: for each claim, its verdict at the defaults and every value of
# every assumption where the verdict differs from it.

# %%
at_default = (grid[grid["default"]].groupby("claim")["result"]
              .agg(lambda r: r.mode().iloc[0]))
flips = []
for claim in (c.text for c in CLAIMS):
    rows = grid[grid["claim"] == claim]
    changed = rows[rows["result"] != at_default[claim]]
    flips.append({"claim": claim, "at the defaults": at_default[claim],
                  "differs at": "; ".join(f"{r.label} = {r.value:g}: {r.result}"
                                          for r in changed.itertuples()) or "nowhere"})
with pd.option_context("display.max_colwidth", None):  # every value, not cut at 50 characters
    display(pd.DataFrame(flips).set_index("claim"))

# %% [markdown]
# ## The same grid over two hundred seeds
#
# Twenty seeds leave about a fifth of the cells grey, and where gaps are rare a twenty-seed
# "cannot tell" can hide a real difference (lesson 09). Two hundred seeds take about four minutes
# on two cores, too long to wait for here, so the lab records that grid once
# (`labkit.sim.recorded_grid`: `data/results/verdict_grid_200_seeds.csv`, with what made it in the
# `.json` beside it) and CI recomputes it on every change (`tests/test_recorded_grid.py`): the
# figure below is what the code computes, not a copy that can go stale. The table lists every cell
# where the two grids differ, with the interval its 200-seed verdict was judged on: gaps at word
# starts per answer for "stutters", silence in gaps (ms per second of audio) for "is clean", and
# the paired difference in that silence for "less" and "more".

# %%
print(recorded_grid.provenance()["made_by"], "|", recorded_grid.provenance()["checked_by"])
grid200 = recorded_grid.load()
verdict_grid(grid200, [claim.text for claim in CLAIMS],
             title="Over 200 seeds: where each claim holds (green), is false (red) or cannot be "
                   "told (grey); default values outlined")
plt.show()
drawn = grid[grid["claim"].isin(grid200["claim"])]
both = drawn.merge(grid200, on=["parameter", "value", "claim"], suffixes=(" (20)", " (200)"))
order = {claim.text: k for k, claim in enumerate(CLAIMS)}
changed = both[both["result (20)"] != both["result (200)"]].sort_values(
    "claim", key=lambda claims: claims.map(order), kind="stable")  # parameters stay in order
judged_on = changed.apply(
    lambda r: f"{r['mean (200)']:.3g} [{r['ci_low (200)']:.3g}, {r['ci_high (200)']:.3g}]", axis=1)
display(changed.assign(**{"interval judged, 200 seeds": judged_on})
        .rename(columns={"label (20)": "assumption", "result (20)": "20 seeds",
                         "result (200)": "200 seeds"})
        .set_index(["claim", "assumption", "value"])
        [["20 seeds", "200 seeds", "interval judged, 200 seeds"]])
uncertain = {n: int((g["result"] == "uncertain").sum()) for n, g in (("20", drawn),
                                                                    ("200", grid200))}
print(f"cells twenty seeds cannot tell: {uncertain['20']}; two hundred: {uncertain['200']}")

# %%
# Two hundred seeds only decide what twenty could not: no yes became a no, or a no a yes.
assert len(both) == len(grid200) == len(drawn)
assert (changed["result (20)"] == "uncertain").all(), changed
assert 0.15 < uncertain["20"] / len(drawn) < 0.25  # "about a fifth"
assert uncertain["200"] < uncertain["20"]

# %% [markdown]
# ## What the grid says, over two hundred seeds (asserted below)
#
# - **"A 100 ms pre-roll leaves less silence in gaps than forwarding" holds at every value tried of
#   every assumption.** It is the lab's most robust verdict (twenty seeds could not tell at four
#   values).
# - **"Pacing with a 100 ms lead leaves more silence in gaps than forwarding" holds everywhere but
#   two values: it flips when the model delivers at real time**, where forwarding has no cushion to
#   lose either and a lead then helps slightly, and on a very short path (20 ms) two hundred seeds
#   cannot tell.
# - **"Forwarding each delta stutters at word starts" is false at the defaults and flips to true
#   when the model delivers near real time (1.0-1.25x), when the path's delay changes within 100 ms
#   or less (correlation times of 10 and 100 ms: per-message delay nearly independent), or when the
#   mean path delay reaches 200 ms.** At 1.6x it is false, only just (the table above). It is false
#   at every value tried of the sender's loop (its stalls, its per-message cost).
# - **"The report's 50 ms rechunk is clean" is false or undecided nearly everywhere, the defaults
#   included**; two hundred seeds show it clean at two values tried: a sender loop that never stalls
#   and the model delivering 4x faster than real time.
# - **"The report's rechunk leaves less silence in gaps than forwarding" is false at the defaults**
#   and true only where the path's delay changes within 100 ms or less (10 and 100 ms correlation
#   times). Two hundred seeds cannot tell at four values: a very slow path (200 ms mean), 5 stalls
#   per second, 150 ms stalls, and 4x real time. It is false at every other value tried.
#
# The cell below asserts these lists against the 200-seed grid, so the words and the data cannot
# part.

# %%
def results(claim, parameter=None):
    rows = grid200[grid200["claim"] == claim]
    if parameter is not None:
        rows = rows[rows["parameter"] == parameter]
    return rows.set_index(["parameter", "value"])["result"]


def where(claim, result):
    """The (assumption, value) points where ``claim`` came out ``result`` over 200 seeds."""
    found = results(claim)
    return set(found[found == result].index)


def default_of(claim):
    return grid200[grid200["default"] & (grid200["claim"] == claim)]["result"].mode().iloc[0]


assert set(results(CLAIMS[4].text)) == {"yes"}
assert where(CLAIMS[5].text, "no") == {(SPEED, 1.0)}
assert where(CLAIMS[5].text, "uncertain") == {("mean_ms", 20.0)}
assert default_of(CLAIMS[0].text) == "no"
assert where(CLAIMS[0].text, "yes") == {(SPEED, 1.0), (SPEED, 1.25), ("tau_ms", 10.0),
                                        ("tau_ms", 100.0), ("mean_ms", 200.0)}
assert where(CLAIMS[0].text, "uncertain") == set()
for sender_side in ("send_cost_ms", "stall_rate_per_s", "stall_ms"):
    assert set(results(CLAIMS[0].text, sender_side)) == {"no"}, sender_side
assert default_of(CLAIMS[1].text) == "uncertain"
assert where(CLAIMS[1].text, "yes") == {("stall_rate_per_s", 0.0), (SPEED, 4.0)}
assert default_of(CLAIMS[2].text) == "no"
assert where(CLAIMS[2].text, "yes") == {("tau_ms", 10.0), ("tau_ms", 100.0)}
assert where(CLAIMS[2].text, "uncertain") == {
    ("mean_ms", 200.0), ("stall_rate_per_s", 5.0), ("stall_ms", 150.0), (SPEED, 4.0)}
at_16x = grid200[(grid200["claim"] == CLAIMS[0].text) & (grid200["value"] == 1.6)
                 & (grid200["parameter"] == SPEED)].iloc[0]
assert STUTTER_ONSET_GAPS_PER_ANSWER - 0.01 < at_16x["ci_high"] < STUTTER_ONSET_GAPS_PER_ANSWER

# %% [markdown]
# ## The playout: FIFO, frame clock or prefetch
#
# The grid holds one more assumption fixed: Twilio plays its queue FIFO, as documented. Lesson 06
# names two alternatives: a 20 ms frame clock that fills a frame the queue cannot fill with silence
# (its hypothesis b), and a playout that, at the start and whenever it runs dry, waits until it
# holds 60 ms of audio or has waited 120 ms before it plays (prefetch, p). The same claims are
# judged under each of the three, at the defaults and with the model generating at real time (1.0x,
# where the grid found forwarding stutters under FIFO), over a hundred seeds (0-99) rather than
# twenty: at the defaults gaps are rare, and there a twenty-seed interval often misses the mean
# (lesson 09). All three columns are new runs, FIFO too, so a FIFO verdict here can be sharper
# than the grid's "cannot tell" at the same point.

# %%
PLAYOUT_SEEDS = range(100)
PLAYOUTS = ("fifo", "frame_clock", "prefetch")
POINTS = {"defaults": trace, "1.0x real time": at_generation_speed(trace, 1.0)}
# the grid's runs at these two points under each playout, in one batch of processes
cases = [(playout, at) for playout in PLAYOUTS for at in POINTS]
tasks = [Task.of(at, run.strategy, run.threshold_ms, "tcp", playout, seed, None, None,
                 run.options) for playout, at in cases for run in RUNS for seed in PLAYOUT_SEEDS]
metrics = iter(simulate_many(POINTS, tasks, jobs=2))  # ~40 s: a progress bar
judged_rows = []
for playout, at in cases:
    per_run = {run.label: [next(metrics) for _ in PLAYOUT_SEEDS] for run in RUNS}
    onset = pd.DataFrame({label: [m.onset_gaps_per_answer for m in ms]
                          for label, ms in per_run.items()})
    gaps = pd.DataFrame({label: [m.gap_ms_per_audio_s for m in ms]
                         for label, ms in per_run.items()})
    judged_rows.append(pd.DataFrame(judge_claims(onset, gaps, (*CLAIMS, FORWARD_CLEAN)))
                       .assign(at=at, playout=playout))
by_playout = pd.concat(judged_rows)
verdicts_by_playout = by_playout.pivot_table(index="claim", columns=["at", "playout"],
                                             values="result", aggfunc="first")
verdicts_by_playout = verdicts_by_playout.loc[[c.text for c in (*CLAIMS, FORWARD_CLEAN)],
                                              ["defaults", "1.0x real time"]]
with pd.option_context("display.max_colwidth", None):
    display(verdicts_by_playout.reindex(columns=list(PLAYOUTS), level=1))


def judged(claim, at, playout):
    """The verdict and interval of one claim at one point under one playout."""
    return by_playout[(by_playout["claim"] == claim) & (by_playout["at"] == at)
                      & (by_playout["playout"] == playout)].iloc[0]


def shown(row, decimals):
    mean, low, high = (f"{row[key]:.{decimals}f}" for key in ("mean", "ci_low", "ci_high"))
    return f"{mean} [{low}, {high}]"


forwarding_in_real_time = pd.DataFrame({
    playout: {
        "defaults: gaps at word starts per answer": shown(
            judged(CLAIMS[0].text, "defaults", playout), 2),
        "1.0x: gaps at word starts per answer": shown(
            judged(CLAIMS[0].text, "1.0x real time", playout), 2),
        "1.0x: silence in gaps (ms per s of audio)": shown(
            judged(FORWARD_CLEAN.text, "1.0x real time", playout), 1),
    } for playout in PLAYOUTS}).T
print("forwarding each delta (a stutter: 0.5 gaps at word starts per answer; clean: under 2 ms "
      "of silence in gaps per s of audio):")
display(forwarding_in_real_time)
paced = judged(CLAIMS[5].text, "defaults", "frame_clock")  # forwarding's less pacing's, per seed
print(f"defaults, frame clock: pacing leaves {-paced['mean']:.1f} [{-paced['ci_high']:.1f}, "
      f"{-paced['ci_low']:.1f}] ms per s of audio more silence in gaps than forwarding")
print("1.0x, a 100 ms pre-roll: silence in gaps (ms per s of audio): " + "; ".join(
    f"{p} {shown(judged(CLAIMS[3].text, '1.0x real time', p), 1)}" for p in PLAYOUTS))

# %% [markdown]
# **What the data says.** At the defaults three of the grid's six claims hold under all three
# playouts: forwarding does not stutter, a 100 ms pre-roll is clean, and pacing leaves more
# silence in gaps than forwarding. The other three change with the playout, and so does
# "forwarding each delta is clean". Under the frame clock forwarding leaves a gap at a word start
# in about two answers of five (0.40 [0.36, 0.43] per answer): more than under FIFO, but below
# the stutter threshold of 0.5. There the report's rechunk leaves less silence in gaps than
# forwarding (lesson 01 found the same), and pacing leaves more (1.1 [0.6, 1.6] ms per second of
# audio, printed above). Under prefetch forwarding leaves no gap in any of the hundred seeds, so
# the report's code is clean but cannot leave less than forwarding, and a pre-roll has nothing to
# remove.
#
# At 1.0x real time forwarding stutters under FIFO (5.09 [4.84, 5.34] gaps at word starts per
# answer) and under the frame clock (3.57 [3.41, 3.74]). Under prefetch it does not stutter at
# word starts (0.02 [0.01, 0.03] per answer: about one gap at a word start in fifty answers),
# because prefetch holds each answer's first 60 ms (or waits 120 ms) before it plays. The gaps
# move from word starts into the answer: 13.3 ms [12.4, 14.3] of silence in gaps per second of
# audio, over six times the lab's "clean" limit (2 ms per second of audio; FIFO: 22.0 [21.1,
# 22.9]). So a prefetching Twilio would hide the stutter near real time but not give a clean call
# either. Of the three senders judged for cleanness (forwarding, the report's code, a 100 ms
# pre-roll) none is clean at 1.0x under any of the three playouts: the pre-roll leaves 2.6 ms
# [2.1, 3.0] of silence in gaps per second of audio under FIFO, more under the others. It still
# leaves less silence in gaps than forwarding under each.

# %%
def verdict(claim, at, playout):
    return judged(claim.text, at, playout)["result"]


stutter, report_less, preroll_clean, preroll_less, pacing_more = (
    CLAIMS[0], CLAIMS[2], CLAIMS[3], CLAIMS[4], CLAIMS[5])
# at the defaults: three claims hold under every playout, the other three change with it
unchanged = [claim.text for claim in CLAIMS if len({verdict(claim, "defaults", p)
                                                    for p in PLAYOUTS}) == 1]
assert unchanged == [stutter.text, preroll_clean.text, pacing_more.text], unchanged
assert len({verdict(FORWARD_CLEAN, "defaults", p) for p in PLAYOUTS}) > 1
for claim, held in ((stutter, "no"), (preroll_clean, "yes"), (pacing_more, "yes")):
    assert verdict(claim, "defaults", "fifo") == held, claim.text
frame_clock_onsets = judged(stutter.text, "defaults", "frame_clock")
fifo_onsets = judged(stutter.text, "defaults", "fifo")
assert fifo_onsets["ci_high"] < frame_clock_onsets["ci_low"]  # more under the frame clock...
assert frame_clock_onsets["ci_high"] < STUTTER_ONSET_GAPS_PER_ANSWER  # ...but not a stutter
assert abs(frame_clock_onsets["mean"] - 0.4) < 0.05  # "about two answers of five"
assert [verdict(report_less, "defaults", p) for p in ("fifo", "frame_clock")] == ["no", "yes"]
assert judged(stutter.text, "defaults", "prefetch")["mean"] == 0  # no gap at word starts...
assert judged(FORWARD_CLEAN.text, "defaults", "prefetch")["mean"] == 0  # ...nor anywhere,
assert verdict(report_less, "defaults", "prefetch") != "yes"  # so nothing leaves less
assert verdict(CLAIMS[1], "defaults", "prefetch") == "yes"
assert verdict(preroll_less, "defaults", "prefetch") == "no"
# at 1.0x: forwarding stutters under fifo and the frame clock; under prefetch the gaps move into
# the answer, and nothing is clean
assert verdict(stutter, "1.0x real time", "fifo") == "yes"
assert verdict(stutter, "1.0x real time", "frame_clock") == "yes"
assert verdict(stutter, "1.0x real time", "prefetch") == "no"
assert judged(stutter.text, "1.0x real time", "prefetch")["ci_high"] < CLEAN_ONSET_GAPS_PER_ANSWER
assert 0.01 < judged(stutter.text, "1.0x real time", "prefetch")["mean"] < 0.03  # "one in fifty"
prefetch_gaps = judged(FORWARD_CLEAN.text, "1.0x real time", "prefetch")
assert prefetch_gaps["ci_low"] > 3 * CLEAN_GAP_MS_PER_AUDIO_S
assert 6 < prefetch_gaps["mean"] / CLEAN_GAP_MS_PER_AUDIO_S < 8  # "over six times"
assert judged(FORWARD_CLEAN.text, "1.0x real time", "fifo")["ci_low"] > prefetch_gaps["ci_high"]
for playout in PLAYOUTS:
    for claim in (FORWARD_CLEAN, CLAIMS[1], preroll_clean):
        assert verdict(claim, "1.0x real time", playout) == "no", (claim.text, playout)
    assert verdict(preroll_less, "1.0x real time", playout) == "yes", playout
preroll_gaps = {p: judged(preroll_clean.text, "1.0x real time", p)["mean"] for p in PLAYOUTS}
assert min(preroll_gaps, key=preroll_gaps.get) == "fifo", preroll_gaps  # "more under the others"

# %% [markdown]
# ## Could Python's loop alone explain it? (hypothesis d, pushed hard)
#
# Hypothesis (d) says the Python sender's loop stalls and Node's does not. Lesson 06 found it
# ruled out at the default stalls (one every 2 s, 20 ms on average). Here the Python loop stalls
# two or ten times a second, 50 or 150 ms each on average, while the JS sender stays punctual;
# the three observations are re-predicted at each setting. The harshest setting asks for more
# stall than there is time (ten stalls a second of 150 ms is 1.5 s of stall per second); the
# model starts each stall only after the last has ended (`labkit.sim.sender_loop`), so what it
# simulates is a loop paused most of the time. The first table gives that share, over the
# pauses the twenty seeds' Python loops meet in their first minute. The last table checks the
# model at real time with the default stalls, over the playout section's hundred seeds.

# %%
d = next(h for h in HYPOTHESES if h.key.startswith("d Python stalls (fifo)"))
python_forward, js_forward, report_code = (o.key for o in OBSERVATIONS)
LOOP_MS = 60_000
settings, rates, predicted_at = [], [], {}
for rate in (2.0, 10.0):
    for stall_ms in (50.0, 150.0):
        overrides = {"stall_rate_per_s": rate, "stall_ms": stall_ms}
        runs = observation_runs(trace, [d], links=("tcp",), seeds=range(20), progress=False,
                                loop_overrides=overrides)  # jobs=1: quicker than a pool here
        predicted = predicted_at[(rate, stall_ms)] = predictions(runs).set_index("observation")
        pauses = [make_world("tcp", seed, overrides).sender.pauses(LOOP_MS) for seed in range(20)]
        paused_ms = sum(min(end, LOOP_MS) - start for each in pauses for start, end in each)
        settings.append({"stalls per s": rate, "mean stall (ms)": stall_ms,
                         "stall requested (ms per s)": rate * stall_ms,
                         "loop paused (%)": 100 * paused_ms / (20 * LOOP_MS),
                         **{f"predicted: {observation}": said for observation, said
                            in predicted["predicted"].items()},
                         "verdict": verdicts(predictions(runs))["verdict"].iloc[0]})
        rates.append({"stalls per s": rate, "mean stall (ms)": stall_ms, **{
            f"{who}: {what}": "{:.{d}f} [{:.{d}f}, {:.{d}f}]".format(
                predicted.loc[key, mean], *predicted.loc[key, ci], d=decimals)
            for who, key in (("Python", python_forward), ("JS", js_forward),
                             ("report's code", report_code))
            for what, mean, ci, decimals in (
                ("gaps at word starts per answer", "onset gaps per answer", "onset ci", 2),
                ("silence in gaps (ms per s of audio)", "gap ms per audio s", "gap ci", 1))}})
pushed = pd.DataFrame(settings).set_index(["stalls per s", "mean stall (ms)"])
display(pushed.round(0).astype({"stall requested (ms per s)": int, "loop paused (%)": int}))
display(pd.DataFrame(rates).set_index(["stalls per s", "mean stall (ms)"]).T)

# the model at real time, default stalls: does the punctual JS sender stutter too?
in_real_time = predictions(observation_runs(POINTS["1.0x real time"], [d], links="tcp",
                                            seeds=PLAYOUT_SEEDS, observations=OBSERVATIONS[:2],
                                            progress=False), OBSERVATIONS[:2]).set_index(
    "observation")
print(f"model at 1.0x real time, default stalls, forwarding ({len(PLAYOUT_SEEDS)} seeds):")


def stutter_verdict(low, high):
    if low >= STUTTER_ONSET_GAPS_PER_ANSWER:
        return "yes"
    return "no" if high < STUTTER_ONSET_GAPS_PER_ANSWER else "uncertain"


display(pd.DataFrame({
    "gaps at word starts per answer": [f"{m:.2f} [{lo:.2f}, {hi:.2f}]" for m, (lo, hi) in zip(
        in_real_time["onset gaps per answer"], in_real_time["onset ci"], strict=True)],
    "stutters (>= 0.5 per answer)": [stutter_verdict(*ci) for ci in in_real_time["onset ci"]],
    "observation predicted": in_real_time["predicted"]}))

# %%
assert (pushed["verdict"] == "ruled out").all()
assert "yes" not in set(pushed["predicted: 1 Python example stutters"])
assert "yes" not in set(pushed["predicted: 3 50 ms rechunk cures it"])
hard = predicted_at[(10.0, 150.0)]
# a Python-only difference, inside answers: Python's gaps far above "clean", JS's far below
assert hard.loc[python_forward, "gap ci"][0] > 3 * CLEAN_GAP_MS_PER_AUDIO_S
assert hard.loc[js_forward, "gap ci"][1] < CLEAN_GAP_MS_PER_AUDIO_S
# at word starts Python's gaps rise, but stay below a stutter
assert (hard.loc[python_forward, "onset gaps per answer"]
        > hard.loc[js_forward, "onset gaps per answer"])
assert hard.loc[python_forward, "onset ci"][1] < STUTTER_ONSET_GAPS_PER_ANSWER
# the report's code does not cure it
assert hard.loc[report_code, "gap ci"][0] > 3 * CLEAN_GAP_MS_PER_AUDIO_S
# the setting is beyond a working loop: more stall asked than time, most of the time paused
harsh = pushed.loc[(10.0, 150.0)]
assert harsh["stall requested (ms per s)"] > 1000
assert 50 < harsh["loop paused (%)"] < 70
milder = [predicted_at[key] for key in predicted_at if key != (10.0, 150.0)]
assert all(each.loc[python_forward, "gap ms per audio s"]
           < hard.loc[python_forward, "gap ms per audio s"] for each in milder)
# at real time both senders stutter (so speed alone does not separate them)
for runtime in (python_forward, js_forward):
    assert in_real_time.loc[runtime, "onset ci"][0] >= STUTTER_ONSET_GAPS_PER_ANSWER, runtime
# Python's row is the playout section's FIFO forwarding at 1.0x: the same runs
assert abs(in_real_time.loc[python_forward, "onset gaps per answer"]
           - judged(stutter.text, "1.0x real time", "fifo")["mean"]) < 1e-9

# %% [markdown]
# **What the data says.** In this model Python's stalls do make a Python-only difference, but not
# the one the report heard. At ten stalls a second of 150 ms, Python forwarding leaves 23.3 ms
# [15.9, 30.8] of silence in gaps per second of audio and the JS sender 0.0 [0.0, 0.1]. The gaps it
# adds are spread through the answers; at word starts Python leaves 0.29 [0.20, 0.37] gaps per
# answer against JS's 0.10 [0.04, 0.16], short of a stutter (one every other answer, 0.5), and no
# setting tried predicts the stutter (never a `yes`). The report's code does not cure it (20.7 ms
# [13.9, 27.6] per second of audio) and is never predicted clean. That setting is beyond a working
# loop: it asks for 1.5 s of stall per second, and as modelled the loop is paused about 60% of the
# time. At the milder settings Python's silence in gaps is smaller (1.7-13.3 ms per second of audio,
# the table) and the loop is paused 9-33% of the time.
#
# Why no stutter at word starts: in the synthetic `tiny_deltas_call` (the report's logged sizes,
# at an assumed 1.5-3x real time) the deltas arrive faster than they play, so after the first few
# ms a stall only eats into a growing cushion. That "does not stutter" rests on the assumed speed:
# the grid shows forwarding stutters at 1.0-1.25x, and at 1.0x the punctual JS sender stutters as
# well (the last table), so speed alone does not separate the two runtimes either. Under the
# models here, the report's Python-vs-JS difference at word starts needs a cause this lab does
# not model, or a Python loop worse than any tried; what the lab's stall model does produce is
# gaps inside Python's answers, which the report's code does not remove.

# %%
elapsed_s = time.perf_counter() - notebook_started
assert elapsed_s < 110, f"the lesson took {elapsed_s:.0f} s"  # a lesson stays quick

# %% [markdown]
# # 08 · What the caller hears
#
# **Question.** The report describes a sound, "H-h-hello": a repetition at word starts. The other
# lessons count gaps and their silence in ms. What does a gap sound like on a phone line, where does
# the "h-h-" come from, and how do the strategies score when judged the way engineers in this field
# judge audio, by a perceptual score?
#
# When Twilio's queue runs dry it sends the carrier nothing, and the carrier or the handset
# conceals the missing frames. The standard concealment for G.711 is ITU-T G.711 Appendix I
# (`labkit.plc`): it repeats the last pitch period, fading as the gap grows. So a gap right after
# the first few ms of a word is heard as that fragment *again*: "h-h-". `labkit.sim.render`
# renders a run's audio with that concealment (`conceal="plc"`) or with silence, and
# `labkit.quality` scores it by ITU-T P.862 (MOS-LQO: 1 bad to 4.55 a clean copy) against the
# answer's own audio played without gaps. The traces are **synthetic** (espeak-ng speech,
# modelled delivery).

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display
from scipy import stats

from labkit.audio import Audio
from labkit.plots import strategy_color
from labkit.sim import prepare, simulate
from labkit.sim.compare import compare, intervals, versus
from labkit.sim.metrics import ONSET_MS
from labkit.traces import read, shipped

notebook_started = time.perf_counter()
trace = read(shipped("tiny_deltas"))
prepared = prepare(trace, "tiny_deltas")
print(trace)

# %% [markdown]
# ## One word start, three ways
#
# Where a model produces the stutter: forwarding the report's tiny deltas under the stress model
# (every message its own delay; on one connection at these delivery speeds forwarding has almost
# no gaps, lesson 01). The first seed with a gap inside an answer's first 200 ms that follows
# audible speech (a gap in the silence before a word only delays it), rendered three ways: with
# concealment (what a phone line plays), with silence (what the other lessons count), and under a
# 100 ms pre-roll, the most robust improvement lesson 02 found for it.

# %%
def after_speech(answer):
    """The gaps of ``answer`` that follow 20 ms of audible speech (a gap in the silence before a
    word only delays it)."""
    return [(begin, end) for begin, end in answer.inserted
            if np.abs(answer.degraded[max(begin - 160, 0):begin].astype(float)).mean() > 300]


def audible_onset_gap(seed):
    """The key of the first answer with an audible gap within its first 200 ms, and the seed."""
    heard = simulate(prepared, "forward", link="jitter", seed=seed).render("silence")
    for answer in heard.answers:
        if any(begin < ONSET_MS * 8 for begin, _ in after_speech(answer)):
            return answer.key[0], seed
    return None


key, seed = next(found for s in range(20) if (found := audible_onset_gap(s)))
forward = simulate(prepared, "forward", link="jitter", seed=seed)
preroll = simulate(prepared, "preroll", 100, link="jitter", seed=seed)


def answer_of(run, conceal):
    return next(answer for answer in run.render(conceal).answers if answer.key[0] == key)


views = {"forward, concealed (what a phone plays)": answer_of(forward, "plc"),
         "forward, left silent (what the other lessons count)": answer_of(forward, "silence"),
         "preroll 100 ms, concealed": answer_of(preroll, "plc")}
gap_begin, gap_end = after_speech(views["forward, left silent (what the other lessons count)"])[0]
assert gap_begin < ONSET_MS * 8, "the gap falls within the answer's first 200 ms"
print(f"seed {seed}, {key}: a gap of {(gap_end - gap_begin) / 8:.0f} ms, "
      f"{gap_begin / 8:.0f} ms into the answer")
shown = gap_end + 2000  # 250 ms past the gap
ZOOM_SAMPLES = 240  # 30 ms either side of the gap, where the concealment can be seen
fig, axes = plt.subplots(len(views), 2, figsize=(12, 6.5), width_ratios=[2, 1],
                         layout="constrained")  # the zooms scale to the quiet start of the word
for row, (label, answer) in zip(axes, views.items(), strict=True):
    for ax, (first, last) in zip(row, ((0, shown), (max(0, gap_begin - ZOOM_SAMPLES),
                                                    gap_end + ZOOM_SAMPLES)), strict=True):
        ax.plot(np.arange(first, last) / 8, answer.degraded[first:last], linewidth=0.6)
        for begin, end in answer.inserted:
            if begin < last and end > first:
                ax.axvspan(max(begin, first) / 8, min(end, last) / 8, color="tab:red", alpha=0.15)
    row[0].set_title(label)
    row[1].set_title("the same, around the gap")
    row[0].set_ylabel("amplitude (16-bit PCM)")
    row[0].sharey(axes[0][0])  # each zoom keeps its own scale: the word starts quietly
for ax in axes[-1]:
    ax.set_xlabel(f"ms since the first sound of {key}")
fig.suptitle("Red: Twilio had nothing to play. Those before 20 ms of audible speech only delay "
             "the word; the printed one cuts into it")
plt.show()
for label, answer in views.items():
    print(label)
    display(Audio(answer.degraded[:12000]).play())  # the first 1.5 s of the answer

concealed = views["forward, concealed (what a phone plays)"].degraded[gap_begin:gap_end]
silent = views["forward, left silent (what the other lessons count)"].degraded[gap_begin:gap_end]
assert not silent.any(), "silence: nothing plays in the gap"
assert np.abs(concealed[:80]).mean() > 0, "concealment repeats what came before"
assert not views["preroll 100 ms, concealed"].inserted, "the pre-roll plays it without a gap"

# %% [markdown]
# The concealed gap is not silence: it replays the last pitch period of the fragment before it,
# fading after 10 ms. *If* the carrier conceals as G.711 Appendix I does (Twilio documents no
# concealment, and the report's audio was never recorded), this is how a gap sounds: a repeated
# "h-h-", as the report describes. The pre-roll plays the same words without the gap.
#
# ## Scores over twenty seeds
#
# Each strategy on each link, twenty seeds, rendered both ways and scored by P.862 (means and 95%
# intervals; `labkit.sim.batch.score_many` spreads the scoring over two processes). The intervals
# are Student-t over seeds: where nearly every seed scores the 4.55 ceiling, the upper bound can
# pass it (read an upper bound or a mean above 4.55, such as 4.56 or 4.57, as "at the ceiling").

# %%
STRATEGIES = {
    "forward": ("forward", 0),
    "rechunk 50 ms": ("rechunk", 50),
    "the report's code": ("original_report", 50),
    "preroll 100 ms": ("preroll", 100),
}
runs = compare(trace, STRATEGIES, links=("tcp", "jitter"), seeds=range(20), jobs=2,
               mos=("plc", "silence"))  # each run simulated and scored: a progress bar
SCORED = {"plc": "MOS-LQO, gaps concealed", "silence": "MOS-LQO, gaps left silent"}
scores = pd.concat({SCORED[mode]: intervals(runs, f"mos_lqo_{mode}")[["mean", "ci_low", "ci_high"]]
                    .rename(columns={"ci_low": "95% CI low", "ci_high": "95% CI high"})
                    for mode in SCORED}, axis=1)
scores[("silence in gaps", "ms per call")] = runs.groupby(["link", "strategy"], sort=False)[
    "concealed_ms"].mean()
scores[("silence in gaps", "at word starts, ms per call")] = runs.groupby(
    ["link", "strategy"], sort=False)["onset_concealed_ms"].mean()
display(scores.round(2))

# %% [markdown]
# What the scores say, asserted below:
#
# - **a run with no gap scores as a clean copy** (at least 4.0; every seed of the pre-roll on one
#   connection has none);
# - **MOS falls as silence in gaps grows**: across all the runs above, the rank correlation of the
#   score with the silence in gaps is strongly negative, with concealment and with silence;
# - **where the strategies differ, they differ at word starts**: under the stress model the gaps of
#   forwarding and of the report's code are nearly all at word starts, which a pre-roll holds back;
# - **yet P.862 barely tells a pre-roll from forwarding** (under a tenth of a point on the same
#   seeds, with concealment): it realigns speech around inserted gaps (`labkit.quality`), and the
#   concealment fills them with plausible speech. A perceptual score built for codecs and packet
#   loss is blind to a stutter that the gap counts and the ear catch. Read the score beside the
#   gap counts, never instead of them.

# %%
clean = runs[runs["concealed_ms"] == 0]
assert len(clean) > 0 and (clean["mos_lqo_plc"] >= 4.0).all()
for mode in ("plc", "silence"):
    rho = stats.spearmanr(runs["concealed_ms"], runs[f"mos_lqo_{mode}"]).statistic
    print(f"{SCORED[mode]}: rank correlation with the silence in gaps {rho:.2f}")
    assert rho < -0.5, mode
stress = runs[runs["link"] == "jitter"]
for label in ("forward", "the report's code"):
    rows = stress[stress["strategy"] == label]
    assert rows["onset_concealed_ms"].sum() >= 0.8 * rows["concealed_ms"].sum(), label
gap_cut = versus(stress, "concealed_ms", baseline="forward").loc[("jitter", "preroll 100 ms")]
score_gain = versus(stress, "mos_lqo_plc", baseline="forward").loc[("jitter", "preroll 100 ms")]
print(f"preroll minus forward (jitter): silence in gaps {gap_cut['difference']:.0f} ms "
      f"[{gap_cut['ci_low']:.0f}, {gap_cut['ci_high']:.0f}], MOS with concealment "
      f"{score_gain['difference']:.2f} [{score_gain['ci_low']:.2f}, {score_gain['ci_high']:.2f}]")
assert gap_cut["verdict"] == "less"
assert score_gain["ci_low"] > -0.2 and score_gain["ci_high"] < 0.2, "P.862 barely sees it"

fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharex=True, sharey=True,
                         layout="constrained")
for ax, link in zip(axes, ("tcp", "jitter"), strict=True):
    on_link = runs[runs["link"] == link]
    for label, rows in on_link.groupby("strategy", sort=False):
        ax.scatter(rows["concealed_ms"], rows["mos_lqo_plc"], s=18,
                   color=strategy_color(STRATEGIES[label][0]), label=label)
    if (on_link["concealed_ms"] == 0).all():  # every dot on one spot: say so
        low, high = (f"{score:.2f}" for score in (on_link["mos_lqo_plc"].min(),
                                                  on_link["mos_lqo_plc"].max()))
        ax.annotate(f"all {len(on_link)} runs: no gaps,\nMOS {low}" + ("" if low == high else
                                                                      f" to {high}"),
                    (0.5, 0.5), xycoords="axes fraction", ha="center", fontsize=10)
    ax.set_title(f"link: {link}")
    ax.set_xlabel("silence in gaps per call (ms)")
axes[0].set_ylabel("MOS-LQO, concealed (P.862)")
axes[1].legend(fontsize="small")
fig.suptitle("Each run: its score against its silence in gaps (20 seeds per strategy)")
plt.show()

# %% [markdown]
# ## The same answer under each playout hypothesis
#
# Lesson 06 left Twilio's playout undecided between FIFO and the frame clocks (padding every
# message makes the whole call broken audio, lesson 06). Forwarding and the pre-roll on the stress
# model, one seed, each hypothesis, rendered with concealment: listen for the word starts.

# %%
rows = []
for playout in ("fifo", "frame_clock", "frame_clock_skip"):
    for label, (name, threshold) in (("forward", ("forward", 0)),
                                     ("preroll 100 ms", ("preroll", 100))):
        run = simulate(prepared, name, threshold, link="jitter", playout=playout, seed=3)
        heard = run.render("plc")
        rows.append({"playout": playout, "strategy": label,
                     "gaps at word starts": run.metrics.onset_concealment_events,
                     "silence in gaps, concealed (ms)": sum(e - s for s, e in heard.erasures) / 8,
                     "padded silence (ms)": sum(e - s for s, e in heard.fills) / 8})
        first = heard.answers[0]
        print(f"{playout}, {label}:")
        display(Audio(first.degraded).play())
listening = pd.DataFrame(rows).set_index(["playout", "strategy"])
display(listening.round(0).astype(int))
fifo = listening.loc["fifo", "gaps at word starts"]
assert fifo.loc["preroll 100 ms"] <= fifo.loc["forward"]
skip = listening.loc["frame_clock_skip"]
assert (listening.xs("preroll 100 ms", level="strategy")["gaps at word starts"] == 0).all()
assert 0 < skip.loc["preroll 100 ms", "silence in gaps, concealed (ms)"] < 100

# %% [markdown]
# On this seed the pre-roll leaves no gap at a word start under any of the three playouts, and
# forwarding's gaps fall where you hear them, at word starts. The silence in gaps the pre-roll still
# shows under `frame_clock_skip` is that playout's own doing: rather than pad a partial frame, it
# skips a tick (the carrier conceals it) while the frame waits for its missing bytes; here 40 ms
# over the call, none of it at a word start.

# %%
elapsed_s = time.perf_counter() - notebook_started
assert elapsed_s < 90, f"the lesson took {elapsed_s:.0f} s"  # a lesson stays quick

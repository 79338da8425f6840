# %% [markdown]
# # 01 · Why tiny packets jitter (and when they do not)
#
# **Question.** The original report logged 20-60 byte audio deltas from the model (2.5-7.5 ms of
# audio each), heard "h-h-hello" on the phone, and proposed buffering them into 50 ms messages.
# Does a stream of tiny messages produce gaps at Twilio? The answer depends on a model of the
# connection, so this lesson builds two and states every verdict per model:
#
# - **`tcp`** (the lab's default world): one TCP connection. The path's delay drifts slowly and
#   back-to-back messages share it; each end pays a small cost per message; the sender's event
#   loop stalls now and then (a GC pause, CPU-bound work).
# - **`jitter`**, a *stress model*: every message draws its own delay, as if each took its own
#   path. One TCP connection does not behave so; it is kept to show what independent per-message
#   delay would do.
#
# The trace is `tiny_deltas_call`: **synthetic** (no public recording of Realtime delta timing
# exists), eight answers delivered 1.5-3x faster than real time in the report's 20-60 byte deltas.
# Every verdict below holds for these synthetic traces and the stated models; lesson 07 shows
# how far each survives when the models' assumptions change. Twenty seeds per setting; every
# number comes with its 95% interval.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from labkit import plots
from labkit.sim import make_playout, prepare, simulate
from labkit.sim.compare import compare, intervals, versus
from labkit.sim.links import make_world
from labkit.traces import read, shipped

notebook_started = time.perf_counter()
trace = read(shipped("tiny_deltas_call"))
sizes = np.concatenate([trace.sizes(key) for key in trace.items])
print(trace)
print(
    f"{len(sizes)} deltas, {sizes.min()}-{sizes.max()} bytes "
    f"({sizes.min() / 8:.1f}-{sizes.max() / 8:.1f} ms of audio each), "
    f"{trace.audio_ms / 1000:.1f} s of audio in {len(trace.items)} answers"
)
assert trace.is_synthetic
assert sizes.max() <= 60 and sizes.min() >= 20, "the trace should hold the report's tiny deltas"

# %% [markdown]
# ## Twilio's queue in three lines of algebra
#
# Twilio documents its outbound side as a FIFO: media "is buffered and played in the order
# received". Message *i* carries $d_i$ ms of audio and arrives at $a_i$. It starts playing when it
# has arrived and the message before it has finished:
#
# $$s_i = \max(a_i,\; s_{i-1} + d_{i-1}).$$
#
# Any $s_i > s_{i-1} + d_{i-1}$ inside an answer is silence the caller hears: an **underrun**.
# Write $D_i = \sum_{j<i} d_j$ (the media time of message *i*'s first byte). Subtracting $D_i$ from
# both sides gives $s_i - D_i = \max(a_i - D_i,\; s_{i-1} - D_{i-1})$, a running maximum, so
#
# $$s = D + \operatorname{cummax}(a - D).$$
#
# The queue is only as early as the *latest* message relative to its media time: one late message
# delays everything behind it. Here is the recursion, its vectorised form, and five messages where
# the fourth is late.

# %%
def fifo_starts_loop(arrivals_ms, durations_ms):
    starts, free_at = [], -np.inf
    for a, d in zip(arrivals_ms, durations_ms, strict=True):
        start = max(a, free_at)
        starts.append(start)
        free_at = start + d
    return np.array(starts)


def fifo_starts(arrivals_ms, durations_ms):
    media_time = np.cumsum(durations_ms) - durations_ms          # D_i
    return media_time + np.maximum.accumulate(arrivals_ms - media_time)


toy_arrivals = np.array([0.0, 5.0, 30.0, 95.0, 100.0])
toy_durations = np.array([20.0, 20.0, 20.0, 20.0, 20.0])
toy_starts = fifo_starts(toy_arrivals, toy_durations)
assert np.allclose(toy_starts, fifo_starts_loop(toy_arrivals, toy_durations))
print("starts:", toy_starts)
silence_ms = toy_starts[3] - (toy_starts[2] + toy_durations[2])  # message 3 starts late
assert silence_ms == 35.0, silence_ms
plots.fifo_playout(
    toy_arrivals, toy_durations, toy_starts,
    title=f"Message 3 arrives {silence_ms:.0f} ms after message 2 ends: "
          f"the caller hears {silence_ms:.0f} ms of silence",
)
plt.show()

# %% [markdown]
# The package's playout model (`labkit.sim.playout.FifoPlayout`, the same object the Twilio
# emulator runs in a live loopback call) is incremental: it receives messages one by one. It must
# agree with the formula, on the toy and on a whole simulated call.

# %%
fifo = make_playout("fifo")
for a, d in zip(toy_arrivals, toy_durations, strict=True):
    fifo.receive_media(b"\xff" * int(d * 8), a)
assert np.allclose([p.start_ms for p in fifo.plays], toy_starts)

prepared = prepare(trace, "tiny_deltas_call")   # parse once, simulate many times
forward_run = simulate(prepared, "forward", link="tcp", seed=0)
media = forward_run.schedule.query("kind == 'media' and size > 0")  # size 0: marks-only
formula = fifo_starts(media["arrived_ms"].to_numpy(), media["size"].to_numpy() / 8)
assert np.allclose(media["play_start_ms"].to_numpy(), formula)
print(f"the formula reproduces all {len(media)} start times of the simulated call")

# %% [markdown]
# ## Two models of one connection
#
# What separates the two links is whether back-to-back messages share their delay. Below, one
# seed of forwarding over each: each dot is one message's trip (arrival minus send), against the
# time it was sent. Over `tcp` the trips trace the path's slowly drifting delay, one curve every
# message rides; over `jitter` every message draws its own, so a message is often held behind a
# slower one sent before it (in-order delivery): messages arrive in bunches with holes between
# them, the table below counts both.

# %%
spacing = {}
fig, axes = plt.subplots(1, 2, figsize=(13, 3.6), sharey=True, layout="constrained")
for ax, link in zip(axes, ("tcp", "jitter"), strict=True):
    sent = simulate(prepared, "forward", link=link, seed=0).schedule.query("kind == 'media'")
    trip = (sent["arrived_ms"] - sent["sent_ms"]).to_numpy()
    ax.plot(sent["sent_ms"] / 1000, trip, ".", markersize=2)
    ax.set_xlim(0, 12)
    ax.set_title(f"link: {link}")
    ax.set_xlabel("sent at (s)")
    within = sent.groupby("item_id")["arrived_ms"].diff().dropna().to_numpy()
    spacing[link] = {"arrived with the one before (share)": float(np.mean(within < 0.1)),
                     "p99 wait for the next arrival (ms)": float(np.percentile(within, 99))}
axes[0].set_ylabel("trip to Twilio (ms)")
fig.suptitle("Forwarding, one seed: the first 12 s of trips")
plt.show()
display(pd.DataFrame(spacing).round(2))
# in-order delivery bunches messages behind a slow one only when each draws its own delay
assert spacing["jitter"]["arrived with the one before (share)"] > 3 * spacing["tcp"][
    "arrived with the one before (share)"]
assert spacing["jitter"]["p99 wait for the next arrival (ms)"] > 3 * spacing["tcp"][
    "p99 wait for the next arrival (ms)"]

# %% [markdown]
# The `tcp` world's other two parts, sender stalls and per-message costs, are parameters of the
# sending loop (`labkit.sim.sender_loop.SenderLoop`): here are its defaults, the assumptions every
# `tcp` verdict rests on (lesson 07 varies each).

# %%
world = make_world("tcp", seed=0)
print({"stalls per s": world.sender.stall_rate_per_s, "mean stall (ms)": world.sender.stall_ms,
       "send cost per message (ms)": world.sender.send_cost_ms,
       "Twilio's cost per message (ms)": world.fwd.per_message_ms})
pauses = world.sender.pauses(60_000)
print(f"{len(pauses)} stalls in the first minute, "
      f"{sum(end - start for start, end in pauses):.0f} ms of the loop paused")

# %% [markdown]
# ## Six senders, two links, twenty seeds
#
# `threshold_ms` means what each strategy documents: the message size for `rechunk` (50 ms = 400
# bytes, flushed at least every 100 ms), the lead for `paced`, the hold for `preroll`;
# `adaptive` learns its pre-roll. **The report's code** is `original_report`: the PR's handler as
# its commits wrote it (a 400 byte buffer checked on every delta, a loop that sleeps 50 ms and
# flushes after more than 100 ms without a send, a mark for every delta).

# %%
STRATEGIES = {                      # label -> (strategy, threshold_ms)
    "forward": ("forward", 0),
    "rechunk 50 ms": ("rechunk", 50),
    "paced, 100 ms lead": ("paced", 100),
    "preroll 100 ms": ("preroll", 100),
    "adaptive": ("adaptive", 100),
    "original_report (the report's code)": ("original_report", 50),
}
SEEDS = range(20)
runs = compare(trace, STRATEGIES, links=("tcp", "jitter"), seeds=SEEDS, jobs=2)  # a progress bar
gaps = intervals(runs, "concealed_ms")
onsets = intervals(runs, "onset_gaps_per_answer")
table = pd.DataFrame({
    "gaps per call (ms), mean": gaps["mean"],
    "95% interval": [f"[{lo:.1f}, {hi:.1f}]" for lo, hi in zip(gaps["ci_low"], gaps["ci_high"],
                                                               strict=True)],
    "seeds with a gap": gaps["seeds_above_0"],
    "gaps at word starts, per answer": onsets["mean"],
    "messages per call": runs.groupby(["link", "strategy"], sort=False)["messages"].mean(),
})
display(table.round(2))
plots.intervals_by_link(gaps, xlabel="gaps heard per call (ms): mean and 95% interval",
                        title="tiny_deltas_call, 20 seeds: what each sender leaves the caller")
plt.show()

# %% [markdown]
# The same comparison as paired differences: each strategy minus forwarding **on the same seed**
# (on `tcp` the same seed is the same path and the same stalls for every strategy, so the
# difference is free of the world's variation). "fewer" or "more" only when the 95% interval of the
# difference lies wholly below or above zero.

# %%
difference = versus(runs, "concealed_ms", baseline="forward")
display(difference.round(1))

# %% [markdown]
# ## What the data says, per link
#
# **On one TCP connection (`tcp`)** the tiny messages themselves cause almost nothing:
# forwarding leaves about a millisecond of gaps per call (the table above gives the mean and its
# interval), at moments when the path's delay rises faster than the cushion Twilio holds. A
# pre-roll and the adaptive buffer remove even those; pacing with a lead *adds* gaps, because it
# holds back audio Twilio could already have queued; and the report's
# code leaves *more* gaps than forwarding: at some word starts (about one answer in five, where its
# 50 ms wake falls) its loop flushes the fragment it holds (about 20 ms), then holds the next 400
# bytes, so the caller hears the fragment, a gap, then the word. The mechanism is in its code
# (lesson 05 shows it message by message).
#
# **Under the stress model (`jitter`)** forwarding underruns in every seed: with thousands of
# messages, some message is always the slow one, and everything behind it waits ("the slowest of
# many"). Here rechunking, pre-roll and the adaptive buffer each remove most of it; pacing shows no
# difference from forwarding; the report's code helps less than `rechunk`, because it still sends a
# mark after every delta: thousands of messages, each a new draw of the delay.
#
# So "many tiny messages cause gaps" **holds only under independent per-message delay**, and
# flips on one connection. The asserts below encode each sentence per link.

# %%
tcp_gaps, jitter_gaps = gaps.loc["tcp"], gaps.loc["jitter"]
tcp_vs, jitter_vs = difference.loc["tcp"], difference.loc["jitter"]
report = "original_report (the report's code)"
# tcp: forwarding leaves about a millisecond per call; holds remove it; a lead and the report add
assert tcp_gaps.loc["forward", "ci_high"] < 5.0
assert tcp_gaps.loc["preroll 100 ms", "seeds_above_0"] == 0
assert tcp_vs.loc["paced, 100 ms lead", "verdict"] == "more"
assert tcp_vs.loc[report, "verdict"] == "more"
# jitter: forwarding always underruns; rechunk, pre-roll and adaptive leave far less
assert jitter_gaps.loc["forward", "seeds_above_0"] == len(SEEDS)
for label in ("rechunk 50 ms", "preroll 100 ms", "adaptive"):
    assert jitter_vs.loc[label, "verdict"] == "fewer", label
    assert jitter_gaps.loc[label, "ci_high"] < 0.3 * jitter_gaps.loc["forward", "ci_low"], label
assert jitter_vs.loc["paced, 100 ms lead", "verdict"] in ("no difference shown", "fewer")
assert jitter_vs.loc["paced, 100 ms lead", "ci_low"] > -0.3 * jitter_gaps.loc["forward", "mean"]
assert jitter_vs.loc[report, "verdict"] == "fewer"
assert jitter_gaps.loc[report, "ci_low"] > jitter_gaps.loc["rechunk 50 ms", "ci_high"]
# the verdict on tiny messages flips between the links
assert jitter_gaps.loc["forward", "ci_low"] > 10 * tcp_gaps.loc["forward", "ci_high"]

# %% [markdown]
# ### The packet timeline
#
# Each message is a blue tick when sent, an orange dot when it reached Twilio, and a green segment
# while it plays; y is the media position, so playing audio climbs at 1 ms per ms and silence is
# a flat step, shaded red. The window is centred on forwarding's first underrun under `jitter`;
# the bottom row is the same seed and window over `tcp`.

# %%
jitter_runs = {label: simulate(prepared, name, threshold, link="jitter", seed=0)
               for label, (name, threshold) in STRATEGIES.items() if label != "adaptive"}
first_gap = plots.playout_gaps(jitter_runs["forward"].schedule).iloc[0]
window = (first_gap.start_ms - 200, first_gap.end_ms + 200)
shown = [("forward", "jitter"), ("rechunk 50 ms", "jitter"), ("preroll 100 ms", "jitter"),
         ("forward", "tcp")]
fig, axes = plt.subplots(len(shown), 1, figsize=(11, 2.6 * len(shown)), sharex=True,
                         layout="constrained")
for ax, (label, link) in zip(axes, shown, strict=True):
    name, threshold = STRATEGIES[label]
    run = (jitter_runs[label] if link == "jitter"
           else simulate(prepared, name, threshold, link=link, seed=0))
    inside = plots.playout_gaps(run.schedule).query(
        "end_ms >= @window[0] and start_ms <= @window[1]")
    plots.packet_timeline(run.schedule, ax=ax, window_ms=window,
                          title=f"{label} over {link}: {plots.gaps_text(inside['gap_ms'])} "
                                "in this window")
fig.suptitle("One seed around forwarding's first underrun (jitter link)")
plt.show()

# %% [markdown]
# ### What the caller hears
#
# The audio of seed 0, rendered from the simulated playout as a phone line plays it: where the
# queue ran dry the carrier conceals the gap by repeating the last pitch period (G.711 Appendix I;
# lesson 08 compares it with silence and scores it). Listen to forwarding over each link, then to
# the pre-roll.

# %%
for label, link in (("forward", "jitter"), ("forward", "tcp"), ("preroll 100 ms", "jitter")):
    name, threshold = STRATEGIES[label]
    run = simulate(prepared, name, threshold, link=link, seed=0)
    events = run.metrics.concealment_events
    print(f"{label} over {link}: {events} gap{'s' * (events != 1)}, "
          f"{run.metrics.concealed_ms:.1f} ms")
    display(run.audio.play())

# %% [markdown]
# ## Take-away
#
# Tiny messages are not a problem in themselves. Over one TCP connection the path's delay is
# shared, so forwarding every delta gives Twilio the largest cushion the model's speed allows and
# leaves about a millisecond of gaps; what removes those is holding the start of each answer (a
# pre-roll), not bigger messages. Only if every message drew its own delay would their number
# matter, and then rechunking helps by cutting the number of draws. The report's own code makes
# word starts worse on one connection. Lesson 02 sweeps every trace and threshold; lesson 06 asks
# which explanation of the reported stutter survives; lesson 07 varies the assumptions.

# %%
elapsed_s = time.perf_counter() - notebook_started
print(f"notebook ran in {elapsed_s:.1f} s")
assert elapsed_s < 90

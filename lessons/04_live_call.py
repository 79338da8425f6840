# %% [markdown]
# # 04 · A live call
#
# **Question.** Does the simulator predict what the real code does on a real socket? And what
# experiment, on a real phone call, would tell apart the ways Twilio might play what it receives
# (its "playout": back to back as documented, on a 20 ms clock that pads partial frames, or with
# every message padded to whole frames; lesson 06 weighs each against the report)?
#
# With `OPENAI_API_KEY`, `TWILIO_AUTH_TOKEN` and `PUBLIC_URL` (the https address that reaches this
# machine, e.g. an ngrok URL) set, the next cell starts the server (what `labkit serve` runs) and
# waits for a phone call, recording its trace into `data/recorded/`. In the Twilio console, under
# your number's *Voice configuration*, set **A call comes in** to *Webhook*,
# `https://PUBLIC/incoming-call`, method **HTTP POST**. Secrets are never printed.
#
# Without them (and under CI) it places a **loopback call**: the real server and handler, a real
# `openai-agents` session running the SDK's own OpenAI Realtime model
# (`OpenAIRealtimeWebSocketModel`, unmodified), which talks the Realtime protocol over a WebSocket
# to a local Realtime emulator that replays the trace (`labkit.live.realtime_emulator`), real
# WebSockets to the server, and an emulated Twilio that plays what arrives through a playout model
# and records every arrival. The trace is replayed at real time, as a phone call runs, so the call
# cell below takes 15-20 s (9 s of trace, the last answer playing out, then the caller hangs up).

# %%
import asyncio
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from labkit import plots
from labkit.live.call import loopback_call
from labkit.traces import shipped

notebook_started = time.perf_counter()
REQUIRED = ("OPENAI_API_KEY", "TWILIO_AUTH_TOKEN", "PUBLIC_URL")
live = all(os.environ.get(name) for name in REQUIRED)
print("live call" if live else f"loopback call (set {', '.join(REQUIRED)} for a real one)")


# %%
async def wait_for_a_real_call():
    from labkit.live.server import serve_in_background
    from labkit.live.settings import ServerSettings

    public_url = os.environ["PUBLIC_URL"].rstrip("/")
    recorded = Path("..", "data", "recorded").resolve()
    settings = ServerSettings.from_env(public_url=public_url, record_dir=recorded)
    async with serve_in_background(settings, host="0.0.0.0", port=5050) as server:
        print(
            f"Twilio console -> your number -> Voice configuration -> A call comes in: Webhook\n"
            f"  URL: {public_url}/incoming-call   method: HTTP POST\n"
            f"(forward {public_url} to port 5050 here). Waiting for a call; its trace goes to "
            f"{recorded}"
        )
        while not server.app.state.finished_calls:
            await asyncio.sleep(1.0)
    return sorted(recorded.glob("*.jsonl.gz"))[-1]

if live:
    recorded_trace = await wait_for_a_real_call()
    print("recorded", recorded_trace.name)

# %% [markdown]
# ## Measured vs simulated
#
# The loopback call runs `tiny_deltas` through `rechunk` 50 ms at real time. The measured side comes
# from the arrival times the emulated Twilio recorded; the simulated side is `labkit.simulate` on
# the same trace with the same strategy over a constant link of the measured loopback delay. Both go
# through the same metric code, so a difference is one of behaviour, not of definitions.
#
# Messages and bytes must match exactly. Times cannot: the caller's clock starts when it connects,
# the trace's only once the SDK has opened and configured its Realtime session, so every arrival
# is late by that start-up (a constant); and the server, the SDK, the emulator and the caller
# share this kernel's one event loop, so each message also carries a few ms of real scheduling
# jitter. The left panel matches each received message to the simulated message holding its first
# byte; the right one compares the spacing of arrivals within an answer.
#
# Why real time: `rechunk` also sends what has waited 100 ms, so a delta held up by that jitter
# past a flush deadline it would have beaten turns one message into two. On this trace no delta
# comes near a deadline in trace time, but a replay at `speed=16` shrinks every margin 16-fold in
# real ms, and on a busy machine such a call sends a few more messages than the simulation: the
# live code is right, the bench is too fast for the comparison.

# %%
call = await loopback_call(shipped("tiny_deltas"), "rechunk", 50, speed=1.0,
                           realtime_emulator=True)
seen = ", ".join(f"{count} {kind}" for kind, count in call.realtime.client_events.items())
print(f"the Realtime emulator received {seen}; protocol errors: "
      f"{call.realtime.protocol_errors or 'none'}")
assert not call.realtime.protocol_errors
ROWS = {"media_messages": "media messages (count)", "concealment_events": "gaps (count)",
        "concealed_ms": "silence in gaps (ms)", "played_ms": "audio played (ms)",
        "arrival_gap_p95_ms": "arrival spacing p95 (ms)",
        "jitter_ms": "arrival jitter, RFC 3550 (ms)"}
comparison = call.table().loc[list(ROWS)].rename(index=ROWS).astype(float)
display(comparison.apply(lambda row: row.map(
    ("{:.0f}" if row.name.endswith("(count)") else "{:.1f}").format), axis=1))
arrivals = call.arrivals()
spread_ms = arrivals["difference_ms"].quantile([0.05, 0.95]) - arrivals["difference_ms"].median()
fig, axes = plt.subplots(1, 2, figsize=(13, 4), layout="constrained")
plots.arrivals_vs_simulation(
    arrivals, ax=axes[0],
    title=f"Messages arrive {arrivals['difference_ms'].median():.0f} ms after the simulator's "
          f"time, {spread_ms.iloc[0]:+.1f}/{spread_ms.iloc[1]:+.1f} ms around it (p5/p95)",
)
plots.gap_distribution(
    {side: frame.query("kind == 'media' and size > 0").groupby("item_id")["arrived_ms"].diff()
     .dropna() for side, frame in (("measured", call.schedule),
                                   ("simulated", call.simulation.schedule))},
    ax=axes[1], xlabel="time between consecutive arrivals within an answer (ms)",
    title="Arrival spacing within answers: p95 {:.1f} ms measured, {:.1f} ms simulated".format(
        *comparison.loc["arrival spacing p95 (ms)", ["measured", "simulated"]]),
)
plt.show()
# every byte the caller received, the simulation sent too
assert arrivals["difference_ms"].notna().all()
print(f"loopback delay {call.loopback_delay_ms:.2f} ms")
for row in ("media messages (count)", "audio played (ms)"):
    measured, simulated = comparison.loc[row, "measured"], comparison.loc[row, "simulated"]
    assert measured == simulated, f"{row}: measured {measured}, simulated {simulated}"

# causality: no byte reaches the caller before the simulator, which sends it as soon as the
# trace has it and gives it the smallest trip measured on this loopback
assert (arrivals["difference_ms"] > -1.0).all(), arrivals["difference_ms"].min()

# %% [markdown]
# ## Experiments that would settle it on a real call
#
# Lesson 06 left the playout hypotheses about Twilio undecided by this bench: `fifo` (as
# documented), a 20 ms frame clock that pads a partial frame (`frame_clock`) or skips the tick
# (`frame_clock_skip`), and padding every message (`pad_every_message`). Two experiments on a real
# call tell them apart, each run through `labkit serve --replay TRACE --strategy forward
# --mark-every-ms ...` (forward: every message goes out exactly as built). The simulator says what
# each hypothesis predicts.
#
# **1 · Mark echo timing.** Thirty probes, each a single 40-byte message (5 ms of audio) with a
# mark, sent into an empty queue at a random phase. Twilio echoes the mark when the audio before it
# has played. The app sees the echo one round trip later; subtracting the round trip of a probe
# with no audio (a mark alone, echoed at once) leaves Twilio's own hold:

# %%
import numpy as np

from labkit.sim import simulate
from labkit.traces import Trace, audio_event, item_event, make_header, turn_event, write

PLAYOUTS = ["fifo", "frame_clock", "frame_clock_skip", "pad_every_message"]
rng = np.random.default_rng(4)
probe_events, at_ms = [], 100.0
for n in range(30):
    at_ms += 500.0 + float(rng.uniform(0, 20))   # a random phase against any 20 ms clock
    probe_events += [audio_event(at_ms, f"p{n}", f"probe_{n}", 0, b"\x7f" * 40),
                     item_event("audio_done", at_ms, f"probe_{n}", 0)]
probes = Trace(make_header("synthetic", "30 probes of 40 bytes, each into an empty queue",
                           generator={"name": "04_live_call.probes", "seed": 4}), probe_events)
held = {}
for playout in PLAYOUTS:
    run = simulate(probes, "forward", link="constant", playout=playout, mark_every_ms=None)
    marks = run.schedule.query("kind == 'mark'")
    held[playout] = (marks["echo_ms"] - marks["arrived_ms"]).to_numpy()  # Twilio's own hold
holds = pd.DataFrame({name: pd.Series(values).describe()[["min", "50%", "max"]]
                      for name, values in held.items()}).T.rename(
    columns={"min": "shortest hold (ms)", "50%": "median hold (ms)", "max": "longest hold (ms)"})
display(holds.round(1))
fig, ax = plt.subplots(figsize=(9, 3), layout="constrained")
ax.boxplot(list(held.values()), orientation="horizontal", tick_labels=list(held))
ax.set_xlabel("time from a 5 ms probe's arrival to its mark's echo (ms)")
ax.set_title("What each hypothesis predicts for the probes' mark echoes")
plt.show()
assert np.allclose(held["fifo"], 5.0), "FIFO: the echo follows the probe's own 5 ms of audio"
assert held["frame_clock"].max() - held["frame_clock"].min() > 10, "a clock spreads echoes by phase"
assert held["frame_clock"].min() >= 5.0 and held["frame_clock"].max() <= 25.0
assert held["frame_clock_skip"].min() > held["frame_clock"].max() - 5.0
assert np.allclose(held["pad_every_message"], 20.0), "padding: every probe holds a whole frame"

# %% [markdown]
# **How to read a real result.** Echo delays (less a mark-only probe's round trip) all about 5 ms:
# FIFO, as documented. Spread evenly over 5-25 ms: a frame clock that pads. Mostly beyond 20 ms:
# a frame clock that skips partial frames. All about 20 ms: every message padded. Network jitter
# widens every distribution alike, so the *spread* and the *floor* are what tell them apart.
#
# **2 · Listening.** The same phrase sent two ways in one call: first as tiny messages (40 bytes =
# 5 ms each) at real-time pace, then as whole 20 ms frames at the same pace. The trace below is
# built from the `greeting` phrase in `data/audio`, written to `data/recorded/` (gitignored), and
# replayed with `labkit serve --replay data/recorded/experiment_tiny_vs_frames.jsonl.gz
# --strategy forward`. Here is what each hypothesis predicts a listener would hear:

# %%
phrase = Path(shipped("tiny_deltas")).parents[1].joinpath("audio", "greeting.ulaw").read_bytes()


def halves(sizes=(40, 160), pause_ms=1500.0):
    """The phrase once per message size, one answer each, 1.5 s apart."""
    events, start_ms = [], 100.0
    for n, size in enumerate(sizes):
        response, item = f"resp_{n}", f"item_{n}_{size}B"
        events.append(turn_event("turn_started", start_ms, response))
        for offset in range(0, len(phrase), size):
            events.append(audio_event(start_ms + offset / 8, response, item, 0,
                                      phrase[offset : offset + size]))
        end_ms = start_ms + len(phrase) / 8
        events += [item_event("audio_done", end_ms, item, 0),
                   turn_event("turn_ended", end_ms, response)]
        start_ms = end_ms + pause_ms
    header = make_header("synthetic", "greeting as 40-byte messages, then as 160-byte frames",
                         generator={"name": "04_live_call.halves", "sizes": list(sizes)})
    return Trace(header, events)


experiment = halves()
# data/recorded/ is gitignored: this trace (the same bytes on every run) is never committed.
data_dir = Path(shipped("tiny_deltas")).parents[1]
experiment_path = data_dir / "recorded" / "experiment_tiny_vs_frames.jsonl.gz"
experiment_path.parent.mkdir(parents=True, exist_ok=True)
write(experiment, experiment_path, overwrite=True)  # this lesson's own output, the same bytes
print("wrote", experiment_path)
HALVES = {"40-byte messages": 40, "whole 20 ms frames (160 B)": 160}
length_ms = len(phrase) / 8
predictions = {half: {"phrase length (ms)": length_ms} for half in HALVES}
for playout in PLAYOUTS:
    run = simulate(experiment, "forward", link="constant", playout=playout)
    print(f"{playout}: what a listener would hear")
    display(run.audio.play())
    for half, size in HALVES.items():  # each half alone, for its own count of gaps
        alone = simulate(halves((size,)), "forward", link="constant", playout=playout)
        media = alone.schedule.query("kind == 'media' and size > 0")
        heard_ms = media["play_end_ms"].max() - media["play_start_ms"].min()
        predictions[half][f"{playout}: heard over (ms)"] = heard_ms
        predictions[half][f"{playout}: gaps"] = alone.metrics.concealment_events
prediction = pd.DataFrame(predictions).round(0).astype(int)
display(prediction)
tiny, frames = HALVES
assert abs(prediction.loc["fifo: heard over (ms)", tiny] - length_ms) < 1
assert prediction.loc["pad_every_message: heard over (ms)", tiny] > 3 * length_ms
assert prediction.loc["pad_every_message: gaps", tiny] > 100 * max(
    1, prediction.loc["pad_every_message: gaps", frames])
for playout in PLAYOUTS:
    assert abs(prediction.loc[f"{playout}: heard over (ms)", frames] - length_ms) < 25, playout
    assert prediction.loc[f"{playout}: gaps", frames] <= 1, playout  # at most its partial tail
assert prediction.loc["fifo: gaps", tiny] == 0 and prediction.loc["frame_clock: gaps", frames] == 0
assert 1 <= prediction.loc["frame_clock: gaps", tiny] <= 3
print(f"if Twilio pads every message, the tiny half is heard over "
      f"{prediction.loc['pad_every_message: heard over (ms)', tiny]} ms (the phrase is "
      f"{length_ms:.0f} ms), the whole frames over "
      f"{prediction.loc['pad_every_message: heard over (ms)', frames]} ms")

# %% [markdown]
# The table predicts each half alone. Whole frames play as one phrase under every model (a clock
# that skips a tick for a partial frame holds back only the phrase's last few ms). The 40-byte
# half differs: FIFO plays it seamlessly; a frame clock that pads when the queue runs dry inserts
# one short gap; a Twilio that pads *every* message to a whole frame stretches the 5.5 s phrase to
# 22 s with 1,105 gaps.
#
# **How to read a real result.** Both halves equally smooth and the same length: `fifo` (or a clock
# that pads only when dry, which real-time-paced whole frames never meet) holds, and a stutter is
# a queue running dry (fix with a pre-roll). The tiny half about four times longer: Twilio pads
# every message, and whole-frame messages (`align_frames=True`) are required. Experiment 1 then
# separates FIFO from a frame clock. Anything else is a behaviour the lab lacks: record it
# (`data/recorded/`) and add it as a playout model.

# %%
elapsed_s = time.perf_counter() - notebook_started
assert elapsed_s < 60, f"the lesson took {elapsed_s:.0f} s"  # a lesson stays quick

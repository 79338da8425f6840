# %% [markdown]
# # 04 · A live call
#
# **Question.** Does the simulator predict what the real code does on a real socket? And what
# experiment, on a real phone call, would tell the playout hypotheses of lesson 02 apart?
#
# With `OPENAI_API_KEY`, `TWILIO_AUTH_TOKEN` and `PUBLIC_URL` (the https address that reaches this
# machine, e.g. an ngrok URL) set, the next cell starts the server (what `labkit serve` runs) and
# waits for a phone call, recording its trace into `data/recorded/`. In the Twilio console, under
# your number's *Voice configuration*, set **A call comes in** to *Webhook*,
# `https://PUBLIC/incoming-call`, method **HTTP POST**. Secrets are never printed.
#
# Without them (and under CI) it places a **loopback call**: the real server and handler, a real
# `openai-agents` session fed by a replayed trace, real WebSockets, and an emulated Twilio that
# plays what arrives through a playout model and records every arrival. The trace is replayed at a
# speed factor, so a 7 s trace takes about 2 s.

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
# The loopback call runs `tiny_deltas` through `rechunk` 50 ms at 4x speed. The measured side comes
# from the arrival times the emulated Twilio recorded; the simulated side is `labkit.simulate` on
# the same trace with the same strategy over a constant link of the measured loopback delay. Both go
# through the same metric code, so a difference is one of behaviour, not of definitions.

# %%
call = await loopback_call(shipped("tiny_deltas"), "rechunk", 50, speed=4.0)
ROWS = {"media_messages": "media messages (count)", "concealment_events": "underrun events (count)",
        "concealed_ms": "underrun (ms)", "played_ms": "audio played (ms)",
        "mean_time_to_first_audio_ms": "time to first audio (ms)"}
comparison = call.table().loc[list(ROWS)].rename(index=ROWS).astype(float)
display(comparison.round(1))
fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
plots.measured_vs_simulated(
    comparison.loc[["media messages (count)", "underrun events (count)"]],
    ax=axes[0],
    ylabel="count",
    title="Messages and underruns: the simulator matches the socket",
)
plots.measured_vs_simulated(
    comparison.drop(index=["media messages (count)", "underrun events (count)"]),
    ax=axes[1],
    ylabel="ms",
    title="Audio played and time to first audio (ms)",
)
print(f"loopback delay {call.loopback_delay_ms:.2f} ms")
assert (
    comparison.loc["media messages (count)", "measured"]
    == comparison.loc["media messages (count)", "simulated"]
)
assert (
    comparison.loc["audio played (ms)", "measured"]
    == comparison.loc["audio played (ms)", "simulated"]
)
ttfa = comparison.loc["time to first audio (ms)"]
assert abs(ttfa["measured"] - ttfa["simulated"]) < 50, "first audio within 50 ms of the prediction"

# %% [markdown]
# ## The experiment that would settle it on a real call
#
# Lesson 02 left two hypotheses about Twilio standing: `fifo` (as documented: any size plays as is)
# and `frame_padding` (each message padded to whole 20 ms frames). They predict different things for
# the *same phrase* sent two ways, one after the other in one call:
#
# 1. as tiny messages (40 bytes = 5 ms each), sent at real-time pace;
# 2. as whole 20 ms frames (160 bytes), sent at the same pace.
#
# The trace below is built with `labkit.traces` from the `greeting` phrase in `data/audio`. Run it
# on a real call
# (`labkit serve --replay data/recorded/experiment_tiny_vs_frames.jsonl.gz --strategy forward`:
# `forward`, so every message goes out exactly as built; call the number) and listen, or ask Twilio
# for a call recording: if both halves sound the same, Twilio behaves as documented; if the first
# half is slow, stretched and choppy while the second is clean, Twilio pads. The simulator says what
# each hypothesis predicts a listener would hear:

# %%
from labkit.sim import simulate
from labkit.traces import Trace, audio_event, item_event, make_header, turn_event, write

phrase = Path(shipped("tiny_deltas")).parents[1].joinpath("audio", "greeting.ulaw").read_bytes()

def halves(tiny_bytes=40, frame_bytes=160, pause_ms=1500.0):
    events, start_ms = [], 100.0
    for n, size in enumerate((tiny_bytes, frame_bytes)):
        response, item = f"resp_{n}", f"item_{n}_{size}B"
        events.append(turn_event("turn_started", start_ms, response))
        for offset in range(0, len(phrase), size):
            events.append(
                audio_event(
                    start_ms + offset / 8, response, item, 0, phrase[offset : offset + size]
                )
            )
        end_ms = start_ms + len(phrase) / 8
        events += [
            item_event("audio_done", end_ms, item, 0),
            turn_event("turn_ended", end_ms, response),
        ]
        start_ms = end_ms + pause_ms
    header = make_header("synthetic", "greeting as 40-byte messages, then as 160-byte frames",
                         generator={"name": "04_live_call.halves", "tiny_bytes": tiny_bytes})
    return Trace(header, events)

experiment = halves()
# data/recorded/ is gitignored: this trace (the same bytes on every run) is never committed.
data_dir = Path(shipped("tiny_deltas")).parents[1]
experiment_path = data_dir / "recorded" / "experiment_tiny_vs_frames.jsonl.gz"
experiment_path.parent.mkdir(parents=True, exist_ok=True)
write(experiment, experiment_path)
print("wrote", experiment_path)
predictions = {}
for playout in ("fifo", "frame_padding"):
    run = simulate(experiment, "forward", link="constant", playout=playout)
    media = run.schedule.query("kind == 'media' and size > 0")
    by_item = media.groupby("item_id").agg(
        messages=("size", "size"), first_ms=("play_start_ms", "min"), last_ms=("play_end_ms", "max")
    )
    by_item["heard over (ms)"] = by_item["last_ms"] - by_item["first_ms"]
    predictions[playout] = by_item["heard over (ms)"]
    print(f"{playout}: what a listener would hear")
    display(run.audio.play())
prediction = pd.DataFrame(predictions).round(0)
prediction.insert(0, "phrase length (ms)", len(phrase) / 8)
display(prediction)
tiny_item, frame_item = sorted(prediction.index, key=lambda name: int(name.split("_")[-1][:-1]))
assert abs(prediction.loc[tiny_item, "fifo"] - len(phrase) / 8) < 1, (
    "fifo: the tiny half plays at its own length"
)
assert prediction.loc[tiny_item, "frame_padding"] > 3 * len(phrase) / 8, (
    "padding stretches 5 ms messages to 20 ms"
)
assert abs(prediction.loc[frame_item, "frame_padding"] - prediction.loc[frame_item, "fifo"]) < 20, (
    "whole frames: no difference"
)

# %% [markdown]
# **How to read a real result.** Both halves equally smooth and the same length: `fifo` holds, and
# the stutter of lesson 01 is a queue running dry (fix with a pre-roll). The tiny half about four
# times longer and choppy: Twilio pads, and whole-frame messages (`align_frames=True`) are required.
# Anything in between (e.g. choppy but not longer) is a third behaviour: record it
# (`data/recorded/`) and add it as a playout model.

# %%
elapsed_s = time.perf_counter() - notebook_started
print(f"notebook ran in {elapsed_s:.1f} s")
assert elapsed_s < 60

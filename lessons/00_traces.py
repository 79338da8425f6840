# %% [markdown]
# # 00 · Traces: what the model delivered, and when
#
# **Question.** When an OpenAI Realtime session speaks, what exactly does the app receive from the
# SDK, in what pieces, and how fast? Everything else in the lab (the simulator, the sweeps, the live
# replay) starts from this record, a **trace**: every event the session delivered with the time it
# arrived.
#
# A word of honesty first: no public recording of real Realtime delta sizes and timings exists. The
# traces shipped in `data/traces` are **synthetic**: espeak-ng speech cut into deltas by documented,
# seeded arrival models (`labkit.synth`). Each one isolates one regime. Record your own real traces
# with `labkit serve --record` and everything below works on them unchanged.

# %%
# %matplotlib inline
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import labkit.traces
from labkit.plots import plot_delta_sizes, plot_trace_timeline
from labkit.traces import read, shipped

[path.name for path in shipped()]

# %% [markdown]
# ## A trace is a header and a list of timed events
#
# Line 1 of the file says what the trace is and how it was made; every further line is one event
# (`turn_started`, `audio`, `transcript_delta`, `audio_done`, `audio_interrupted`, `turn_ended`),
# mirroring the SDK's model events. Let us open the **bursty** trace.

# %%
bursty = read(shipped("bursty"))
print(bursty.description)
bursty.header["generator"]

# %%
counts = Counter(event.type for event in bursty.events)
assert bursty.is_synthetic
assert counts["turn_started"] == counts["turn_ended"] == len(bursty.items)
pd.Series(counts, name="events").rename_axis("event type").to_frame()

# %% [markdown]
# ## Media time: bytes divided by eight
#
# Each `audio` event carries mu-law bytes: 8000 samples per second, one byte each, so **8 bytes are
# 1 ms** of audio. An event's *media time* is the byte offset of its first byte within its item,
# divided by 8. Summing by hand over the raw events:

# %%
audio_bytes = sum(len(event.audio) for event in bursty.events if event.type == "audio")
audio_ms_by_hand = audio_bytes / 8
sizes_ms = np.concatenate([bursty.sizes(key) for key in bursty.items]) / 8
print(f"{audio_ms_by_hand:.0f} ms of audio in {counts['audio']} deltas, "
      f"delivered within {bursty.duration_ms:.0f} ms of session time")
assert bursty.audio_ms == audio_ms_by_hand == sizes_ms.sum()

# %% [markdown]
# The package keeps the same per-item views the simulator reads: `trace.items` (in order of first
# audio), `trace.arrivals_ms(key)`, `trace.sizes(key)` and `trace.offsets_ms(key)`, the media time
# just derived:

# %%
key = bursty.items[0]
offsets_by_hand = np.concatenate([[0], np.cumsum(bursty.sizes(key))[:-1]]) / 8
assert np.array_equal(bursty.offsets_ms(key), offsets_by_hand)
pd.DataFrame({
    "arrival (ms since the session started)": bursty.arrivals_ms(key),
    "media time (ms)": bursty.offsets_ms(key),
    "size (bytes)": bursty.sizes(key),
}).head().round(1)


# %% [markdown]
# ## How fast does audio arrive?
#
# The caller listens at 1 ms of audio per ms. The model may deliver faster ("bursty": vendors report
# 1 s of audio in 100-300 ms) or only about as fast as real time. A one-line measure per item: the
# wall-clock ms it took to deliver each second of audio after the first delta.

# %%
def wall_ms_per_audio_second(trace, key):
    arrivals, sizes = trace.arrivals_ms(key), trace.sizes(key)
    return (arrivals[-1] - arrivals[0]) / ((sizes.sum() - sizes[0]) / 8) * 1000

realtime = read(shipped("realtime_jitter"))
for trace in (bursty, realtime):
    speeds = [round(wall_ms_per_audio_second(trace, k)) for k in trace.items]
    print(f"{trace.header['generator']['trace']}: each answer's second of audio arrived within "
          f"{', '.join(map(str, speeds))} ms")

assert all(100 <= wall_ms_per_audio_second(bursty, k) <= 300 for k in bursty.items)
assert all(wall_ms_per_audio_second(realtime, k) > 850 for k in realtime.items)

# %% [markdown]
# The timeline plots audio delivered against arrival time, one curve per item. The dotted diagonal
# from each item's first arrival is real time: where a curve runs **above** it, the app holds audio
# the caller has not heard yet (a cushion). Where it only hugs the diagonal, any hiccup means the
# caller's playout runs dry.

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4), layout="constrained")
plot_trace_timeline(bursty, ax=left)
plot_trace_timeline(realtime, ax=right);

# %% [markdown]
# The bursty curves climb about five times steeper than the diagonal (the model allows 4-8x); the
# near real-time ones stay just above it, wobbling by the jitter. Same speech, very different
# cushions: that difference, not the packet size, is what notebook 01 tests.
#
# ## How big are the deltas?
#
# The original report logged deltas of 20-60 bytes (2.5-7.5 ms of audio each), far below one 20 ms
# Twilio frame (160 B). The `tiny_deltas` trace reproduces that; `large_deltas` is the opposite
# extreme (4800 B = 600 ms per delta).

# %%
tiny, large = read(shipped("tiny_deltas")), read(shipped("large_deltas"))
fig, (left, right) = plt.subplots(1, 2, figsize=(13, 3.5), layout="constrained")
plot_delta_sizes(tiny, ax=left)
plot_delta_sizes(large, ax=right)

tiny_sizes = np.concatenate([tiny.sizes(k) for k in tiny.items])
assert tiny_sizes.min() >= 20 and tiny_sizes.max() <= 60
assert all((large.sizes(k)[:-1] == 4800).all() for k in large.items)

# %% [markdown]
# ## Barge-in: the item that was cut
#
# When the caller talks over the agent, the SDK emits `audio_interrupted` and no more audio of that
# item is ever sent. In the `barge_in` trace the caller interrupts the long returns-policy answer:

# %%
barge = read(shipped("barge_in"))
(cut_key,) = barge.interrupted_items
phrase = barge.header["generator"]["phrases"][barge.items.index(cut_key)]
whole_bytes = (labkit.traces.SHIPPED_DIR.parent / "audio" / f"{phrase}.ulaw").read_bytes()
heard_bytes = barge.item_audio(cut_key)
cut = next(e for e in barge.events if e.type == "audio_interrupted")
print(f"{phrase}: {len(heard_bytes) / 8:.0f} ms of {len(whole_bytes) / 8:.0f} ms sent before "
      f"the barge-in at {cut.t_ms:.0f} ms")

assert whole_bytes.startswith(heard_bytes) and len(heard_bytes) < len(whole_bytes)
assert barge.arrivals_ms(cut_key)[-1] <= cut.t_ms
assert not any(e.type == "audio_done" and e.key == cut_key for e in barge.events)
plot_trace_timeline(barge);

# %% [markdown]
# ## Listen
#
# `trace.render(key)` gives an item's audio (or, without a key, all of the trace's audio back to
# back) as a `labkit.audio.Audio` that plays inline. This is the audio as delivered, with no network
# or playout in between; what the caller would hear comes from the simulator (notebook 01).

# %%
barge.render(cut_key)  # the interrupted answer: it stops mid-sentence

# %%
whole = bursty.render()
assert whole.duration_ms == bursty.audio_ms
whole

# %% [markdown]
# ## Where the traces come from, and how to remake them
#
# Every shipped trace is one entry in `labkit.synth.catalog.CATALOG` (phrases, arrival model, seed).
# `labkit synth traces` rebuilds all of them byte for byte from `data/audio`; `data/README.md` lists
# each file's model and seed. The same recipe, rebuilt in memory, gives exactly the shipped events:

# %%
from labkit.synth.build import build_trace
from labkit.synth.catalog import spec_named
from labkit.synth.speech import load_phrase_audio, load_phrase_texts

audio_dir = labkit.traces.SHIPPED_DIR.parent / "audio"
spec = spec_named("barge_in")
rebuilt = build_trace(spec, load_phrase_audio(audio_dir), load_phrase_texts(audio_dir))
assert rebuilt.events == barge.events and rebuilt.header == barge.header
spec.model

# %% [markdown]
# **What we saw.** A trace is the SDK's event stream with arrival times; its audio is exact (the
# item's bytes are its deltas concatenated, `audio_ms` = bytes / 8). The shipped synthetic traces
# span the regimes that matter: bursty vs near real-time delivery, tiny vs large deltas, stalls,
# several turns, barge-in, and a long conversation for benchmarks. Next, notebook 01 asks which of
# these properties makes a Twilio call stutter.

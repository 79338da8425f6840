"""Barge-in and marks, measured: stale audio after ``clear``, what the playback tracker is told,
and the original report's mark leak. The computations behind notebooks/05_barge_in_and_marks.ipynb.

- ``stale_sweep``: stale audio heard after a barge-in against the sender's lead, beside the
  time the ``clear`` took to reach Twilio from the barge-in (what the caller hears after speaking
  is what plays before the ``clear`` reaches Twilio) and its one-way trip.
- ``LedgerRecorder``: wraps any outbound strategy and records, after every call, its ledger
  (pending marks, credited bytes) and every message it emitted; ``simulate`` drives it like any
  strategy.
- ``tracker_truncations``: what the SDK's ``RealtimePlaybackTracker`` is told by the credited
  echoes of a run, and the ms the model would truncate each interrupted item at, beside what the
  caller really heard of it.
- ``defects``: the original report's three defects (leaked marks, tail cut by ``clear`` on
  ``audio_done``, audio flushed just before ``clear``), measured from one run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from labkit.outbound import make_strategy, threshold_meaning
from labkit.outbound.base import AudioChunk, Clear, Mark, Media, Outbound, OutboundStrategy
from labkit.sim import SimResult, prepare, simulate
from labkit.sim.prepared import INTERRUPTED, PreparedTrace
from labkit.traces import Trace

BYTES_PER_MS = 8
ItemKey = tuple[str, int]


# ---------------------------------------------------------------- stale audio after clear


def clear_transits_ms(schedule: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.float64]]:
    """One-way trip of every ``clear`` in a run (arrival at Twilio minus send), in send order."""
    clears = schedule[schedule["kind"] == "clear"]
    transits: np.ndarray[Any, np.dtype[np.float64]] = (
        clears["arrived_ms"].to_numpy(dtype=np.float64)
        - clears["sent_ms"].to_numpy(dtype=np.float64)
    )
    return transits


def clear_reach_ms(schedule: pd.DataFrame, barge_in_ms: float) -> float:
    """Time from the barge-in at ``barge_in_ms`` to the first ``clear``'s arrival at Twilio: its
    one-way trip plus any wait to leave the sender (a stalled sending loop sends it late); NaN
    without a ``clear``."""
    clears = schedule[schedule["kind"] == "clear"]
    if clears.empty:
        return math.nan
    return float(clears["arrived_ms"].iloc[0]) - barge_in_ms


def stale_sweep(
    trace: Trace | PreparedTrace,
    strategies: Iterable[str],
    leads_ms: Iterable[float],
    *,
    link: str = "jitter",
    seeds: Iterable[int] = (0,),
    link_params: dict[str, float] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Stale audio after the barge-in, one row per (strategy, lead, seed), with a progress bar.

    Columns: strategy, lead_ms (the strategy's ``threshold_ms``), seed, stale_ms (the metric
    ``stale_after_barge_in_ms``), clear_reach_ms (from the barge-in to the first clear's arrival
    at Twilio), clear_transit_ms (its one-way trip), ahead_ms (audio of the interrupted item
    queued at Twilio or in flight at the barge-in), concealed_ms (silence in gaps the caller
    heard in the whole call). A strategy that ignores ``threshold_ms`` (its class says so) runs
    once per seed, its row repeated at every lead.
    """
    from tqdm.auto import tqdm

    prepared = trace if isinstance(trace, PreparedTrace) else prepare(trace)
    if not prepared.interrupts_ms:
        raise ValueError(f"stale_sweep: trace {prepared.name!r} has no audio_interrupted event")
    first = prepared.codes.index(INTERRUPTED)
    at_ms, key = prepared.times_ms[first], prepared.keys[first]
    names, seed_list = list(strategies), list(seeds)
    lead_list = [float(v) for v in leads_ms]
    runs = {name: lead_list if threshold_meaning(name) is not None else lead_list[:1]
            for name in names}
    rows = []
    with tqdm(total=sum(map(len, runs.values())) * len(seed_list), desc="barge-in runs",
              unit="run", disable=not progress) as bar:  # fmt: skip
        for name, leads in runs.items():
            for lead in leads:
                for seed in seed_list:
                    run = simulate(prepared, name, lead, link=link, seed=seed,
                                   link_params=link_params)
                    transits = clear_transits_ms(run.schedule)
                    rows.append({
                        "strategy": name,
                        "lead_ms": lead,
                        "seed": seed,
                        "stale_ms": run.metrics.stale_after_barge_in_ms,
                        "clear_reach_ms": clear_reach_ms(run.schedule, at_ms),
                        "clear_transit_ms": float(transits[0]) if len(transits) else math.nan,
                        "ahead_ms": audio_ahead_ms(run.schedule, key, at_ms),
                        "concealed_ms": run.metrics.concealed_ms,
                    })
                    bar.update()
    once = {name for name, leads in runs.items() if len(leads) < len(lead_list)}
    return _every_lead(pd.DataFrame(rows), names, once, lead_list)


def _every_lead(rows: pd.DataFrame, names: list[str], once: set[str],
                leads_ms: list[float]) -> pd.DataFrame:  # fmt: skip
    """``rows`` with the runs of each strategy in ``once`` (run at one lead) repeated at every
    lead, strategies in the order asked."""
    if not names:
        return rows
    parts = []
    for name in names:
        mine = rows[rows["strategy"] == name]
        if name in once:
            mine = pd.concat([mine.assign(lead_ms=lead) for lead in leads_ms])
        parts.append(mine)
    return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------- recording a strategy's ledger


@dataclass
class LedgerRecorder:
    """An outbound strategy that delegates to ``inner`` and records what it did.

    ``samples``: after every call, (t_ms, call, pending_count, credited_bytes, sent_bytes);
    ``sent``: every media (with audio) and clear message emitted (t_ms, call, kind, item_id,
    bytes, marks), as the wire carries them. ``close()`` takes a
    last sample *before* the inner strategy forgets its marks, so leaked marks stay visible.
    """

    inner: OutboundStrategy
    samples: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    name: str = field(init=False)
    threshold_ms: float = field(init=False)
    _sent_bytes: int = 0

    def __post_init__(self) -> None:
        self.name, self.threshold_ms = self.inner.name, self.inner.threshold_ms

    @property
    def ledger(self) -> Any:
        return self.inner.ledger

    def push(self, chunk: AudioChunk, now: float) -> list[Outbound]:
        return self._record("push", now, self.inner.push(chunk, now))

    def poll(self, now: float) -> list[Outbound]:
        return self._record("poll", now, self.inner.poll(now))

    def next_deadline(self) -> float | None:
        return self.inner.next_deadline()

    def end(self, item_id: str, content_index: int, now: float) -> list[Outbound]:
        return self._record("end", now, self.inner.end(item_id, content_index, now))

    def interrupt(self, now: float) -> list[Outbound]:
        return self._record("interrupt", now, self.inner.interrupt(now))

    def echo(self, name: str, now: float) -> Mark | None:
        mark = self.inner.echo(name, now)
        self._sample("echo", now)
        return mark

    def close(self) -> None:
        last_ms = self.samples[-1]["t_ms"] if self.samples else 0.0
        self._sample("close", last_ms)
        self.inner.close()

    def samples_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.samples, columns=["t_ms", "call", "pending_count",
                                                   "credited_bytes", "sent_bytes"])

    def sent_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.sent, columns=["t_ms", "call", "kind", "item_id", "bytes",
                                                "marks"])

    def _record(self, call: str, now: float, out: list[Outbound]) -> list[Outbound]:
        for message in out:
            if isinstance(message, Media) and message.payload:  # marks-only: no media message
                self._sent_bytes += len(message.payload)
                self.sent.append({"t_ms": now, "call": call, "kind": "media",
                                  "item_id": message.item_id, "bytes": len(message.payload),
                                  "marks": len(message.marks)})
            elif isinstance(message, Clear):
                self.sent.append({"t_ms": now, "call": call, "kind": "clear", "item_id": "",
                                  "bytes": 0, "marks": 0})
        self._sample(call, now)
        return out

    def _sample(self, call: str, now: float) -> None:
        self.samples.append({"t_ms": now, "call": call,
                             "pending_count": self.inner.ledger.pending_count,
                             "credited_bytes": self.inner.ledger.credited_bytes,
                             "sent_bytes": self._sent_bytes})


def recorded_run(
    trace: Trace | PreparedTrace, strategy: str, threshold_ms: float, *, link: str = "jitter",
    seed: int = 0, **options: Any,
) -> tuple[SimResult, LedgerRecorder]:
    """``simulate`` with strategy ``strategy`` wrapped in a LedgerRecorder."""
    recorder = LedgerRecorder(make_strategy(strategy, threshold_ms, **options))
    return simulate(trace, recorder, link=link, seed=seed), recorder


# ---------------------------------------------------------------- what the tracker is told


def _interrupts(trace: Trace) -> list[tuple[float, ItemKey]]:
    return [(float(e.t_ms), e.key) for e in trace.events
            if e.type == "audio_interrupted" and e.key is not None]


def heard_curve(schedule: pd.DataFrame, key: ItemKey, times_ms: Iterable[float]) -> pd.DataFrame:
    """Audio of item ``key`` heard by each time (t_ms, heard_ms): what the caller really heard."""
    times = [float(t) for t in times_ms]
    return pd.DataFrame({"t_ms": times, "heard_ms": [heard_ms(schedule, key, t) for t in times]})


def heard_ms(schedule: pd.DataFrame, key: ItemKey, until_ms: float = math.inf) -> float:
    """Audio of item ``key`` the caller heard before ``until_ms`` (ms), from the play columns."""
    rows = schedule[(schedule["kind"] == "media") & (schedule["item_id"] == key[0])
                    & (schedule["content_index"] == key[1]) & (schedule["played_bytes"] > 0)]
    start = rows["play_start_ms"].to_numpy(dtype=np.float64)
    played_ms = rows["played_bytes"].to_numpy(dtype=np.float64) / BYTES_PER_MS
    return float(np.clip(until_ms - start, 0.0, played_ms).sum())


def audio_ahead_ms(schedule: pd.DataFrame, key: ItemKey, at_ms: float) -> float:
    """Audio of item ``key`` sent by ``at_ms`` but not yet heard then: queued at Twilio or in
    flight (ms). Without a ``clear`` the caller would still hear all of it."""
    media = schedule[(schedule["kind"] == "media") & (schedule["item_id"] == key[0])
                     & (schedule["content_index"] == key[1]) & (schedule["sent_ms"] <= at_ms)]
    return float(media["size"].sum()) / BYTES_PER_MS - heard_ms(schedule, key, at_ms)


def credit_events(schedule: pd.DataFrame) -> pd.DataFrame:
    """Marks the strategy credited, in the order the app received their echoes: t_ms, item_id,
    content_index, bytes, echo_ms (when Twilio echoed it)."""
    marks = schedule[(schedule["kind"] == "mark") & (schedule["credited_bytes"] > 0)]
    events = pd.DataFrame({
        "t_ms": marks["echo_received_ms"].to_numpy(dtype=np.float64),
        "item_id": marks["item_id"].to_numpy(),
        "content_index": marks["content_index"].to_numpy(dtype=np.int64),
        "bytes": marks["credited_bytes"].to_numpy(dtype=np.int64),
        "echo_ms": marks["echo_ms"].to_numpy(dtype=np.float64),
    })
    return events.sort_values("t_ms", kind="stable").reset_index(drop=True)


class TrackerModel:
    """The SDK's RealtimePlaybackTracker rules, for mu-law: credits to one item add up; a credit
    for another item restarts the count; an interruption forgets everything."""

    def __init__(self) -> None:
        self.item: ItemKey | None = None
        self.elapsed_ms: float | None = None

    def on_play_bytes(self, key: ItemKey, size: int) -> None:
        if self.item != key:
            self.item, self.elapsed_ms = key, 0.0
        assert self.elapsed_ms is not None
        self.elapsed_ms += size / BYTES_PER_MS

    def on_interrupted(self) -> None:
        self.item, self.elapsed_ms = None, None


def tracker_timeline(trace: Trace, run: SimResult) -> pd.DataFrame:
    """What the playback tracker holds after each credit and each barge-in of a run.

    Columns: t_ms, event ("credit" or "interrupt"), item_id (the item the tracker holds, "" when
    reset), elapsed_ms (NaN when reset), truncated_item / truncated_at_ms (on "interrupt": the item
    interrupted and where the model truncates it, NaN if the tracker held another item or none).
    The model reads the tracker when the caller starts speaking, before ``clear`` goes out; at a
    tie the simulator handles echoes first, and so does this.
    """
    credits = credit_events(run.schedule)
    pending = _interrupts(trace)
    tracker = TrackerModel()
    rows: list[dict[str, Any]] = []

    def snapshot(t_ms: float, event: str, item: str = "", cut: float | None = None) -> None:
        rows.append({"t_ms": t_ms, "event": event,
                     "item_id": "" if tracker.item is None else tracker.item[0],
                     "elapsed_ms": math.nan if tracker.elapsed_ms is None else tracker.elapsed_ms,
                     "truncated_item": item, "truncated_at_ms": math.nan if cut is None else cut})

    def interrupt() -> None:
        t_ms, key = pending.pop(0)
        cut = tracker.elapsed_ms if tracker.item == key else None
        tracker.on_interrupted()
        snapshot(t_ms, "interrupt", key[0], cut)

    for t_ms, item_id, content_index, size in zip(
        credits["t_ms"].tolist(), credits["item_id"].tolist(),
        credits["content_index"].tolist(), credits["bytes"].tolist(), strict=True,
    ):
        while pending and pending[0][0] < t_ms:
            interrupt()
        tracker.on_play_bytes((str(item_id), int(content_index)), int(size))
        snapshot(float(t_ms), "credit")
    while pending:
        interrupt()
    return pd.DataFrame(rows, columns=["t_ms", "event", "item_id", "elapsed_ms",
                                       "truncated_item", "truncated_at_ms"])


def tracker_truncations(trace: Trace, run: SimResult) -> pd.DataFrame:
    """Per barge-in: where the model truncates the item and what the caller heard of it (ms).

    Columns: item_id, interrupt_ms, truncated_at_ms (NaN: nothing credited for that item),
    heard_by_interrupt_ms, heard_ms (all of it, including the stale audio after the interrupt),
    credited_ms (all credits for the item in the run), credited_after_clear_ms (credits for marks
    Twilio echoed once the clear arrived: the clear's echoes, not playback), phantom_ms (the
    longest the tracker claimed the item was playing after its truncation).
    """
    schedule = run.schedule
    credits = credit_events(schedule)
    timeline = tracker_timeline(trace, run)
    clear_arrivals = schedule.loc[schedule["kind"] == "clear", "arrived_ms"].to_numpy()
    cuts = timeline[timeline["event"] == "interrupt"]
    rows = []
    columns = (cuts["t_ms"].tolist(), cuts["truncated_item"].tolist(),
               cuts["truncated_at_ms"].tolist())
    for n, (t_ms, item, cut) in enumerate(zip(*columns, strict=True)):
        mine = credits[credits["item_id"] == item]
        clear_ms = clear_arrivals[n] if n < len(clear_arrivals) else math.inf
        later = timeline[(timeline["t_ms"] > t_ms) & (timeline["item_id"] == item)]
        key = (str(item), int(mine["content_index"].iloc[0]) if len(mine) else 0)
        rows.append({
            "item_id": item,
            "interrupt_ms": t_ms,
            "truncated_at_ms": cut,
            "heard_by_interrupt_ms": heard_ms(schedule, key, t_ms),
            "heard_ms": heard_ms(schedule, key),
            "credited_ms": float(mine["bytes"].sum()) / BYTES_PER_MS,
            "credited_after_clear_ms": float(
                mine.loc[mine["echo_ms"] >= clear_ms, "bytes"].sum()) / BYTES_PER_MS,
            "phantom_ms": float(later["elapsed_ms"].max()) if len(later) else 0.0,
        })
    return pd.DataFrame(rows)


def _truncate(tracker: TrackerModel, key: ItemKey) -> float | None:
    elapsed = tracker.elapsed_ms if tracker.item == key else None
    tracker.on_interrupted()
    return elapsed


# ---------------------------------------------------------------- the original report's defects


def defects(run: SimResult, recorder: LedgerRecorder) -> dict[str, float]:
    """The original report's defects, measured from one recorded run.

    - leaked_marks: marks still pending when the call ended (never sent, so never echoed);
    - sent_bytes / credited_bytes / played_bytes: what went out, what echoes credited, what played;
    - credited_unplayed_bytes: credited though never played;
    - tail_cut_bytes: bytes dropped by a ``clear`` sent from ``end()`` (audio_done);
    - flushed_at_barge_in_bytes: bytes sent by ``interrupt()`` (flush before clear), and
      flushed_then_discarded_bytes: those of them the caller never heard.
    """
    samples, messages = recorder.samples_frame(), messages_with_calls(run, recorder)
    media = messages[messages["kind"] == "media"]
    flushed = media[media["call"] == "interrupt"]
    return {
        "leaked_marks": int(samples["pending_count"].iloc[-1]) if len(samples) else 0,
        "sent_bytes": int(media["size"].sum()),
        "credited_bytes": run.metrics.credited_bytes,
        "played_bytes": run.metrics.played_bytes,
        "credited_unplayed_bytes": run.metrics.credited_unplayed_bytes,
        "tail_cut_bytes": _cleared_by_clears_from(messages, "end"),
        "flushed_at_barge_in_bytes": int(flushed["size"].sum()),
        "flushed_then_discarded_bytes": int((flushed["size"] - flushed["played_bytes"]).sum()),
    }


def messages_with_calls(run: SimResult, recorder: LedgerRecorder) -> pd.DataFrame:
    """The run's media and clear rows (marks left out), each with the strategy call that
    emitted it (push, poll, end, interrupt): the simulator writes them in emission order."""
    rows = run.schedule[run.schedule["kind"] != "mark"].reset_index(drop=True)
    calls = recorder.sent_frame()["call"]
    if len(rows) != len(calls):
        raise ValueError(f"messages_with_calls: the run has {len(rows)} media/clear rows but the "
                         f"recorder saw {len(calls)} messages (was it the run's strategy?)")
    return rows.assign(call=calls.to_numpy())


def _cleared_by_clears_from(messages: pd.DataFrame, call: str) -> int:
    """Bytes dropped by the clears a given call emitted: a clear drops what was sent after the
    previous clear and is still queued (each media row's cleared_bytes)."""
    total, since = 0, 0
    for position, (kind, emitted_by) in enumerate(zip(messages["kind"], messages["call"],
                                                      strict=True)):
        if kind != "clear":
            continue
        if emitted_by == call:
            total += int(messages["cleared_bytes"].iloc[since:position].sum())
        since = position + 1
    return total

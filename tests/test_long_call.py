"""A two-hour call through the sans-I/O core in virtual time: memory and the ledger stay bounded.

A strategy, its mark ledger and a FIFO playout model (Twilio as documented) are driven by a
virtual clock for two hours of agent audio: utterances delivered faster than real time, caller
turns between them, a barge-in every few utterances, marks echoed when played. Nothing in the
core may grow with the length of the call: tracemalloc's peak stays far below the audio's own size
and the ledger holds only what is in flight. A peer that never echoes cannot grow the ledger past
Twilio's own 10-minute buffer. See notebooks/05_barge_in_and_marks.ipynb.
"""

from __future__ import annotations

import asyncio
import heapq
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from labkit import traces
from labkit.live.peer import TwilioPeer
from labkit.live.server import serve_in_background
from labkit.live.settings import CallSettings, ServerSettings
from labkit.marks import TWILIO_BUFFER_LIMIT_MS
from labkit.outbound import AudioChunk, Clear, Media, Outbound, OutboundStrategy, make_strategy
from labkit.sim.playout import FifoPlayout
from labkit.traces import Trace, TraceEvent, audio_event, item_event, make_header, turn_event

BYTES_PER_MS = 8
CALL_MS = 2 * 60 * 60 * 1000.0  # two hours of agent audio
UTTERANCE_MS = 6000.0
DELTA_MS = 100.0  # audio per model delta
DELIVERY_SPEEDUP = 3.0  # the model delivers 3x faster than real time
CALLER_TURN_MS = 4000.0
BARGE_IN_EVERY = 7  # every 7th utterance is interrupted halfway
MEMORY_PEAK_BYTES = 8 * 1024 * 1024  # the audio alone is 57.6 MB


@dataclass
class Totals:
    pushed: int = 0
    received: int = 0  # bytes the playout received
    completed_items_bytes: int = 0  # bytes of items that were never interrupted
    cleared_echoes: int = 0
    max_pending_marks: int = 0
    max_pending_bytes: int = 0
    items: int = 0
    echoes: int = 0
    fresh_playouts: int = 0


@dataclass(order=True)
class ModelEvent:
    t_ms: float
    seq: int
    kind: str = field(compare=False)  # "audio" | "done" | "interrupt"
    item: str = field(compare=False)
    size: int = field(compare=False, default=0)


def conversation(call_ms: float, barge_in_every: int | None = BARGE_IN_EVERY) -> list[ModelEvent]:
    """The model's events for ``call_ms`` of agent audio (a heap, popped in time order)."""
    events: list[ModelEvent] = []
    t, spoken, n = 0.0, 0.0, 0
    delta_bytes = round(DELTA_MS * BYTES_PER_MS)
    while spoken < call_ms:
        item = f"item{n}"
        deltas = round(UTTERANCE_MS / DELTA_MS)
        barge_in = barge_in_every is not None and n % barge_in_every == barge_in_every - 1
        cut = deltas // 2 if barge_in else None
        for k in range(deltas):
            if k == cut:
                events.append(ModelEvent(t, len(events), "interrupt", item))
                break
            events.append(ModelEvent(t, len(events), "audio", item, delta_bytes))
            t += DELTA_MS / DELIVERY_SPEEDUP
            spoken += DELTA_MS
        else:
            events.append(ModelEvent(t, len(events), "done", item))
        t += UTTERANCE_MS + CALLER_TURN_MS  # the agent's audio plays out, then the caller talks
        n += 1
    heapq.heapify(events)
    return events


class VirtualCall:
    """Strategy -> zero-delay link -> FIFO playout -> echoes -> strategy, on a virtual clock."""

    def __init__(self, strategy: OutboundStrategy, *, echo: bool) -> None:
        self.strategy = strategy
        self.echo = echo
        self.playout = FifoPlayout()
        self.totals = Totals()
        self._interrupted: set[str] = set()
        self._item_bytes: dict[str, int] = {}

    def run(self, events: list[ModelEvent]) -> Totals:
        while events or self.strategy.next_deadline() is not None or self._next_echo_ms():
            now = min(self._candidates(events))
            self._echo_due(now)
            if events and events[0].t_ms <= now:
                self._deliver(self._on_model(heapq.heappop(events), now), now)
            deadline = self.strategy.next_deadline()
            if deadline is not None and deadline <= now:
                self._deliver(self.strategy.poll(now), now)
            self._observe(now)
        return self.totals

    def _candidates(self, events: list[ModelEvent]) -> list[float]:
        times = [events[0].t_ms] if events else []
        for t in (self.strategy.next_deadline(), self._next_echo_ms()):
            if t is not None:
                times.append(t)
        return times

    def _next_echo_ms(self) -> float | None:
        return self.playout.next_event_ms()

    def _on_model(self, event: ModelEvent, now: float) -> list[Outbound]:
        if event.kind == "audio":
            self.totals.pushed += event.size
            self._item_bytes[event.item] = self._item_bytes.get(event.item, 0) + event.size
            data = bytes([len(self._item_bytes) % 251]) * event.size
            return self.strategy.push(AudioChunk(event.item, 0, data), now)
        self.totals.items += 1
        if event.kind == "done":
            self.totals.completed_items_bytes += self._item_bytes.pop(event.item)
            return self.strategy.end(event.item, 0, now)
        self._item_bytes.pop(event.item)
        return self.strategy.interrupt(now)

    def _deliver(self, outbound: list[Outbound], now: float) -> None:
        for message in outbound:
            if isinstance(message, Clear):
                for name in self.playout.receive_clear(now):
                    self.totals.cleared_echoes += 1
                    assert self.strategy.echo(name, now) is None, "a cleared mark was credited"
                continue
            assert isinstance(message, Media)
            if message.payload:
                self.totals.received += len(message.payload)
                self.playout.receive_media(message.payload, now)
            for mark in message.marks:
                self.playout.receive_mark(mark.name, now)

    def _echo_due(self, now: float) -> None:
        for name, echo_ms in self.playout.advance(now):
            self.totals.echoes += 1
            if self.echo:
                self.strategy.echo(name, echo_ms)

    def _observe(self, now: float) -> None:
        ledger = self.strategy.ledger
        self.totals.max_pending_marks = max(self.totals.max_pending_marks, ledger.pending_count)
        pending_bytes = getattr(ledger, "pending_bytes", 0)
        self.totals.max_pending_bytes = max(self.totals.max_pending_bytes, pending_bytes)
        self._forget_played_history(now)

    def _forget_played_history(self, now: float) -> None:
        """Twilio's queue ran empty with no mark pending: an empty FIFO is a fresh FIFO.

        The playout model keeps every segment it played (to render what the caller heard); that
        history is the test's, not the server's, so it is dropped between utterances."""
        segments = self.playout.segments
        idle = not segments or segments[-1][1] <= now
        if idle and self.playout.next_event_ms() is None and len(self.playout.plays) > 100:
            self.playout = FifoPlayout()
            self.totals.fresh_playouts += 1


def run_two_hours(
    strategy: OutboundStrategy, *, echo: bool, barge_in_every: int | None = BARGE_IN_EVERY
) -> tuple[Totals, int]:
    events = conversation(CALL_MS, barge_in_every)
    tracemalloc.start()
    try:
        totals = VirtualCall(strategy, echo=echo).run(events)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert totals.pushed >= CALL_MS * BYTES_PER_MS
    assert totals.fresh_playouts > 100, "the FIFO ran empty between utterances"
    return totals, peak


@pytest.mark.parametrize(("name", "threshold_ms"), [("forward", 0.0), ("paced", 200.0)])
def test_two_hours_with_echoes_keep_memory_and_the_ledger_bounded(
    name: str, threshold_ms: float
) -> None:
    strategy = make_strategy(name, threshold_ms)
    totals, peak = run_two_hours(strategy, echo=True)
    assert totals.received >= totals.completed_items_bytes, "every completed item was sent"
    assert totals.cleared_echoes > 0, "barge-ins happened and their echoes credited nothing"
    assert strategy.ledger.pending_count == 0, "every mark in flight was settled at the end"
    # In flight at most: one utterance delivered ahead (6 s), a mark per 100 ms, plus slack.
    assert totals.max_pending_marks <= UTTERANCE_MS / 100 + 10, totals
    assert peak < MEMORY_PEAK_BYTES, f"tracemalloc peak {peak / 1e6:.1f} MB"


def test_credit_matches_what_played_over_two_hours() -> None:
    """With every mark echoed, the ledger credits exactly the bytes of uninterrupted items
    plus the parts of interrupted ones whose marks played before the clear."""
    strategy = make_strategy("forward", 0.0, mark_every_ms=None)
    totals = VirtualCall(strategy, echo=True).run(conversation(CALL_MS / 4))
    credited = strategy.ledger.credited_bytes
    assert totals.completed_items_bytes <= credited <= totals.received


def test_a_peer_that_never_echoes_cannot_grow_the_ledger_past_twilios_buffer() -> None:
    strategy = make_strategy("forward", 0.0)
    totals, peak = run_two_hours(strategy, echo=False, barge_in_every=None)  # no clear either
    assert totals.echoes > 0, "the playout did echo; the peer dropped them"
    limit_bytes = TWILIO_BUFFER_LIMIT_MS * BYTES_PER_MS
    assert totals.max_pending_bytes <= limit_bytes
    assert totals.max_pending_bytes > limit_bytes * 0.9, "the cap, not the call, bounded it"
    assert peak < MEMORY_PEAK_BYTES, f"tracemalloc peak {peak / 1e6:.1f} MB"


# ---------------------------------------------------------------------- the live handler


def many_items_trace(items: int, item_bytes: int) -> Trace:
    """``items`` answers, each delivered fast and then heard whole before the next one."""
    events: list[TraceEvent] = []
    delta_bytes, t = 400, 0.0
    for n in range(items):
        events.append(turn_event("turn_started", t, f"r{n}"))
        for _ in range(item_bytes // delta_bytes):
            events.append(audio_event(t, f"r{n}", f"i{n}", 0, bytes([n % 250]) * delta_bytes))
            t += 10.0
        events.append(item_event("audio_done", t, f"i{n}", 0))
        events.append(turn_event("turn_ended", t, f"r{n}"))
        t += item_bytes / BYTES_PER_MS + 500.0  # it plays out, the caller answers
    return Trace(make_header("synthetic", "many answers"), events)


@pytest.mark.anyio
async def test_a_live_call_keeps_only_the_audio_still_unheard(tmp_path: Path) -> None:
    """The handler keeps each item's audio to credit the playback tracker with the real bytes;
    once an item is heard whole that copy must go, or a long call holds all it ever said."""
    items, item_bytes, speed = 12, 8000, 10.0
    trace = many_items_trace(items, item_bytes)
    path = tmp_path / "many.jsonl.gz"
    traces.write(trace, path)
    settings = ServerSettings(call=CallSettings(), replay_trace=path, replay_speed=speed)
    held: list[int] = []
    async with serve_in_background(settings) as server:
        call = asyncio.create_task(TwilioPeer(server.ws_url, speed=speed).run())
        while not call.done():
            for handler in server.app.state.live_calls:
                held.append(sum(len(audio) for audio in handler._item_audio.values()))
            await asyncio.sleep(0.005)
        recording = await call
        (handler,) = server.app.state.finished_calls
    assert len(recording.received_audio()) == items * item_bytes
    assert handler.stats.marks_credited_bytes == items * item_bytes
    assert max(held) <= 2 * item_bytes, f"held {max(held)} B of a {items * item_bytes} B call"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

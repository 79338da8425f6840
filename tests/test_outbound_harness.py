"""A virtual-clock harness for outbound strategies, and the checks every strategy must pass.

The harness plays the driver (simulator or live handler): it calls ``poll`` exactly at
``next_deadline()``, records what arrived when and what went out when, and plays a Twilio that
echoes marks in order and echoes every pending mark on ``clear``. The other outbound test
modules import it.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

import pytest

from labkit.outbound import AudioChunk, Clear, Mark, Media, Outbound, make_strategy
from labkit.outbound.base import BYTES_PER_MS, FRAME_BYTES

ItemKey = tuple[str, int]
EPS_MS = 1e-6


def pattern(key: ItemKey, offset: int, size: int) -> bytes:
    """Bytes that tell where they came from: item, content part and offset."""
    salt = sum(map(ord, key[0])) * 31 + key[1] * 7
    return bytes((salt + i * 13 + (i >> 8)) % 256 for i in range(offset, offset + size))


@dataclass
class Pushed:
    key: ItemKey
    start: int
    end: int
    t: float
    seq: int  # global push order of the chunk's first byte
    close_t: float = math.inf  # when the item was closed: end() or another item's audio


@dataclass
class Run:
    """Drives one strategy on a virtual clock and records everything."""

    strategy: Any
    now: float = 0.0
    sent: list[tuple[float, Outbound]] = field(default_factory=list)
    pushes: list[Pushed] = field(default_factory=list)
    offsets: dict[ItemKey, int] = field(default_factory=dict)
    interrupts: list[float] = field(default_factory=list)
    twilio_pending: list[Mark] = field(default_factory=list)  # marks sent, not yet echoed
    echo_results: list[tuple[Mark, Mark | None, bool]] = field(default_factory=list)
    credited: int = 0
    _seq: int = 0
    _open: dict[ItemKey, Pushed] = field(default_factory=dict)  # last push of unclosed items

    # -- driving -------------------------------------------------------------------------
    def advance(self, t: float) -> None:
        """Let virtual time run to ``t``, polling at every deadline on the way."""
        t = max(t, self.now)
        stuck = 0
        while (deadline := self.strategy.next_deadline()) is not None and deadline <= t:
            self.now = max(self.now, deadline)
            out = self.strategy.poll(self.now)
            self._record(out)
            stuck = stuck + 1 if not out else 0
            assert stuck < 3, f"next_deadline {deadline} keeps firing with nothing to send"
        self.now = t

    def push(self, key: ItemKey, size: int, dt: float = 0.0) -> None:
        self.advance(self.now + dt)
        start = self.offsets.get(key, 0)
        self.offsets[key] = start + size
        for other, last in list(self._open.items()):
            if other != key:
                self._close(other, last)
        record = Pushed(key, start, start + size, self.now, self._seq)
        self._seq += size
        self.pushes.append(record)
        self._open[key] = record
        self._record(self.strategy.push(AudioChunk(key[0], key[1], pattern(key, start, size)),
                                        self.now))

    def end(self, key: ItemKey, dt: float = 0.0) -> None:
        self.advance(self.now + dt)
        if key in self._open:
            self._close(key, self._open[key])
        out = self.strategy.end(key[0], key[1], self.now)
        assert not any(isinstance(m, Clear) for m in out), "end() emitted clear"
        self._record(out)

    def interrupt(self, dt: float = 0.0) -> list[Outbound]:
        self.advance(self.now + dt)
        self.interrupts.append(self.now)
        out: list[Outbound] = self.strategy.interrupt(self.now)
        self._record(out)
        return out

    def echo_oldest(self, count: int, dt: float = 0.0) -> None:
        """Twilio played the oldest ``count`` pending marks."""
        self.advance(self.now + dt)
        for _ in range(min(count, len(self.twilio_pending))):
            self._echo(self.twilio_pending.pop(0), cleared=False)

    def finish(self) -> None:
        """Every open item ends; time runs until nothing is pending; Twilio plays the rest."""
        for key in list(self._open):
            self.end(key)
        while (deadline := self.strategy.next_deadline()) is not None:
            self.advance(deadline)
        self.echo_oldest(len(self.twilio_pending))

    def _close(self, key: ItemKey, last: Pushed) -> None:
        for record in self.pushes:
            if record.key == key and record.close_t == math.inf:
                record.close_t = self.now
        del self._open[key]

    def _record(self, out: list[Outbound]) -> None:
        for message in out:
            self.sent.append((self.now, message))
            if isinstance(message, Media):
                self.twilio_pending.extend(message.marks)
            else:  # clear: Twilio echoes every pending mark at once; none was played
                for mark in self.twilio_pending:
                    self._echo(mark, cleared=True)
                self.twilio_pending.clear()

    def _echo(self, mark: Mark, cleared: bool) -> None:
        result = self.strategy.echo(mark.name, self.now)
        self.echo_results.append((mark, result, cleared))
        if result is not None:
            self.credited += result.size
        assert self.strategy.echo(mark.name, self.now) is None, "a mark was credited twice"

    # -- views ---------------------------------------------------------------------------
    @property
    def media(self) -> list[tuple[float, Media]]:
        return [(t, m) for t, m in self.sent if isinstance(m, Media) and m.payload]

    def arrival(self, key: ItemKey, offset: int) -> float:
        """When byte ``offset`` of item ``key`` was pushed (inf if never)."""
        records = [r for r in self.pushes if r.key == key]
        index = bisect.bisect_right([r.start for r in records], offset) - 1
        if index < 0 or offset >= records[index].end:
            return math.inf
        return records[index].t

    def record_of(self, key: ItemKey, offset: int) -> Pushed:
        for record in self.pushes:
            if record.key == key and record.start <= offset < record.end:
                return record
        raise AssertionError(f"byte {offset} of {key} was never pushed")


# -- checks every strategy must pass ---------------------------------------------------------


def check_bytes(run: Run) -> None:
    """Sent = pushed minus what interrupts dropped, in push order, each byte once, unaltered."""
    seen: dict[ItemKey, int] = {}
    last_seq = -1
    sent_total = 0
    for _, message in run.media:
        key = (message.item_id, message.content_index)
        assert message.offset >= seen.get(key, 0), f"{key}: byte {message.offset} re-sent"
        assert message.payload == pattern(key, message.offset, len(message.payload)), \
            f"{key}: payload at {message.offset} is not the pushed bytes"
        seen[key] = message.end
        record = run.record_of(key, message.offset)
        seq = record.seq + (message.offset - record.start)
        assert seq > last_seq, f"{key}: bytes at {message.offset} sent out of push order"
        last_seq = seq + len(message.payload) - 1
        sent_total += len(message.payload)
    pushed_total = sum(r.end - r.start for r in run.pushes)
    dropped = getattr(run.strategy, "dropped_bytes", 0)
    assert sent_total == pushed_total - dropped
    if not run.interrupts:
        assert dropped == 0
    unsent = unsent_bytes(run)
    assert len(unsent) == dropped
    last_interrupt = max(run.interrupts, default=-math.inf)
    for key, offset in unsent:
        assert run.arrival(key, offset) <= last_interrupt, f"{key}: byte {offset} never sent"


def unsent_bytes(run: Run) -> list[tuple[ItemKey, int]]:
    sent: dict[ItemKey, set[int]] = {}
    for _, message in run.media:
        sent.setdefault((message.item_id, message.content_index), set()).update(
            range(message.offset, message.end))
    return [(r.key, o) for r in run.pushes for o in range(r.start, r.end)
            if o not in sent.get(r.key, set())]


def check_generations(run: Run) -> None:
    """No media of a cleared generation after its clear; generations only grow."""
    cleared = -1
    for _, message in run.sent:
        if isinstance(message, Clear):
            assert message.generation > cleared
            cleared = message.generation
        else:
            assert message.generation > cleared, "media of a cleared generation after clear"
            for mark in message.marks:
                assert mark.generation == message.generation


def check_marks(run: Run) -> None:
    """Marks tile each item's sent bytes; echoes before clear credit exactly them, none after."""
    marked_to: dict[tuple[ItemKey, int], int] = {}
    sent_to: dict[tuple[ItemKey, int], int] = {}
    for _, message in run.sent:
        if not isinstance(message, Media):
            continue
        slot = ((message.item_id, message.content_index), message.generation)
        if message.payload:
            sent_to.setdefault(slot, message.offset)
            sent_to[slot] = message.end
            marked_to.setdefault(slot, message.offset)
        for mark in message.marks:
            assert (mark.item_id, mark.content_index) == slot[0]
            assert mark.start == marked_to[slot], f"mark {mark.name} leaves a gap or overlaps"
            assert mark.end == sent_to[slot] == message.end, f"mark {mark.name} != bytes before it"
            assert mark.size > 0
            marked_to[slot] = mark.end
    credited = 0
    honor = getattr(run.strategy.ledger, "honor_generations", True)
    for mark, result, cleared in run.echo_results:
        if cleared and honor:
            assert result is None, f"mark {mark.name} of cleared audio was credited"
        elif not cleared:
            assert result == mark, f"mark {mark.name} echoed before clear was not credited"
        credited += 0 if result is None else result.size
    assert run.strategy.ledger.credited_bytes == credited == run.credited


def check_tail_marked(run: Run) -> None:
    """After every item ended, every byte of the last generation is covered by a mark."""
    generation = run.strategy.ledger.generation
    marked: dict[ItemKey, int] = {}
    sent: dict[ItemKey, int] = {}
    for _, message in run.sent:
        if isinstance(message, Media) and message.generation == generation:
            key = (message.item_id, message.content_index)
            if message.payload:
                sent[key] = message.end
            for mark in message.marks:
                marked[key] = mark.end
    for key, end in sent.items():
        assert marked.get(key) == end, f"{key}: sent up to {end}, marked to {marked.get(key)}"


def check_closed(run: Run) -> None:
    run.strategy.close()
    assert run.strategy.ledger.pending_count == 0
    assert run.strategy.next_deadline() is None
    assert run.strategy.echo("m1.g0", run.now) is None


def check_all(run: Run) -> None:
    check_bytes(run)
    check_generations(run)
    check_marks(run)
    check_tail_marked(run)


# -- promises: how long a byte may wait ------------------------------------------------------


def wait_bound(run: Run, key: ItemKey, offset: int) -> float:
    """The latest time the strategy promises to send byte ``offset`` of ``key``."""
    strategy = run.strategy
    record = run.record_of(key, offset)
    arrived, closed = record.t, record.close_t
    frame_done = run.arrival(key, offset + FRAME_BYTES - 1)
    ready = frame_done if getattr(strategy, "align_frames", False) else arrived
    name = strategy.name
    if name == "forward":
        return arrived
    if name == "rechunk":
        return min(ready + float(strategy.flush_interval_ms), closed)
    if name == "preroll":
        release = run.arrival(key, math.ceil(strategy.threshold_ms * BYTES_PER_MS) - 1)
        release = -math.inf if strategy.threshold_ms == 0 else release
        return min(max(ready, release), closed)
    if name == "adaptive":
        first = min(r.t for r in run.pushes if r.key == key)
        return min(max(ready, first + float(strategy.cap_ms)), closed)
    raise AssertionError(f"no byte-wait promise for {name}")


def check_waits(run: Run) -> None:
    """Every sent byte left no later than its strategy promises."""
    if run.strategy.name == "paced":
        check_pacing(run)
        return
    for t, message in run.media:
        key = (message.item_id, message.content_index)
        for offset in range(message.offset, message.end):
            bound = wait_bound(run, key, offset)
            assert t <= bound + EPS_MS, (
                f"{run.strategy.name}: byte {offset} of {key} sent at {t}, promised by {bound}")


def check_pacing(run: Run) -> None:
    """Paced: a frame goes out when Twilio's queue (under the stream clock) holds at most the
    lead, never earlier, and no later than that once the frame is complete."""
    strategy = run.strategy
    lead = strategy.lead_ms
    queue_ms, last_t = 0.0, -math.inf
    for t, message in run.sent:
        if isinstance(message, Clear):
            queue_ms, last_t = 0.0, t
            continue
        if not message.payload:
            continue
        queue_now = max(0.0, queue_ms - (t - last_t))
        assert queue_now <= lead + EPS_MS, f"paced: {queue_now} ms queued ahead at {t}, lead {lead}"
        key = (message.item_id, message.content_index)
        record = run.record_of(key, message.end - 1)
        ready = record.t
        if len(message.payload) < strategy.frame_bytes:
            ready = max(ready, record.close_t)
        due = max(ready, last_t, last_t + queue_ms - lead)
        assert t <= due + EPS_MS, f"paced: frame at {message.offset} sent {t}, due {due}"
        queue_ms, last_t = queue_now + len(message.payload) / BYTES_PER_MS, t


# -- configurations every property runs on ---------------------------------------------------

CONFIGS: list[tuple[str, float, dict[str, Any]]] = [
    ("forward", 0, {}),
    ("forward", 0, {"mark_every_ms": None}),
    ("rechunk", 50, {}),
    ("rechunk", 50, {"align_frames": True, "mark_every_ms": 35}),
    ("rechunk", 0, {"flush_interval_ms": 0}),
    ("rechunk", 13, {"flush_interval_ms": 40, "mark_every_ms": None}),
    ("paced", 0, {}),
    ("paced", 60, {"mark_every_ms": None}),
    ("paced", 100, {"frame_ms": 40, "align_frames": True}),
    ("preroll", 120, {}),
    ("preroll", 0, {}),
    ("preroll", 35, {"align_frames": True, "mark_every_ms": None}),
    ("adaptive", 100, {}),
    ("adaptive", 0, {"mark_every_ms": None, "floor_ms": 0, "cap_ms": 150}),
]


def config_id(config: tuple[str, float, dict[str, Any]]) -> str:
    name, threshold, options = config
    extra = ",".join(f"{k}={v}" for k, v in options.items())
    return f"{name}-{threshold}" + (f"-{extra}" if extra else "")


def build(config: tuple[str, float, dict[str, Any]]) -> Any:
    name, threshold, options = config
    return make_strategy(name, threshold, **options)


# -- the harness's own sanity --------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_a_steady_call_passes_every_check(config: tuple[str, float, dict[str, Any]]) -> None:
    run = Run(build(config))
    for item in range(3):
        key = (f"item{item}", 0)
        for size in (20, 40, 60, 30, 300, 25) * 4:
            run.push(key, size, dt=3.0)
            run.echo_oldest(1, dt=1.0)
        run.end(key, dt=5.0)
    run.finish()
    assert run.media, "nothing was sent"
    check_all(run)
    check_waits(run)
    assert run.strategy.ledger.pending_count == 0
    assert run.credited == sum(r.end - r.start for r in run.pushes)
    check_closed(run)


def test_the_checks_catch_a_strategy_that_duplicates_bytes() -> None:
    class Duplicating:
        name = "forward"
        threshold_ms = 0.0

        def __init__(self) -> None:
            self.inner = make_strategy("forward", 0)
            self.ledger = self.inner.ledger

        def __getattr__(self, attr: str) -> Any:
            return getattr(self.inner, attr)

        def push(self, chunk: AudioChunk, now: float) -> list[Outbound]:
            out: list[Outbound] = self.inner.push(chunk, now)
            return out + out

    run = Run(Duplicating())
    run.push(("a", 0), 40)
    run.push(("a", 0), 40)
    with pytest.raises(AssertionError, match="re-sent"):
        check_bytes(run)

"""A faithful sans-I/O model of the original report's outbound buffer (the unmerged seed PR).

Kept so the simulator and notebooks/05_barge_in_and_marks.ipynb can reproduce its defects:

- a list of chunks whose lengths are summed on every push; flush when the sum reaches
  ``threshold_ms * 8`` bytes (400 B at the default 50 ms), and on a free-running 100 ms loop
  (ticks on a fixed grid from the first call, not per buffered byte);
- one mark is created per model delta, naming that delta's bytes. ``variant="first"`` sends only
  the last delta's mark after a threshold flush and none after a loop/end/interrupt flush: the
  other marks are never sent, never echoed, and leak (``ledger.pending_count`` grows);
  ``variant="fixed"`` sends every buffered delta's mark after the flush;
- ``audio_interrupted`` flushes the buffer *then* sends ``clear`` (audio sent only to be discarded);
- ``audio_end`` flushes, then sends ``clear``, which cuts the tail still queued at Twilio;
- echoes are credited whatever the generation (the SDK example's bug), unless
  ``honor_generations=True``.

One deviation: the seed joined buffered bytes of different items into one message; here such a
flush becomes one message per item, sent at the same instant (Media belongs to one item).
Registered as ``make_strategy("original_report", ...)``; not one of STRATEGY_NAMES.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from labkit.outbound.base import BYTES_PER_MS, AudioChunk, Clear, Mark, Media, Outbound
from labkit.outbound.queued import Clocked, check_threshold

FLUSH_LOOP_MS = 100.0
VARIANTS = ("first", "fixed")


@dataclass(frozen=True, slots=True)
class _Delta:
    item_id: str
    content_index: int
    offset: int
    data: bytes
    mark_name: str


def _key(delta: _Delta) -> tuple[str, int]:
    return (delta.item_id, delta.content_index)


class SeedMarkBook:
    """The seed's ``_mark_data``: every created mark until echoed (unsent ones stay forever)."""

    def __init__(self, honor_generations: bool) -> None:
        self.honor_generations = honor_generations
        self._marks: dict[str, Mark] = {}
        self._generation = 0
        self._credited_bytes = 0

    @property
    def pending_count(self) -> int:
        return len(self._marks)

    @property
    def credited_bytes(self) -> int:
        return self._credited_bytes

    @property
    def generation(self) -> int:
        return self._generation

    def add(self, mark: Mark) -> None:
        self._marks[mark.name] = mark

    def bump_generation(self) -> Clear:
        cleared = Clear(self._generation)
        self._generation += 1
        return cleared

    def echo(self, name: str) -> Mark | None:
        mark = self._marks.get(name)
        if mark is None or (self.honor_generations and mark.generation != self._generation):
            return None
        del self._marks[name]
        self._credited_bytes += mark.size
        return mark

    def close(self) -> None:
        self._marks.clear()


class OriginalReportBuffer(Clocked):
    """The seed PR's list-of-chunks buffer, defects included (see the module docstring)."""

    name = "original_report"

    def __init__(
        self,
        threshold_ms: float = 50.0,
        *,
        variant: str = "fixed",
        flush_interval_ms: float = FLUSH_LOOP_MS,
        honor_generations: bool = False,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"OriginalReportBuffer: variant must be one of {VARIANTS}, "
                             f"got {variant!r}")
        if not (math.isfinite(flush_interval_ms) and flush_interval_ms > 0):
            raise ValueError(f"OriginalReportBuffer: flush_interval_ms must be > 0, "
                             f"got {flush_interval_ms!r}")
        self.threshold_ms = check_threshold(self.name, threshold_ms)
        self.variant = variant
        self.flush_interval_ms = float(flush_interval_ms)
        self.ledger = SeedMarkBook(honor_generations)
        self._buffer: list[_Delta] = []
        self._pushed: dict[tuple[str, int], int] = {}
        self._mark_counter = 0
        self._loop_origin_ms: float | None = None
        self._loop_checked_ms = -math.inf  # the loop's ticks up to here have run

    def push(self, chunk: AudioChunk, now: float) -> list[Outbound]:
        self._tick(now, "push")
        self._start_loop(now)
        out = self._loop_ticks_until(now)
        if not chunk.data:
            return out
        key = (chunk.item_id, chunk.content_index)
        offset = self._pushed.get(key, 0)
        self._pushed[key] = offset + len(chunk.data)
        mark_name = self._create_mark()
        self._buffer.append(_Delta(chunk.item_id, chunk.content_index, offset, chunk.data,
                                   mark_name))
        total_size = sum(len(delta.data) for delta in self._buffer)  # as the seed did, per push
        if total_size >= self.threshold_ms * BYTES_PER_MS:
            out += self._flush(now, last_mark=mark_name)
        return out

    def poll(self, now: float) -> list[Outbound]:
        self._tick(now, "poll")
        self._start_loop(now)
        return self._loop_ticks_until(now)

    def next_deadline(self) -> float | None:
        if not self._buffer or self._loop_origin_ms is None:
            return None
        return self._next_tick_after(self._loop_checked_ms)

    def end(self, item_id: str, content_index: int, now: float) -> list[Outbound]:
        self._tick(now, "end")
        out = self._loop_ticks_until(now)
        out += self._flush(now, last_mark=None)
        out.append(self.ledger.bump_generation())  # the seed's clear on audio_end
        return out

    def interrupt(self, now: float) -> list[Outbound]:
        self._tick(now, "interrupt")
        out = self._flush(now, last_mark=None)  # flush before clear, as the seed did
        out.append(self.ledger.bump_generation())
        return out

    def echo(self, name: str, now: float) -> Mark | None:
        return self.ledger.echo(name)

    def close(self) -> None:
        self._buffer.clear()
        self.ledger.close()

    def _create_mark(self) -> str:
        self._mark_counter += 1
        return str(self._mark_counter)

    def _start_loop(self, now: float) -> None:
        if self._loop_origin_ms is None:
            self._loop_origin_ms = now
            self._loop_checked_ms = now

    def _next_tick_after(self, t: float) -> float:
        assert self._loop_origin_ms is not None
        ticks = math.floor((t - self._loop_origin_ms) / self.flush_interval_ms) + 1
        return self._loop_origin_ms + ticks * self.flush_interval_ms

    def _loop_ticks_until(self, now: float) -> list[Outbound]:
        # The seed's `while True: sleep(0.1); flush()` loop: at most one flush is owed by now.
        deadline = self.next_deadline()
        self._loop_checked_ms = now
        if deadline is not None and deadline <= now:
            return self._flush(now, last_mark=None)
        return []

    def _flush(self, now: float, last_mark: str | None) -> list[Outbound]:
        if not self._buffer:
            return []
        out: list[Outbound] = []
        run: list[_Delta] = []
        for delta in self._buffer:
            if run and _key(delta) != _key(run[0]):
                out.append(self._media(run, now, last_mark))
                run = []
            run.append(delta)
        out.append(self._media(run, now, last_mark))
        self._buffer.clear()
        return out

    def _media(self, run: list[_Delta], now: float, last_mark: str | None) -> Media:
        marks = []
        for delta in run:
            mark = Mark(delta.mark_name, delta.item_id, delta.content_index, delta.offset,
                        delta.offset + len(delta.data), self.ledger.generation, now)
            self.ledger.add(mark)  # created per delta, sent or not (the leak)
            if self.variant == "fixed" or delta.mark_name == last_mark:
                marks.append(mark)
        first = run[0]
        payload = b"".join(delta.data for delta in run)
        return Media(payload, first.item_id, first.content_index, first.offset,
                     self.ledger.generation, tuple(marks))

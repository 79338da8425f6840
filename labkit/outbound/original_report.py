"""The original report's outbound buffer (the unmerged PR #1926), modelled from its code.

Read from ``examples/realtime/twilio/twilio_handler.py`` at the PR's commits (both are in the
lab's reference folder, ``shared/reference/``; the PR's *description* shows snippets its code
never had, such as a ``clear`` on ``audio_end``). What the code does, and this model with it:

- One ``bytearray`` holds every item's audio. Each model delta is appended and gets a mark of
  its own (a counter name, recorded with the delta's item and byte count).
- After each append, ``len(buffer) >= 400`` (``BUFFER_SIZE_BYTES``: 8000 Hz x 0.05 s; here
  ``threshold_ms * 8``) flushes the buffer: one ``media`` message of all of it, then marks.
- A loop sleeps 50 ms (``CHUNK_LENGTH_S``), wakes, and flushes when the buffer is not empty and
  more than 100 ms (``2 * CHUNK_LENGTH_S``) passed since the last outgoing flush. The clock of
  the last send starts when the handler is built (``started_ms``; 0 in the simulator and in the
  live handler, whose clocks start with the call). The loop drifts as ``asyncio.sleep`` does:
  each sleep starts when the previous one woke (late, if the loop was late).
- ``audio_end``: flush. No ``clear``.
- ``audio_interrupted``: flush, *then* send ``clear``: the audio is sent only to be dropped,
  and the marks sent with it are echoed at once by the clear.
- A mark echo is credited to the playback tracker if its name is known, whatever clears came
  between (``honor_generations=False``): the marks of audio the clear dropped are credited as
  played.
- ``variant="first"`` (commit 7b2f4e0, also all of PR #1925): a threshold flush sends only the
  mark of the delta that triggered it; loop, end and interrupt flushes send no mark. The other
  marks stay in the handler's table forever (``ledger.pending_count`` grows: the leak), and the
  tracker is credited only the triggering delta's bytes. ``variant="final"`` (commit ecf2c57,
  the default) sends every buffered delta's mark after the flush.

One stated deviation: a ``Media`` names one item, so a flush whose buffer spans two items becomes
one message per item, back to back at the same instant, each followed by its own deltas' marks
(the code sends one message and then all marks). The buffer spans items only if an item's audio
arrives before the previous item's ``audio_end`` (which flushes), which the Realtime API does
not do; tests/test_original_report.py checks the bytes and their order are the same.
Registered as ``make_strategy("original_report", ...)``; not one of STRATEGY_NAMES.
See notebooks/05_barge_in_and_marks.ipynb.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from labkit.outbound.base import BYTES_PER_MS, AudioChunk, Clear, Mark, Media, Outbound
from labkit.outbound.queued import Clocked, check_threshold

LOOP_SLEEP_MS = 50.0  # CHUNK_LENGTH_S
STALE_AFTER_MS = 100.0  # CHUNK_LENGTH_S * 2
VARIANTS = ("final", "first")


class _Delta(NamedTuple):
    item_id: str
    content_index: int
    offset: int
    data: bytes
    mark_name: str


class SeedMarkBook:
    """The code's ``_mark_data``: every created mark until echoed (unsent ones stay forever)."""

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
    """PR #1926's outbound buffer, defects included (see the module docstring)."""

    name = "original_report"
    threshold_means: str | None = "flush size (ms of audio)"  # what threshold_ms is to it
    echo_blind = True

    def __init__(
        self,
        threshold_ms: float = 50.0,
        *,
        variant: str = "final",
        loop_sleep_ms: float = LOOP_SLEEP_MS,
        stale_after_ms: float = STALE_AFTER_MS,
        started_ms: float = 0.0,
        honor_generations: bool = False,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"strategy 'original_report': unknown variant {variant!r}; "
                             f"choose one of {', '.join(VARIANTS)}")  # fmt: skip
        for what, value in (("loop_sleep_ms", loop_sleep_ms), ("stale_after_ms", stale_after_ms)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"strategy 'original_report': {what} must be > 0, got {value!r}")
        if not math.isfinite(started_ms):
            raise ValueError(f"strategy 'original_report': started_ms must be finite, "
                             f"got {started_ms!r}")  # fmt: skip
        self.threshold_ms = check_threshold(self.name, threshold_ms)
        self.variant = variant
        self.loop_sleep_ms = float(loop_sleep_ms)
        self.stale_after_ms = float(stale_after_ms)
        self.ledger = SeedMarkBook(honor_generations)
        self._threshold_bytes = self.threshold_ms * BYTES_PER_MS
        self._buffer: list[_Delta] = []
        self._buffered_bytes = 0
        self._pushed: dict[tuple[str, int], int] = {}
        self._mark_counter = 0
        self._last_send_ms = float(started_ms)
        self._next_wake_ms = float(started_ms) + self.loop_sleep_ms

    def push(self, chunk: AudioChunk, now: float) -> list[Outbound]:
        self._tick(now, "push")
        self._catch_up(now)
        if not chunk.data:
            return []
        key = (chunk.item_id, chunk.content_index)
        offset = self._pushed.get(key, 0)
        self._pushed[key] = offset + len(chunk.data)
        self._mark_counter += 1
        mark_name = str(self._mark_counter)
        self._buffer.append(_Delta(chunk.item_id, chunk.content_index, offset, bytes(chunk.data),
                                   mark_name))  # fmt: skip
        self._buffered_bytes += len(chunk.data)
        if self._buffered_bytes >= self._threshold_bytes:
            return self._flush(now, trigger=mark_name)
        return []

    def poll(self, now: float) -> list[Outbound]:
        """The flush loop: wakes at ``next_deadline()`` (later if the event loop was late)."""
        self._tick(now, "poll")
        if now < self._next_wake_ms:
            return []
        self._next_wake_ms = now + self.loop_sleep_ms  # asyncio.sleep from when it woke
        if self._buffer and now - self._last_send_ms > self.stale_after_ms:
            return self._flush(now, trigger=None)
        return []

    def next_deadline(self) -> float | None:
        return self._next_wake_ms if self._buffer else None

    def end(self, item_id: str, content_index: int, now: float) -> list[Outbound]:
        self._tick(now, "end")
        self._catch_up(now)
        return self._flush(now, trigger=None)  # audio_end flushes; the code sends no clear

    def interrupt(self, now: float) -> list[Outbound]:
        self._tick(now, "interrupt")
        self._catch_up(now)
        out = self._flush(now, trigger=None)  # flush before clear, as the code does
        out.append(self.ledger.bump_generation())
        return out

    def echo(self, name: str, now: float) -> Mark | None:
        return self.ledger.echo(name)

    def close(self) -> None:
        self._buffer.clear()
        self._buffered_bytes = 0
        self.ledger.close()

    def _catch_up(self, now: float) -> None:
        """While the buffer is empty nobody polls (``next_deadline`` is None), so the loop's
        wake-ups before ``now`` found it empty: they only moved the loop's phase on."""
        if not self._buffer and self._next_wake_ms < now:
            missed = math.ceil((now - self._next_wake_ms) / self.loop_sleep_ms)
            self._next_wake_ms += missed * self.loop_sleep_ms
            if self._next_wake_ms < now:  # rounding
                self._next_wake_ms += self.loop_sleep_ms

    def _flush(self, now: float, trigger: str | None) -> list[Outbound]:
        """``_flush_outgoing_audio_buffer``: everything buffered goes out now (one message per
        item run), then the marks the variant sends."""
        if not self._buffer:
            return []
        out: list[Outbound] = []
        run: list[_Delta] = []
        for delta in self._buffer:
            if run and (delta.item_id, delta.content_index) != (run[0].item_id,
                                                                 run[0].content_index):
                out.append(self._media(run, now, trigger))
                run = []
            run.append(delta)
        out.append(self._media(run, now, trigger))
        self._buffer.clear()
        self._buffered_bytes = 0
        self._last_send_ms = now
        return out

    def _media(self, run: list[_Delta], now: float, trigger: str | None) -> Media:
        generation = self.ledger.generation
        marks = []
        for delta in run:
            mark = Mark(delta.mark_name, delta.item_id, delta.content_index, delta.offset,
                        delta.offset + len(delta.data), generation, now)  # fmt: skip
            self.ledger.add(mark)  # created per delta, sent or not (the first commit's leak)
            if self.variant == "final" or delta.mark_name == trigger:
                marks.append(mark)
        first = run[0]
        payload = b"".join(delta.data for delta in run)
        return Media(payload, first.item_id, first.content_index, first.offset, generation,
                     tuple(marks))  # fmt: skip

"""``paced``'s messages for a whole trace in one pass: the strategy's own rules, flattened.

``paced`` sends one 20 ms frame per timer, so driving the object (labkit/outbound/paced.py)
costs a poll, a Media and a ledger call per frame: most of a simulation of it. When the timers
fire on time (no sender lateness), what it sends is fixed by the trace and its parameters, so
the simulator computes the same rows here with plain numbers: the same item queue (a new
item's audio ends the previous item's), the same stream clock (frame k due at
``anchor + media_ms - lead``, re-anchored at ``now`` when the clock has passed it), the same
mark cadence and names as ``MarkLedger``, and ``send_all``'s call order (a timer strictly
before the next trace event). Every float is computed by the same operations in the same
order, so the rows are equal bit for bit (tests/test_sim_paced_plan.py drives both over
random and shipped traces). The strategy object itself is only read, never advanced.

Runs of timers in closed form. Most frames go out in runs: the head holds two whole frames or
more and each timer sends one and arms the next ``frame_ms`` later. Within a run the frames'
offsets step by ``frame_bytes``, their send times are ``anchor + (media + j * frame_ms) -
lead``, and marks come every ``ceil(mark_gap / frame_bytes)`` frames, so a run is found by a
few float operations per trace event (not per frame) and kept as one tuple; ``_assemble``
builds every run's rows at once with numpy. Equal bit for bit: media time is a multiple of
1/8 ms, so ``media + j * frame_ms`` is the model's running sum exactly while it stays far below
2**50, and the deadline is then rounded by the same two operations. Below
``CLOSED_FORM_LIMIT_MS`` the deadlines also grow strictly frame by frame (the model's
``now < deadline`` check always holds after a run's first frame). Payload bytes are not cut
here: a media row's payload is its item's audio at (offset, size) (labkit/sim/sender.py cuts
them when first read).
See notebooks/01_why_tiny_packets_jitter.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from itertools import chain
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from labkit.marks import ItemProgress, MarkLedger, mark_name, mark_names
from labkit.outbound.base import BYTES_PER_MS
from labkit.outbound.paced import PacedStrategy
from labkit.sim.plan_ledger import PlanLedger
from labkit.sim.timer_rule import rearm

if TYPE_CHECKING:
    from labkit.sim.simulator import PreparedTrace

MEDIA, MARK, CLEAR = 0, 1, 2  # labkit.sim.sender's row kinds
AUDIO, DONE = 0, 1  # trace event codes (labkit.sim.simulator.TRACE_EVENT_CODES)
END = -1  # the run's own sentinel after the last trace event
# below it (in ms) the deadlines of a run are computed exactly in closed form and grow by at
# least 1/8 - 2**-9 ms per frame (float spacing there is at most 2**-12)
CLOSED_FORM_LIMIT_MS = 2.0**39
# A run's frame number guessed from a time, (t - due(0)) / frame_ms, is within 2**-52 of
# itself (frame numbers there stay below 2**42) plus 2**-10 ms over frame_ms (the deadlines'
# rounding) of the exact one: a guess twice that far from a whole number needs no check against
# the exact deadlines
CLEAR_MARGIN_FRAMES = 2.0**-8
CLEAR_MARGIN_MS = 2.0**-9
ItemKey = tuple[str, int]
Event = tuple[float, int, ItemKey, bytes]  # a trace event: time, code, item, audio
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]
# a row sent outside a run: kind, item_id, content_index, offset, size, generation, sent_ms, name
SlowRow = tuple[int, str, int, int, int, int, float, str]
# a run of timers: slow rows before it, frames, marks, item_id, content_index, generation,
# offset of its first frame, when that frame went, anchor_ms, media_ms before it, its first
# marked frame, marked_to before it, the mark sequence number before it
TimerRun = tuple[int, int, int, str, int, int, int, float, float, float, int, int, int]


class PlanColumns(NamedTuple):
    """The plan's messages, one entry per message in send order (payloads are not cut)."""

    kind: IntArray
    item_id: ObjectArray
    content_index: IntArray
    offset: IntArray
    size: IntArray
    generation: IntArray
    sent_ms: FloatArray
    name: ObjectArray


def plannable(strategy: object) -> bool:
    """True for a fresh ``PacedStrategy`` exactly (a subclass may change any rule)."""
    if type(strategy) is not PacedStrategy:
        return False
    ledger = strategy.ledger
    return (
        strategy.anchor_ms is None
        and strategy.media_ms == 0.0
        and strategy._now == -math.inf
        and not strategy._queue.buffers
        and not strategy._queue._pushed
        and isinstance(ledger, MarkLedger)
        and ledger.generation == 0
        and ledger.pending_count == 0
        and not ledger._progress
    )


class _Buffer:
    """One item's queued bytes: where they start in the item, how many, whether it ended."""

    __slots__ = ("content_index", "ended", "item_id", "key", "offset", "size")

    def __init__(self, key: ItemKey, offset: int) -> None:
        self.key = key
        self.item_id, self.content_index = key
        self.offset = offset  # of the first byte still queued, within the item
        self.size = 0
        self.ended = False


class PacedPlan:
    """The messages ``send_all`` would record for ``strategy`` over a trace (see module doc)."""

    def __init__(self, strategy: PacedStrategy) -> None:
        ledger = strategy.ledger
        assert isinstance(ledger, MarkLedger)
        self.frame_bytes = strategy.frame_bytes
        self.lead_ms = strategy.lead_ms
        self.marks = PlanLedger(ledger)
        self.progress = self.marks.progress  # the runs of timers read and advance it inline
        self.every_bytes = self.marks.every_bytes
        # the ledger marks once ``sent - marked >= every_bytes``; sent and marked are whole
        # bytes, so that is ``sent >= marked + ceil(every_bytes)``: an int the loop compares
        # (the ledger checks mark_every_ms is finite and > 0)
        self.mark_gap_bytes = 0 if self.every_bytes is None else math.ceil(self.every_bytes)
        self.frame_ms = self.frame_bytes / BYTES_PER_MS
        self.mark_period = -(-self.mark_gap_bytes // self.frame_bytes)  # frames between marks
        # how far from a deadline a guessed frame number must be to need no exact check
        self.clear_below = CLEAR_MARGIN_FRAMES + CLEAR_MARGIN_MS / self.frame_ms
        self.seq = ledger._seq
        self.generation = ledger.generation
        self.rows: list[SlowRow] = []  # rows sent outside runs of timers, in order
        self.runs: list[TimerRun] = []
        self.buffers: list[_Buffer] = []  # head first
        self.pushed: dict[ItemKey, int] = {}
        self.anchor_ms: float | None = None
        self.media_ms = 0.0

    def run(self, trace: PreparedTrace) -> PlanColumns:
        """The plan's messages over ``trace``, as columns in send order."""
        times, codes, keys, payloads = trace.times_ms, trace.codes, trace.keys, trace.payloads
        buffers, pushed, progress_of = self.buffers, self.pushed, self.progress
        frame_bytes, lead_ms = self.frame_bytes, self.lead_ms
        two_frames = frame_bytes + frame_bytes
        # runs need a mark cadence (without one only an item's last frame is marked, which
        # service handles) and times small enough for the closed form (``_closed_form_holds``)
        in_runs = self.every_bytes is not None and _closed_form_holds(trace, lead_ms)
        limit_ms = CLOSED_FORM_LIMIT_MS
        deadline: float | None = None
        poll_at = math.inf
        # the timers after the last event fire before the sentinel (t = inf), which ends the run
        trace_events = zip(times, codes, keys, payloads, strict=True)
        events = chain(trace_events, ((math.inf, END, ("", 0), b""),))
        for t, code, key, data in events:
            # send_all: timers strictly before the trace event fire first. The hot path: while
            # the head holds a whole frame beyond the one due, each timer sends one frame and
            # arms the next frame_ms later: such a run of timers is computed in closed form
            # (see the module docstring); anything else (the clock passed, a tail, a new item)
            # takes ``service``.
            while poll_at < t:
                now = poll_at
                head = buffers[0] if buffers else None
                anchor_ms, media_ms = self.anchor_ms, self.media_ms
                progress = progress_of.get(head.key) if head is not None and in_runs else None
                if (head is None or progress is None or anchor_ms is None
                        or head.size < two_frames or not -limit_ms < anchor_ms < limit_ms
                        or anchor_ms + media_ms < now or anchor_ms + media_ms - lead_ms > now):
                    self.service(now)
                    deadline, poll_at = self.rearm(None, math.inf, now)
                    continue
                (t, code, key, data), deadline, poll_at = self.timer_run(
                    head, progress, now, (t, code, key, data), events)  # fmt: skip
            if code == AUDIO:
                tail = buffers[-1] if buffers else None
                if tail is not None and tail.key == key and not tail.ended:
                    head, anchor_ms = buffers[0], self.anchor_ms
                    if (head.size >= frame_bytes and anchor_ms is not None
                            and anchor_ms + self.media_ms - lead_ms > t):
                        # more audio for the open tail while the head's whole frame waits for
                        # its deadline: service would send nothing and the timer stays as it is
                        pushed[key] += len(data)
                        tail.size += len(data)
                        continue
                self.push(key, data, t)
            elif code == DONE:
                self.end(key, t)
            elif code == END:
                break
            else:
                self.interrupt(t)
            deadline, poll_at = self.rearm(deadline, poll_at, t)
        return _assemble(self.rows, self.runs, frame_bytes, self.frame_ms, lead_ms,
                         self.mark_period)  # fmt: skip

    def timer_run(
        self, head: _Buffer, progress: ItemProgress, now: float, event: Event,
        events: Iterator[Event],
    ) -> tuple[Event, float | None, float]:  # fmt: skip
        """The run of timers from ``now``, each sending a frame of ``head`` (it holds two whole
        frames, and the first is due): recorded as one tuple, the trace events it lets the open
        tail take consumed from ``events``. Returns the trace event that goes next and the
        timer armed after the run (deadline, poll_at)."""
        anchor_ms, media_ms, lead_ms, frame_ms = (
            self.anchor_ms, self.media_ms, self.lead_ms, self.frame_ms)  # fmt: skip
        assert anchor_ms is not None
        frames, event = self._run_length(head, now, event, events)
        last_ms = anchor_ms + (media_ms + (frames - 1) * frame_ms) - lead_ms if frames > 1 else now
        due_ms = anchor_ms + (media_ms + frames * frame_ms) - lead_ms
        self._record_run(head, progress, now, anchor_ms, frames)
        if due_ms <= last_ms:  # the lead lets the next frame go at once: service goes on
            self.service(last_ms)
            deadline, poll_at = self.rearm(None, math.inf, last_ms)
            return event, deadline, poll_at
        # rearm, inline: the head still holds a whole frame (the run went on only with two),
        # so the next deadline is due_ms, and it is ahead of the run's last frame
        return event, due_ms, due_ms + 0.0

    def _run_length(
        self, head: _Buffer, now: float, event: Event, events: Iterator[Event]
    ) -> tuple[int, Event]:
        """How many frames the run from ``now`` sends, and the trace event that ends it.

        Frame j of the run goes at now (j = 0), then at due(j) = anchor + (media + j *
        frame_ms) - lead, the timer armed after frame j - 1; it ends at offset + (j + 1) *
        frame_bytes. After frame j the run stops if that end passes ``stop`` (fewer than two
        frames left) or, once the open tail took the trace events before due(j + 1), if the
        next event comes at or before due(j + 1). The last frame is found per event, not per
        frame: a few float operations per event instead of a row per frame (on the longest
        shipped trace the plan took 1.8 ms so, now ~0.6 ms here and ~0.3 ms in ``_assemble``)."""
        anchor_ms, media_ms, lead_ms = self.anchor_ms, self.media_ms, self.lead_ms
        assert anchor_ms is not None
        frame_bytes, frame_ms = self.frame_bytes, self.frame_ms
        offset = head.offset
        stop = offset + head.size - (frame_bytes + frame_bytes)
        if not (now < anchor_ms + (media_ms + frame_ms) - lead_ms and offset + frame_bytes <= stop):
            return 1, event
        t, code, key, data = event
        open_tail = self.buffers[-1]
        open_key = None if open_tail.ended else open_tail.key
        grows_head = open_tail is head
        absorbed = 0  # audio the open tail takes during the run, added at its end
        guess_ms = anchor_ms + media_ms - lead_ms  # due(0), for guesses only
        clear_below, clear_above, ceil = self.clear_below, 1.0 - self.clear_below, math.ceil
        step = 0  # the run's last frame so far, its end within ``stop``
        while True:
            # frames after ``step`` keep within ``stop`` up to, not including, last
            last = (stop - offset) // frame_bytes
            # The event is looked at after the first frame s whose next deadline reaches it,
            # guessed by division. A guess clear of both deadlines (by far more than rounding
            # moves them) is that frame, the event strictly before due(s + 1); else the exact
            # deadlines settle it.
            ahead = (t - guess_ms) / frame_ms
            s = ceil(ahead) - 1 if ahead < last else last
            if not (step <= s < last and clear_below < ahead - s < clear_above):
                if anchor_ms + (media_ms + last * frame_ms) - lead_ms < t:
                    step = last  # the event comes after frame last's own timer
                    break
                s = min(max(s, step), last - 1)
                while s > step and anchor_ms + (media_ms + s * frame_ms) - lead_ms >= t:
                    s -= 1
                while anchor_ms + (media_ms + (s + 1) * frame_ms) - lead_ms < t:
                    s += 1
                if anchor_ms + (media_ms + (s + 1) * frame_ms) - lead_ms == t:
                    step = s
                    break  # a tie: the event goes first (timers fire strictly before it)
            step = s
            if code == AUDIO and key == open_key:
                # more audio for the open tail: only sizes change, the run goes on
                added = len(data)
                absorbed += added
                if grows_head:
                    stop += added
                t, code, key, data = next(events)
                continue
            break  # the event goes first
        if absorbed:
            self.pushed[open_tail.key] += absorbed
            open_tail.size += absorbed
        return step + 1, (t, code, key, data)

    def _record_run(self, head: _Buffer, progress: ItemProgress, now: float, anchor_ms: float,
                    frames: int) -> None:  # fmt: skip
        """Keep the run as one tuple (``_assemble`` makes its rows) and advance the queue, the
        stream clock and the mark ledger past it."""
        frame_bytes, media_ms, period = self.frame_bytes, self.media_ms, self.mark_period
        offset, marked_to = head.offset, progress.marked_to
        # MarkLedger's cadence: a mark at the first frame ending ``mark_gap`` past the last
        # mark, then every ``period`` frames
        first_mark = max(0, -((offset - marked_to - self.mark_gap_bytes) // frame_bytes) - 1)
        marks = (frames - 1 - first_mark) // period + 1 if first_mark < frames else 0
        self.runs.append((len(self.rows), frames, marks, head.item_id, head.content_index,
                          self.generation, offset, now, anchor_ms, media_ms, first_mark,
                          marked_to, self.seq))  # fmt: skip
        if marks:
            self.seq += marks
            marked_to = offset + (first_mark + (marks - 1) * period + 1) * frame_bytes
        sent_bytes = frames * frame_bytes
        progress.sent_to, progress.marked_to = offset + sent_bytes, marked_to
        head.size -= sent_bytes
        head.offset = offset + sent_bytes
        self.media_ms = media_ms + frames * self.frame_ms  # exact: see the module docstring

    def rearm(
        self, deadline: float | None, poll_at: float, now: float
    ) -> tuple[float | None, float]:
        """send_all's timer after a call at ``now``."""
        return rearm(self.next_deadline(), deadline, poll_at, now)

    def next_deadline(self) -> float | None:
        buffers, anchor_ms = self.buffers, self.anchor_ms
        if not buffers or anchor_ms is None:
            return None
        head = buffers[0]
        if head.size < self.frame_bytes and not (head.ended and head.size):
            return None
        return anchor_ms + self.media_ms - self.lead_ms

    def push(self, key: ItemKey, data: bytes, now: float) -> None:
        if data:
            offset = self.pushed.get(key, 0)
            self.pushed[key] = offset + len(data)
            buffers = self.buffers
            tail = buffers[-1] if buffers else None
            if tail is None or tail.ended or tail.key != key:
                if tail is not None:
                    tail.ended = True  # a new item: the previous one's audio is complete
                tail = _Buffer(key, offset)
                buffers.append(tail)
            tail.size += len(data)
        self.service(now)

    def end(self, key: ItemKey, now: float) -> None:
        for buffer in reversed(self.buffers):
            if buffer.key == key and not buffer.ended:
                buffer.ended = True
                self.service(now)
                return
        self.service(now)
        self.finish(key, now)

    def interrupt(self, now: float) -> None:
        self.buffers.clear()
        self.anchor_ms, self.media_ms = None, 0.0
        self.rows.append((CLEAR, "", -1, 0, 0, self.generation, now, ""))
        self.generation += 1
        self.progress.clear()

    def service(self, now: float) -> None:
        """PacedStrategy._service: every frame whose deadline has come, in order."""
        buffers, frame_bytes, lead_ms = self.buffers, self.frame_bytes, self.lead_ms
        while buffers:
            head = buffers[0]
            buffered = head.size
            if buffered >= frame_bytes:
                size = frame_bytes
            elif not head.ended:
                return
            elif buffered:
                size = buffered
            else:
                del buffers[0]
                self.finish(head.key, now)
                continue
            anchor_ms, media_ms = self.anchor_ms, self.media_ms
            if anchor_ms is None or anchor_ms + media_ms < now:
                anchor_ms = self.anchor_ms = now - media_ms
            if anchor_ms + media_ms - lead_ms > now:
                return
            self.send(head, size, now)
            self.media_ms = media_ms + size / BYTES_PER_MS

    def send(self, head: _Buffer, size: int, now: float) -> None:
        """One frame (MarkLedger.media's cadence); retires the head after its tail."""
        offset = head.offset
        head.offset, head.size = offset + size, head.size - size
        final = head.ended and not head.size
        if final:
            del self.buffers[0]
        key = head.key
        self.rows.append((MEDIA, head.item_id, head.content_index, offset, size, self.generation,
                          now, ""))  # fmt: skip
        progress = self.marks.sent(key, offset, size, final)
        if progress is not None:
            self.mark(key, progress, now)

    def finish(self, key: ItemKey, now: float) -> None:
        """MarkLedger.finish: a marks-only row when the item's last bytes are unmarked."""
        progress = self.marks.finish(key)
        if progress is not None:
            self.mark(key, progress, now)

    def mark(self, key: ItemKey, progress: ItemProgress, now: float) -> None:
        self.seq += 1
        start, end = progress.marked_to, progress.sent_to
        progress.marked_to = end
        self.rows.append((MARK, key[0], key[1], start, end - start, self.generation, now,
                          mark_name(self.seq, self.generation)))  # fmt: skip


def _closed_form_holds(trace: PreparedTrace, lead_ms: float) -> bool:
    """Whether media time and the lead stay below ``CLOSED_FORM_LIMIT_MS`` (media time never
    exceeds the trace's audio; each run also checks its anchor)."""
    return (trace.audio_bytes / BYTES_PER_MS < CLOSED_FORM_LIMIT_MS
            and -CLOSED_FORM_LIMIT_MS < lead_ms < CLOSED_FORM_LIMIT_MS)  # fmt: skip


class _RunRows(NamedTuple):
    """Every run's frames, in send order, and the rows they and their marks take."""

    media_rows: IntArray  # each frame's row
    sent_ms: FloatArray
    offset: IntArray
    marked: IntArray  # the frames a mark follows
    mark_rows: IntArray
    mark_start: IntArray
    mark_end: IntArray


def _run_rows(runs: list[tuple[Any, ...]], run_start: IntArray, frame_bytes: int,
              frame_ms: float, lead_ms: float, period: int) -> _RunRows:  # fmt: skip
    """The frames of all runs (``runs`` as columns) at once, as the module docstring says."""
    (_, frames, _, _, _, _, offsets, first_ms, anchors, medias, first_marks, marked_to,
     _) = runs  # fmt: skip
    run_frames = np.array(frames, dtype=np.int64)
    run_of = np.repeat(np.arange(len(run_frames)), run_frames)
    frames_before = np.cumsum(run_frames) - run_frames
    j = np.arange(len(run_of)) - frames_before[run_of]  # the frame's number in its run
    media_ms = np.array(medias, dtype=np.float64)[run_of] + j * frame_ms  # exact, see above
    sent_ms = (np.array(anchors, dtype=np.float64)[run_of] + media_ms) - lead_ms
    sent_ms[frames_before] = first_ms
    offset = np.array(offsets, dtype=np.int64)[run_of] + j * frame_bytes
    since_mark = j - np.array(first_marks, dtype=np.int64)[run_of]
    marks_before = np.where(since_mark > 0, (since_mark + period - 1) // period, 0)
    media_rows = run_start[run_of] + j + marks_before
    marked = np.flatnonzero((since_mark >= 0) & (since_mark % period == 0))
    mark_end = offset[marked] + frame_bytes
    # a run's first mark starts where the last one before the run ended, the others where
    # the mark ``period`` frames earlier did
    mark_start = np.where(since_mark[marked] == 0,
                          np.array(marked_to, dtype=np.int64)[run_of[marked]],
                          mark_end - period * frame_bytes)  # fmt: skip
    return _RunRows(media_rows, sent_ms, offset, marked, media_rows[marked] + 1, mark_start,
                    mark_end)  # fmt: skip


def _runmark_names(runs: list[tuple[Any, ...]]) -> list[str]:
    """The names of the runs' marks, in order."""
    names: list[str] = []
    _, _, marks, _, _, generations, *_, seqs = runs
    for generation, seq, count in zip(generations, seqs, marks, strict=True):
        if count:
            names += mark_names(generation, seq + 1, count)
    return names


def _assemble(slow_rows: list[SlowRow], runs: list[TimerRun], frame_bytes: int,
              frame_ms: float, lead_ms: float, period: int) -> PlanColumns:  # fmt: skip
    """All messages in send order: every run's rows, and the rows sent outside runs, each
    after the runs recorded before it."""
    by_field = list(zip(*runs, strict=True)) if runs else [()] * 13
    slow_before, _, marks, items, indexes, generations, *_ = by_field
    run_rows = np.array(by_field[1], dtype=np.int64) + np.array(marks, dtype=np.int64)
    rows_through = np.cumsum(run_rows)
    run_start = np.array(slow_before, dtype=np.int64) + (rows_through - run_rows)
    total = len(slow_rows) + (int(rows_through[-1]) if runs else 0)
    frames = _run_rows(by_field, run_start, frame_bytes, frame_ms, lead_ms, period)
    slow_at = np.arange(len(slow_rows))
    runs_before = np.searchsorted(np.array(slow_before, dtype=np.int64), slow_at, side="right")
    slow_at += np.concatenate(([0], rows_through))[runs_before]
    slow = list(zip(*slow_rows, strict=True)) if slow_rows else [()] * 8
    s_kind, s_item, s_index, s_offset, s_size, s_generation, s_sent, s_name = slow

    def spread(out: npt.NDArray[Any], at_frames: Any, at_marks: Any,
               at_slow: tuple[Any, ...]) -> npt.NDArray[Any]:  # fmt: skip
        out[frames.media_rows] = at_frames
        out[frames.mark_rows] = at_marks
        out[slow_at] = at_slow
        return out

    # item and generation are constant along a run: the rows are runs and slow rows, in order,
    # each repeated over its rows (one np.repeat rather than a gather and three scatters)
    in_order = np.argsort(np.concatenate((run_start, slow_at)), kind="stable")
    lengths = np.concatenate((run_rows, np.ones(len(slow_rows), dtype=np.int64)))[in_order]

    def per_run(values: tuple[Any, ...], slow_values: tuple[Any, ...], dtype: Any) -> Any:
        return np.repeat(np.array(values + slow_values, dtype=dtype)[in_order], lengths)

    kind = np.zeros(total, dtype=np.int64)
    kind[frames.mark_rows] = MARK
    kind[slow_at] = s_kind
    name = np.empty(total, dtype=object)
    name.fill("")  # np.full takes 4x longer for an object
    name[frames.mark_rows] = _runmark_names(by_field)
    name[slow_at] = s_name
    mark_sizes = frames.mark_end - frames.mark_start
    return PlanColumns(
        kind=kind,
        item_id=per_run(items, s_item, object),
        content_index=per_run(indexes, s_index, np.int64),
        offset=spread(np.empty(total, dtype=np.int64), frames.offset, frames.mark_start, s_offset),
        size=spread(np.empty(total, dtype=np.int64), frame_bytes, mark_sizes, s_size),
        generation=per_run(generations, s_generation, np.int64),
        sent_ms=spread(np.empty(total), frames.sent_ms, frames.sent_ms[frames.marked], s_sent),
        name=name,
    )

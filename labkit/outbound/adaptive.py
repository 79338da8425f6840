"""``adaptive``: a per-item pre-roll learned from the call, aiming at the offline oracle.

The oracle (DOMAIN.md section 4): with media offsets m and arrivals a, the smallest constant
playout delay, counted from an item's first audio, that lets FIFO playout never starve is
``D* = max(a - m) - a_0``. Holding an item's audio for D* ms of *time* from its first byte gives
Twilio exactly that delay. (A hold measured in audio, as ``preroll`` does, buys only as much
time as the model took to deliver that audio.) ``adaptive`` estimates D* for the next item from
the items already played:

1. Upstream: for every item it computes D*_up from the arrivals it saw itself (with aligned
   frames, from the start of the frame a chunk's first byte belongs to: a frame leaves whole).
2. Echoes: Twilio echoes a mark when the audio before it finished playing. Echo k, covering
   the item's bytes up to ``e_k``, comes back at ``t_k = P0 + e_k/8 + S_k + r_k``: play start,
   audio before it, starvation S_k heard so far (network delay and jitter included, which the
   sender cannot see) and the echo's own trip back r_k >= r_min. So the lag
   ``L_k = t_k - e_k/8`` grows only by starvation, plus return-trip noise. The item's
   starvation S = min(L over its last ``ECHO_WINDOW`` echoes) - min(L over all its echoes),
   counted when above ``echo_tolerance_ms``: minima filter the return trip's jitter out (summing
   the excess spacing of consecutive echoes would add that jitter up and mistake a jittery path
   back for starvation). Starvation within the last window of echoes is seen only in part.
   A gate keeps echo noise from counting on items that never starved: a mark's round trip
   ``now - sent - size/8`` exceeds the path's own trip by the audio that was queued at Twilio
   ahead of it; if even the item's least excess is above ``echo_tolerance_ms``, the queue never
   ran dry during the item and S = 0. The path's trip is the least on the call counted from
   each mark's *first* byte (``now - first_sent - size/8``), which no mark undershoots: from its
   last send, a mark whose audio went out over time (at real time, part of it already played)
   undershoots it by up to its span, and every later item would look queued.
3. When the item's final mark echoes, its sample is ``max(D*_up, hold + S - echo_tolerance_ms)``
   if it starved (the hold fell short by S, less what echo noise could explain), else
   ``D*_up``. Interrupted items give no sample.
4. The next item's hold = the ``percentile`` (default p95, nearest rank) of the last
   ``history`` samples, clamped to ``[floor_ms, cap_ms]``; ``threshold_ms`` is the hold of
   every item until the first sample.

Messages are whole 20 ms frames (160-byte multiples), only an item's tail is shorter; after
the hold, whole frames go out as they complete. An item that ends during its hold goes out
whole at ``end()``. A mid-item buffer (after an interrupt) is not held.

Promise: a byte waits at most ``cap_ms`` after its item's first byte (or until the item ends),
then at most until its frame's last byte arrived. See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from labkit.marks import DEFAULT_MARK_EVERY_MS
from labkit.outbound.base import BYTES_PER_MS, FRAME_BYTES, Mark, Outbound
from labkit.outbound.itemqueue import ItemBuffer, ItemKey
from labkit.outbound.queued import QueuedStrategy

DEFAULT_PERCENTILE = 95.0
DEFAULT_CAP_MS = 400.0
DEFAULT_FLOOR_MS = 20.0
DEFAULT_HISTORY = 64
DEFAULT_ECHO_TOLERANCE_MS = 20.0
ECHO_WINDOW = 5  # echoes whose least lag stands for the end of an item
MAX_TRACKED_ITEMS = 64  # items awaiting their final echo; a silent peer cannot grow this


@dataclass(slots=True)
class ItemStats:
    """What one item showed: its hold, upstream lateness, and the echoes of its marks."""

    first_arrival_ms: float
    hold_ms: float
    max_lateness_ms: float = -math.inf  # max over chunks of arrival - media time of first byte
    final_end: int | None = None  # offset past the item's last byte, once it went out
    last_echo: tuple[int, float] | None = None  # (end offset, echo time) of the latest echo
    min_lag_ms: float = math.inf  # min over echoes of (echo time - media time of its end)
    min_round_trip_ms: float = math.inf  # min over its marks of (echo - sent - own audio)
    recent_lags_ms: deque[float] = field(default_factory=lambda: deque(maxlen=ECHO_WINDOW))

    def add_echo(self, end: int, now: float) -> None:
        lag_ms = now - end / BYTES_PER_MS
        if lag_ms < self.min_lag_ms:  # min() as a comparison: once per echo
            self.min_lag_ms = lag_ms
        self.recent_lags_ms.append(lag_ms)
        self.last_echo = (end, now)

    @property
    def starvation_ms(self) -> float:
        """How much later the item's last audio played than its first allowed for."""
        if not self.recent_lags_ms:
            return 0.0
        return min(self.recent_lags_ms) - self.min_lag_ms

    @property
    def upstream_dstar_ms(self) -> float:
        return max(0.0, self.max_lateness_ms - self.first_arrival_ms)


def nearest_rank_percentile(values: list[float], percentile: float) -> float:
    """The nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(percentile / 100.0 * len(ordered)))
    return ordered[rank - 1]


class AdaptiveStrategy(QueuedStrategy):
    """Hold each item's start for a learned time, then send whole frames as they complete."""

    name = "adaptive"
    threshold_means: str | None = "hold until it has learnt (ms)"  # what threshold_ms is to it
    echo_blind = False  # it learns its hold from echoes

    def __init__(
        self,
        threshold_ms: float = 100.0,
        *,
        percentile: float = DEFAULT_PERCENTILE,
        cap_ms: float = DEFAULT_CAP_MS,
        floor_ms: float = DEFAULT_FLOOR_MS,
        history: int = DEFAULT_HISTORY,
        echo_tolerance_ms: float = DEFAULT_ECHO_TOLERANCE_MS,
        mark_every_ms: float | None = DEFAULT_MARK_EVERY_MS,
        honor_generations: bool = True,
        align_frames: bool = True,
    ) -> None:
        super().__init__(threshold_ms, mark_every_ms=mark_every_ms,
                         honor_generations=honor_generations, align_frames=align_frames)
        _check(0 < percentile <= 100, "percentile", percentile, "in (0, 100]")
        _check(0 <= floor_ms <= cap_ms and math.isfinite(cap_ms), "floor_ms/cap_ms",
               (floor_ms, cap_ms), "0 <= floor_ms <= cap_ms < inf")
        _check(history >= 1, "history", history, ">= 1")
        _check(echo_tolerance_ms >= 0, "echo_tolerance_ms", echo_tolerance_ms, ">= 0")
        self.percentile = percentile
        self.cap_ms = cap_ms
        self.floor_ms = floor_ms
        self.echo_tolerance_ms = echo_tolerance_ms
        self.samples_ms: deque[float] = deque(maxlen=history)
        self._items: OrderedDict[ItemKey, ItemStats] = OrderedDict()
        self._least_round_trip_ms = math.inf  # the call's least mark round trip: empty queue

    @property
    def hold_ms(self) -> float:
        """The hold the next item will get."""
        if not self.samples_ms:
            return min(self.threshold_ms, self.cap_ms)
        estimate = nearest_rank_percentile(list(self.samples_ms), self.percentile)
        return min(self.cap_ms, max(self.floor_ms, estimate))

    def next_deadline(self) -> float | None:
        # once per strategy call: the head and _sendable(head.size) == 0 inline (with the
        # inlines in _service, ~2% of a simulated call); without aligned frames only an empty
        # buffer has nothing to send
        buffers = self._queue.buffers
        if not buffers:
            return None
        head = buffers[0]
        if head.size < FRAME_BYTES if self.align_frames else not head.size:
            return None
        return head.hold_until_ms  # after it, a sendable frame would already have gone out

    def echo(self, name: str, now: float) -> Mark | None:
        mark = self.ledger.echo(name, now)
        if mark is not None:
            self.learn_from_echo(mark, now)
        return mark

    def close(self) -> None:
        super().close()
        self._items.clear()

    def _service(self, now: float) -> list[Outbound]:
        out: list[Outbound] = []
        buffers = self._queue.buffers
        if not buffers:
            return out
        head = buffers[0]
        if head.ended:  # most calls find the head open: the drain is only needed otherwise
            open_head = self._drain_ended_heads(now, out)
            if open_head is None:
                return out
            head = open_head
        if now >= head.hold_until_ms:
            size = head.size
            if self.align_frames:
                size -= size % FRAME_BYTES  # _sendable, inline: once per push and poll
            if size:
                self._send(head, size, now, out)
        return out

    def _on_push(self, buffer: ItemBuffer, is_new: bool, size: int, now: float) -> None:
        if is_new and buffer.offset == 0:  # the item's first byte
            buffer.hold_until_ms = now + self.start_item(buffer.key, now)
        stats = self._items.get(buffer.key)
        if stats is not None:  # once per push: end_offset, whole_frames, max inline (~3%)
            first_byte = buffer.offset + buffer.size - size
            if self.align_frames:  # a byte can leave only once its frame is whole
                first_byte -= first_byte % FRAME_BYTES
            lateness_ms = now - first_byte / BYTES_PER_MS
            if lateness_ms > stats.max_lateness_ms:
                stats.max_lateness_ms = lateness_ms

    def _on_interrupt(self, now: float) -> None:
        self.forget_items()

    def _retire_head(self) -> None:
        head = self._queue.buffers.popleft()
        self.item_sent(head.key, head.offset)

    # -- the learner: what each item showed, fed by the strategy's own calls

    def start_item(self, key: ItemKey, now: float) -> float:
        """An item's first byte arrived at ``now``: track what it shows; returns its hold (ms)."""
        hold = self.hold_ms
        items = self._items
        items[key] = ItemStats(first_arrival_ms=now, hold_ms=hold)
        items.move_to_end(key)
        while len(items) > MAX_TRACKED_ITEMS:
            items.popitem(last=False)
        return hold

    def learned_anything(self) -> bool:
        """Whether any item, echo or sample has been seen (False for a fresh strategy)."""
        return bool(self.samples_ms or self._items or self._least_round_trip_ms < math.inf)

    def item_stats(self, key: ItemKey) -> ItemStats | None:
        """What the tracked item ``key`` showed so far (None once sampled, dropped or unknown)."""
        return self._items.get(key)

    def item_sent(self, key: ItemKey, final_end: int) -> None:
        """Every byte of item ``key`` went out (up to offset ``final_end``): its last mark ends
        there."""
        stats = self._items.get(key)
        if stats is not None:
            stats.final_end = final_end
            self._sample_if_complete(key, stats)

    def forget_items(self) -> None:
        """An interrupt: the tracked items' marks are cleared, no echo will complete them."""
        self._items.clear()

    def learn_from_echo(self, mark: Mark, now: float) -> None:
        """The ledger credited the echo of ``mark`` at ``now``."""
        key = (mark.item_id, mark.content_index)
        stats = self._items.get(key)
        if stats is None:
            return
        end = mark.end
        audio_ms = (end - mark.start) / BYTES_PER_MS
        # From the mark's last send, a trip never overstates the queue ahead of its audio (the
        # item's gate); from its first, it is never below the path's own trip (the call's
        # least), also when its audio went out spread over time and partly played already.
        round_trip_ms = now - mark.sent_ms - audio_ms
        path_trip_ms = now - mark.first_sent_ms - audio_ms
        # once per echo: min() as comparisons, mark.size and the final-echo test inline (~3%)
        if path_trip_ms < self._least_round_trip_ms:
            self._least_round_trip_ms = path_trip_ms
        if round_trip_ms < stats.min_round_trip_ms:
            stats.min_round_trip_ms = round_trip_ms
        stats.add_echo(end, now)
        if end == stats.final_end:  # the item's final mark: _sample_if_complete's test
            self._sample_if_complete(key, stats)

    def _sample_if_complete(self, key: ItemKey, stats: ItemStats) -> None:
        """Once the item's final mark has echoed, it yields its sample."""
        if stats.last_echo is not None and stats.last_echo[0] == stats.final_end:
            self.samples_ms.append(self._sample(stats))
            del self._items[key]

    def _sample(self, stats: ItemStats) -> float:
        queued_ms = stats.min_round_trip_ms - self._least_round_trip_ms
        starvation_ms = 0.0 if queued_ms > self.echo_tolerance_ms else stats.starvation_ms
        if starvation_ms > self.echo_tolerance_ms:  # beyond what echo noise can explain
            needed_ms = stats.hold_ms + starvation_ms - self.echo_tolerance_ms
            return max(stats.upstream_dstar_ms, needed_ms)
        return stats.upstream_dstar_ms


def _check(ok: bool, what: str, value: object, rule: str) -> None:
    if not ok:
        raise ValueError(f"strategy 'adaptive': {what} must be {rule}, got {value!r}")

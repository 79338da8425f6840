"""Metrics of one run (simulated or observed live), named after W3C webrtc-stats and NetEQ.

Everything is computed with numpy from a schedule: one row per outbound message with the columns
kind, item_id, content_index, offset, size, generation, sent_ms, arrived_ms and,
once a playout model has played it, play_start_ms, play_end_ms, played_bytes, cleared_bytes,
discarded_bytes.
See notebooks/01_why_tiny_packets_jitter.ipynb and notebooks/02_threshold_sweep.ipynb.

Definitions (all times in ms, "item" = one (item_id, content_index) audio stream; where a
clear falls inside an item, its audio after the clear counts as a new item for gaps, lag,
jitter and D*: the caller's buffer was emptied, and the silence is the barge-in's):
- gap: silence between two consecutive *played* media messages of the same item,
  ``play_start[k+1] - play_end[k]`` (between pieces where a message played in several);
  silence before an item's first byte is time to first audio, not a gap. A gap > 1e-6 ms is
  concealment (or padding silence, where the playout model inserted it: the caller hears no
  speech either way); ``concealment_events`` counts them, ``concealed_ms`` sums them; gaps >=
  150 ms are NetEQ interruptions. ``onset_concealed_ms`` and ``onset_concealment_events`` count
  the gaps that fall within the first ``ONSET_MS`` (200 ms) of an item's audio (media time of
  the byte after the gap): where a word-start stutter would be heard.
- ``mean_added_latency_ms``: jitter_buffer_delay / jitter_buffer_emitted_count at the playout model:
  the mean over played bytes of (the time the byte plays) - (the time its message arrived at the
  playout model). A message of n bytes arriving at a and starting at s adds n(s - a) + n(n-1)/16.
- ``mean_lag_ms``: mean over played bytes of (play time) - (item origin + media offset of the byte),
  where the origin is when the model delivered the item's first byte: how much later than real-time
  playout from the first delivered byte each byte is heard (sender hold + network + underruns).
- ``jitter_ms``: RFC 3550 6.4.1 over media messages, transit = arrival - media offset,
  reset per item (NaN, as D*, for a run without media).
- ``oracle_min_delay_ms``: D* = max_i(a_i - m_i) - (a_0 - m_0) per item, largest over items: the
  least fixed delay after the first arrival with no late message (Moon, Kurose & Towsley 1998).
- ``stale_after_barge_in_ms``: audio sent before an interrupt that plays after the interrupt
  was issued.
- ``credited_unplayed_bytes``: bytes of marks the strategy credited that never played.
"""

from __future__ import annotations

import array
import functools
import itertools
import json
import math
import operator
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from labkit.sim.batch_playout import Pieces
from labkit.sim.playout import make_playout
from labkit.twilio_messages import clear_json, mark_json, media_json

BYTES_PER_MS = 8
CONCEALMENT_EPS_MS = 1e-6
INTERRUPTION_MIN_MS = 150.0  # NetEQ interruption_count threshold
ONSET_MS = 200.0  # a gap before this much of an item has played is at its onset
RTP_JITTER_GAIN = 1.0 / 16.0
STREAM_SID = "MZ" + "0" * 32
MEDIA_JSON_BYTES = len(media_json(STREAM_SID, b""))
MARK_JSON_BYTES = len(mark_json(STREAM_SID, ""))
CLEAR_JSON_BYTES = len(clear_json(STREAM_SID))
PERCENTILES = (50, 95, 99)
ITEM_SHIFT = 1 << 40  # item code * ITEM_SHIFT + byte offset orders bytes across items

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
KIND_CODES = {"media": 0, "mark": 1, "clear": 2}
SCHEDULE_COLUMNS = (
    "kind",
    "item_id",
    "content_index",
    "offset",
    "size",
    "generation",
    "sent_ms",
    "arrived_ms",
    "play_start_ms",
    "play_end_ms",
    "played_bytes",
    "cleared_bytes",
    "discarded_bytes",
    "name",
    "echo_ms",
    "echo_received_ms",
    "credited_bytes",
)


@dataclass
class Metrics:
    """What one run did to the caller. See the module docstring for each definition."""

    messages: int
    media_messages: int
    mark_messages: int
    clear_messages: int
    bytes: int
    wire_bytes: int
    audio_ms: float
    played_ms: float
    played_bytes: int
    cleared_bytes: int
    discarded_bytes: int
    sender_gap_p50_ms: float
    sender_gap_p95_ms: float
    sender_gap_p99_ms: float
    sender_gap_max_ms: float
    arrival_gap_p50_ms: float
    arrival_gap_p95_ms: float
    arrival_gap_p99_ms: float
    arrival_gap_max_ms: float
    concealed_ms: float
    concealment_events: int
    onset_concealed_ms: float
    onset_concealment_events: int
    interruption_count: int
    total_interruption_duration_ms: float
    mean_time_to_first_audio_ms: float
    mean_added_latency_ms: float
    mean_lag_ms: float
    jitter_ms: float
    oracle_min_delay_ms: float
    messages_per_audio_s: float
    stale_after_barge_in_ms: float
    credited_bytes: int
    credited_unplayed_bytes: int
    time_to_first_audio_ms: list[float] = field(default_factory=list)

    @property
    def gap_ms_per_audio_s(self) -> float:
        """Silence in gaps inside answers, in ms per second of the model's audio: calls of any
        length compared (NaN with no audio)."""
        return self.concealed_ms / (self.audio_ms / 1000.0) if self.audio_ms else math.nan

    @property
    def onset_gaps_per_answer(self) -> float:
        """Gaps within the first 200 ms of an answer, per answer: a word-start stutter is heard
        once an answer (NaN when no answer was heard: nothing to judge, not a clean call)."""
        answers = len(self.time_to_first_audio_ms)
        return self.onset_concealment_events / answers if answers else math.nan

    def as_row(self) -> dict[str, Any]:
        """A flat dict of scalars (the per-item list is left out; its mean is in), with the
        two per-call rates."""
        row = asdict(self)
        row.pop("time_to_first_audio_ms")
        row["items"] = len(self.time_to_first_audio_ms)
        row["gap_ms_per_audio_s"] = self.gap_ms_per_audio_s
        row["onset_gaps_per_answer"] = self.onset_gaps_per_answer
        return row


def json_row(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` as strict JSON takes it (jq, JavaScript): a value that is not a finite number
    (NaN where a metric has nothing to measure, e.g. a call with no audio) becomes null."""
    return {key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in row.items()}  # fmt: skip


def wire_sizes(kind: list[str], size: IntArray, names: list[str]) -> int:
    """Total JSON text length of the messages as labkit's Twilio codec writes them."""
    kinds = np.asarray(kind, dtype=object)
    sizes = np.asarray(size, dtype=np.int64)
    return _wire_bytes(sizes[kinds == "media"], np.flatnonzero(kinds == "mark"), len(sizes), names)


def _wire_bytes(media_sizes: IntArray, mark_rows: IntArray, messages: int, names: Any) -> int:
    """JSON text length of ``messages`` messages: media of ``media_sizes`` bytes, marks at
    ``mark_rows`` of ``names``, the rest clears."""
    base64_bytes = 4 * int(((media_sizes + 2) // 3).sum())  # 4 * ceil(n / 3) each
    mark_names = _rows_of(names, mark_rows)
    clears = messages - len(media_sizes) - len(mark_names)
    return (
        MEDIA_JSON_BYTES * len(media_sizes) + base64_bytes
        + MARK_JSON_BYTES * len(mark_names) + _json_strings_length(mark_names)
        + CLEAR_JSON_BYTES * clears
    )  # fmt: skip


def _rows_of(values: Any, rows: IntArray) -> list[Any] | tuple[Any, ...]:
    """``values[row]`` for each row of ``rows``, from an array or a list (itemgetter takes them
    from a list in C: 16 us where a list comprehension takes 20, for 680 rows)."""
    if isinstance(values, np.ndarray):
        taken: list[Any] = values[rows].tolist()
        return taken
    if len(rows) < 2:  # itemgetter of one row gives the value, not a tuple
        return [values[row] for row in rows.tolist()]
    picked: tuple[Any, ...] = operator.itemgetter(*rows.tolist())(values)
    return picked


def _json_strings_length(texts: Sequence[Any]) -> int:
    """Total length of ``texts`` (as ``str`` gives them) as JSON string bodies: checked once on
    the joined text when nothing in it needs escaping (the usual case), else name by name."""
    try:
        joined = "".join(texts)
    except TypeError:  # not all str (a NaN name in a live schedule): str() only then, it costs
        texts = list(map(str, texts))
        joined = "".join(texts)
    if _needs_no_escape(joined):
        return len(joined)
    return sum(_json_string_length(text) for text in texts)


# Printable ASCII but '"' and '\': what JSON keeps as is (json.dumps escapes the rest of ASCII).
_JSON_PLAIN_ASCII = bytes(c for c in range(0x20, 0x7F) if chr(c) not in '"\\')


def _needs_no_escape(text: str) -> bool:
    """Whether ``text`` is printable ASCII without '"' or '\\' (JSON keeps it as is). Deleting
    the plain bytes and finding none left takes 3 us for 5000 characters, isprintable() 10."""
    return text.isascii() and not text.encode("ascii").translate(None, _JSON_PLAIN_ASCII)


def _json_string_length(text: str) -> int:
    """Length of ``text`` as a JSON string body (json.dumps escapes; plain ASCII stays as is)."""
    if _needs_no_escape(text):
        return len(text)
    return len(json.dumps(text)) - 2


def _item_codes(
    item_ids: npt.NDArray[np.object_], content: IntArray, is_media: BoolArray
) -> tuple[IntArray, dict[tuple[str, int], int]]:
    """Per row, the number of its item: items are numbered in order of their first media row
    (``is_media`` tells which rows are media), a row of an item without media gets -1.
    Looked up once per run of rows of one item, since consecutive rows mostly share it."""
    code_of: dict[tuple[str, int], int] = {}
    if len(content) == 0:
        return np.zeros(0, dtype=np.int64), code_of
    changes = np.empty(len(content), dtype=np.bool_)  # np.r_ would cost more than the rest
    changes[0] = True
    np.not_equal(item_ids[1:], item_ids[:-1], out=changes[1:])
    changes[1:] |= content[1:] != content[:-1]
    heads = np.flatnonzero(changes)
    keys = list(zip(item_ids[heads].tolist(), content[heads].tolist(), strict=True))
    for key, numbered in zip(keys, np.logical_or.reduceat(is_media, heads).tolist(),
                             strict=True):  # fmt: skip
        if numbered:
            code_of.setdefault(key, len(code_of))
    run_codes = [code_of.get(key, -1) for key in keys]
    run_lengths = np.empty_like(heads)  # np.diff(heads, append=...) costs 4x more
    run_lengths[:-1] = heads[1:] - heads[:-1]
    run_lengths[-1] = len(content) - heads[-1]
    codes: IntArray = np.repeat(np.array(run_codes, dtype=np.int64), run_lengths)
    return codes, code_of


@dataclass
class _ItemRuns:
    """Where media rows of one item follow each other, from the item codes of media rows.

    ``same[k]``: rows k and k + 1 are of one item. ``first``: each item's first row, items
    numbered 0..n-1 in order of appearance. ``contiguous``: each item's rows are one run (the
    usual: items are sent one after the other), which lets per-item work go by runs.
    """

    same: BoolArray
    first: IntArray
    contiguous: bool

    @classmethod
    def of(cls, codes: IntArray, items: int) -> _ItemRuns:
        same = codes[1:] == codes[:-1]
        if len(codes) - int(np.count_nonzero(same)) == items:
            first = np.empty(items, dtype=np.int64)  # np.unique would sort: 7 us; all this: 5
            first[:1] = 0
            first[1:] = np.flatnonzero(~same) + 1
            return cls(same, first, True)
        return cls(same, np.unique(codes, return_index=True)[1], False)


@dataclass
class _Segments:
    """An item's audio split where a clear falls inside it. The clear empties the caller's
    buffer, so the item's audio played after it starts afresh, as a new answer would: the
    silence across the clear is the barge-in, not concealment, and the lag, jitter and least
    delay of what follows count from its own first byte. Segments are numbered in order of
    appearance; ``item`` is each one's item code, ``later`` marks all but an item's first."""

    codes: IntArray
    item: IntArray
    later: BoolArray

    @classmethod
    def of(cls, item_codes: IntArray, epochs: IntArray, items: int) -> _Segments | None:
        """From each media row's item code and count of clears before it; None when no clear
        falls inside an item (the usual: a clear ends an answer)."""
        if len(item_codes) == 0:
            return None
        span = int(epochs.max()) + 1
        keys, first, inverse = np.unique(item_codes * span + epochs, return_index=True,
                                         return_inverse=True)  # fmt: skip
        if len(keys) == items:
            return None
        order = np.argsort(first)
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        item = (keys // span)[order]
        later = np.ones(len(order), dtype=np.bool_)
        later[np.unique(item, return_index=True)[1]] = False
        return cls(rank[inverse.reshape(-1)], item, later)

    def lag_shift(self, origin: FloatArray, delivered: FloatArray, offset_ms: FloatArray
                  ) -> FloatArray:  # fmt: skip
        """Per segment, what moves a byte's lag from its item's origin to its segment's: 0
        for an item's first segment, else the item's origin less the segment's first
        delivery, plus the media offset of its first byte."""
        count = len(self.item)
        shift = (origin[self.item] - _per_item(np.minimum, delivered, self.codes, count, None)
                 + _per_item(np.minimum, offset_ms, self.codes, count, None))  # fmt: skip
        shift[~self.later] = 0.0
        return shift


def _per_item(
    extreme: np.ufunc, values: FloatArray, codes: IntArray, items: int, first: IntArray | None
) -> FloatArray:
    """``extreme`` (np.minimum or np.maximum) of ``values`` per item code; an item without
    values gets inf (-inf for the maximum). Given ``first`` (each item's values are one run,
    starting there) by reduceat, 1.5 us where ufunc.at takes 5 for 1000 values and 19 for 5000.
    Both give the same extreme value; only the sign of a zero (or a NaN's bits) could differ,
    so such a result is redone with ufunc.at."""
    if first is not None and len(values):
        by_runs: FloatArray = extreme.reduceat(values, first)
        if np.abs(by_runs).min() > 0:  # False for a zero or a NaN
            return by_runs
    result = np.full(items, math.inf if extreme is np.minimum else -math.inf)
    extreme.at(result, codes, values)
    return result


def _percentiles(gaps: FloatArray, prefix: str) -> dict[str, float]:
    """Percentiles and max of ``gaps`` (reordered in place) leaving out NaN (unknown times)."""
    top = float(np.max(gaps)) if len(gaps) else math.nan
    if math.isnan(top) and len(gaps):  # max is NaN iff a gap is: filter only then
        gaps = gaps[~np.isnan(gaps)]
        top = float(np.max(gaps)) if len(gaps) else math.nan
    if len(gaps) == 0:
        nan = math.nan
        return {f"{prefix}_p50_ms": nan, f"{prefix}_p95_ms": nan, f"{prefix}_p99_ms": nan,
                f"{prefix}_max_ms": nan}  # fmt: skip
    p50, p95, p99 = _linear_percentiles(gaps, PERCENTILES)
    return {f"{prefix}_p50_ms": p50, f"{prefix}_p95_ms": p95,
            f"{prefix}_p99_ms": p99, f"{prefix}_max_ms": top}  # fmt: skip


def _linear_percentiles(values: FloatArray, percents: tuple[int, ...]) -> list[float]:
    """``np.percentile(values, percents)`` (default "linear" method, no NaN in ``values``), with
    numpy's float operations, in a third of the time: a partition around the few ranks needed
    and scalar interpolation instead of numpy's general machinery. Partitions ``values`` in
    place (no copy). Checked against numpy in tests/test_sim_metrics.py."""
    points, kth = _percentile_ranks(len(values), percents)
    values.partition(kth)
    result = []
    for below, above, weight in points:
        low, high = float(values[below]), float(values[above])
        step = high - low
        result.append(high - step * (1 - weight) if weight >= 0.5 else low + step * weight)
    return result


@functools.lru_cache(maxsize=256)
def _percentile_ranks(
    n: int, percents: tuple[int, ...]
) -> tuple[tuple[tuple[int, int, float], ...], list[int]]:
    """For each percent of ``n`` values: the ranks around it and the weight of the upper one,
    as numpy's linear method takes them; and the ranks to partition at (cached: runs repeat gap
    counts, and this costs 2 us a call)."""
    points = []
    for percent in percents:
        rank = (n - 1) * (percent / 100)
        if rank >= n - 1:  # numpy takes the last value, with rank - (-1) as weight
            points.append((-1, -1, rank + 1))
        else:
            below = math.floor(rank)
            points.append((below, below + 1, rank - below))
    kth = sorted({i % n for b, a, _ in points for i in (b, a)})
    return tuple(points), kth


class _DecayPowers:
    """(1 - RTP_JITTER_GAIN) ** k for k = n-1 .. 0, as the tail of one array computed once:
    each power is the same float operation however long the array (tests/test_sim_metrics.py
    checks), and a slice costs 0.3 us where the powers cost 6 for 1000."""

    def __init__(self) -> None:
        self.powers: FloatArray = np.zeros(0)

    def __call__(self, n: int) -> FloatArray:
        if n > len(self.powers):
            size = max(n, 2 * len(self.powers), 8192)
            self.powers = (1.0 - RTP_JITTER_GAIN) ** np.arange(size - 1, -1, -1,
                                                               dtype=np.float64)  # fmt: skip
        return self.powers[len(self.powers) - n :]


_decay_powers = _DecayPowers()


def _rtp_jitter(transit_diffs: FloatArray) -> float:
    """RFC 3550 jitter after the within-item transit differences ``transit_diffs``, NaN (an
    unknown arrival) left out."""
    d = np.abs(transit_diffs)
    if len(d) == 0:
        return 0.0
    jitter = float(RTP_JITTER_GAIN * np.dot(_decay_powers(len(d)), d))
    if math.isnan(jitter):  # a NaN difference (or 0 * inf): again without NaN, as it was meant
        d = d[~np.isnan(d)]
        if len(d) == 0:
            return 0.0
        jitter = float(RTP_JITTER_GAIN * np.dot(_decay_powers(len(d)), d))
    return jitter


def _oracle_min_delay(transit: FloatArray, codes: IntArray, runs: _ItemRuns) -> float:
    if len(transit) == 0:
        return 0.0
    worst = _per_item(np.maximum, transit, codes, len(runs.first),
                      runs.first if runs.contiguous else None)  # fmt: skip
    return float(max(np.max(worst - transit[runs.first]), 0.0))


@dataclass
class _Marks:
    """The marks' item codes, byte ranges ([offset, offset + size) of their item) and the bytes
    credited for each."""

    codes: IntArray
    offset: IntArray
    size: IntArray
    credited: IntArray


@dataclass
class _Media:
    """The media rows' item codes, offsets and bytes played, with their item runs."""

    codes: IntArray
    offset: IntArray
    played: IntArray
    runs: _ItemRuns
    all_played: bool


def _credited_unplayed(marks: _Marks, media: _Media) -> int:
    """Bytes of credited marks that did not play: for each mark credited c > 0 that played
    p bytes of its range, c - min(p, c)."""
    credited = marks.credited
    if not credited.any():
        return 0
    got = (
        marks.size
        if _mark_ranges_all_played(marks, media)
        else _played_in_mark_ranges(marks, media)
    )
    return int(((credited > 0) * (credited - np.minimum(got, credited))).sum())


def _played_in_mark_ranges(marks: _Marks, media: _Media) -> IntArray:
    lo = marks.codes * ITEM_SHIFT + marks.offset
    hi = lo + marks.size
    return _played_in_ranges(media.codes * ITEM_SHIFT + media.offset, media.played, lo, hi)


def _mark_ranges_all_played(marks: _Marks, media: _Media) -> bool:
    """Whether each mark's whole range played, so that _played_in_mark_ranges would give its
    size (bytes played below x grow one for one across an item's played bytes): true when
    every item played one run of bytes from 0 (its media rows in one run, each played and
    starting where the one before ended) that covers the mark (``credited`` implies marks).
    Checking takes about 15 us where the lookup takes 40 (1100 media rows, 700 marks)."""
    runs, offset = media.runs, media.offset
    if not (media.all_played and runs.contiguous and len(offset)) or offset[runs.first].any():
        return False
    ends = offset + media.played
    if not np.equal(ends[:-1], offset[1:]).all(where=runs.same):
        return False
    extent = np.empty(len(runs.first), dtype=np.int64)  # bytes played of each item
    extent[:-1] = ends[runs.first[1:] - 1]
    extent[-1] = ends[-1]
    if np.max(extent) > ITEM_SHIFT:  # items' byte positions would overlap
        return False
    return bool(
        np.min(marks.codes) >= 0 and np.min(marks.offset) >= 0 and np.min(marks.size) >= 0
        and (marks.offset + marks.size <= extent[marks.codes]).all()
    )  # fmt: skip


def _played_in_ranges(pos: IntArray, played: IntArray, lo: IntArray, hi: IntArray) -> IntArray:
    """Bytes played inside each [lo, hi), given disjoint played ranges ``[pos, pos + played)``
    from distinct ``pos``:
    bytes played below hi minus those below lo (both ends looked up at once)."""
    if len(pos) == 0:
        return np.zeros(len(lo), dtype=np.int64)
    if np.any(pos[1:] < pos[:-1]):  # usually in order already: items are sent byte by byte
        order = np.argsort(pos, kind="stable")
        pos, played = pos[order], played[order]
    played_before = np.empty(len(played) + 1, dtype=np.int64)  # np.concatenate: 0.5 us more
    played_before[0] = 0
    np.cumsum(played, out=played_before[1:])
    ends = np.concatenate((hi, lo))
    index = np.searchsorted(pos, ends, side="right") - 1
    at = np.maximum(index, 0)
    inside = np.minimum(np.maximum(ends - pos[at], 0), played[at])  # np.clip costs 4x more
    below = np.where(index >= 0, played_before[at] + inside, 0)
    counted: IntArray = below[: len(hi)] - below[len(hi) :]
    return counted


def _known_or(values: FloatArray, fallback: FloatArray) -> FloatArray:
    known: FloatArray = np.where(np.isnan(values), fallback, values)
    return known


def _content_indexes(columns: dict[str, Any]) -> IntArray:
    """The content_index column as int64. A list of zeros (one content part per item, the
    usual) is seen as such in 1 us, where converting it takes 25 (1700 rows)."""
    column = columns["content_index"]
    if isinstance(column, list) and column.count(0) == len(column):
        return np.zeros(len(column), dtype=np.int64)
    return _ints(column)


def _ints(column: Any) -> IntArray:
    """A column as int64: an array as it is, a list as np.asarray would convert it (np.fromiter
    converts each value the same way, 20% faster)."""
    if isinstance(column, np.ndarray):
        return np.asarray(column, dtype=np.int64)
    return np.fromiter(column, dtype=np.int64, count=len(column))


class _Rows:
    """Some rows of the schedule, ``mask`` (a bool per row) and ``index`` (their numbers).

    Columns are taken at them by index: 1 us for 1000 of 1700 rows where the mask takes 4. A
    list column is read at those rows only (np.fromiter over itertools.compress: 23 us instead
    of 30 for 1000 of 1700 rows), once the mask is a list.
    """

    def __init__(self, mask: BoolArray, index: IntArray | None = None) -> None:
        self.mask = mask
        self.index: IntArray = np.flatnonzero(mask) if index is None else index
        self.count = len(self.index)
        self._listed: list[bool] | None = None

    def take(self, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return values.take(self.index)

    def floats(self, columns: dict[str, Any], name: str) -> FloatArray:
        if name not in columns:
            return np.full(self.count, math.nan)
        column = columns[name]
        if isinstance(column, np.ndarray):
            taken: FloatArray = np.asarray(column, dtype=np.float64).take(self.index)
            return taken
        if self._listed is None:
            self._listed = self.mask.tolist()
        selected = itertools.compress(column, self._listed)
        return np.fromiter(selected, dtype=np.float64, count=self.count)


def _byte_counts(column: Any) -> npt.NDArray[Any]:
    """A column of byte counts as an array: integers stay integers (NaN is possible only in
    a float column). A list of ints is read through array.array: 27 us for 1700 rows where
    np.asarray, which must first find the type, takes 37."""
    if isinstance(column, list):
        try:
            return np.frombuffer(array.array("q", column), dtype=np.int64)
        except (TypeError, OverflowError):  # not all ints that fit int64: as numpy reads them
            pass
    return np.asarray(column)


def _counts_at(columns: dict[str, Any], name: str, rows: _Rows) -> IntArray:
    """Byte counts of column ``name`` at ``rows`` (NaN as 0; none without the column)."""
    if name not in columns:
        return np.zeros(rows.count, dtype=np.int64)
    values = _byte_counts(columns[name])
    if values.dtype.kind in "iu" and len(values):
        whole: IntArray = rows.take(values).astype(np.int64, copy=False)
        return whole
    floats = rows.take(np.asarray(values, dtype=np.float64))
    counted: IntArray = np.nan_to_num(floats).astype(np.int64)
    return counted


def _total_at(columns: dict[str, Any], name: str, rows: _Rows) -> int:
    """Sum of the byte counts of column ``name`` at ``rows``. A column of zeros (cleared and
    discarded bytes, mostly) is seen as such in 1 us."""
    column = columns.get(name)
    if isinstance(column, list):
        if column.count(0) == len(column):
            return 0
    elif (isinstance(column, np.ndarray) and column.dtype.kind in "biuf"
          and not np.count_nonzero(column)):  # fmt: skip
        return 0
    return int(_counts_at(columns, name, rows).sum())


def _piece_view(
    pieces: Pieces, columns: dict[str, Any], row_codes: IntArray, offsets: IntArray
) -> tuple[IntArray, IntArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per played piece: item code, bytes, arrival and send time of its message, media offset
    (ms) of its first byte, start and end."""
    rows, counts = pieces.rows, pieces.bytes
    everything = _Rows(np.ones(len(row_codes), dtype=np.bool_))
    arrived = everything.floats(columns, "arrived_ms")[rows]
    sent = everything.floats(columns, "sent_ms")[rows]
    before = np.cumsum(counts) - counts  # bytes of earlier pieces, then of the same message
    new_row = np.empty(len(rows), dtype=np.bool_)
    new_row[:1] = True
    np.not_equal(rows[1:], rows[:-1], out=new_row[1:])
    within = before - np.maximum.accumulate(np.where(new_row, before, 0))
    offset_ms = (offsets[rows] + within) / BYTES_PER_MS
    start = pieces.start_ms
    return (row_codes[rows], counts, arrived, sent, offset_ms, start,
            start + counts / BYTES_PER_MS)  # fmt: skip


def _played(
    values: IntArray,
    media_index: IntArray,
    on: BoolArray,
    all_played: bool,
    pieces: Pieces | None,
    messages: int,
) -> IntArray:
    """A value of each media row (``values``) at each played message, or piece."""
    if pieces is not None:
        by_row = np.full(messages, -1, dtype=np.int64)
        by_row[media_index] = values
        at_pieces: IntArray = by_row[pieces.rows]
        return at_pieces
    return values if all_played else values[on]


def compute(
    columns: dict[str, Any],
    origins_ms: dict[tuple[str, int], float] | None = None,
    interrupts_ms: FloatArray | None = None,
    *,
    kind_codes: IntArray | None = None,
    pieces: Pieces | None = None,
) -> Metrics:
    """Metrics from schedule columns (lists or arrays, see SCHEDULE_COLUMNS).

    ``origins_ms`` maps an item to when the model delivered its first byte (default: the item's
    first ``sent_ms``); ``interrupts_ms`` are the times barge-ins were issued (default: sent
    times of clears). ``kind_codes`` (0 media, 1 mark, 2 clear) saves decoding ``kind``.
    ``pieces``: where messages played in several pieces (a frame clock), gaps are counted
    between pieces.

    Speed: every numpy call costs 1-5 us here, so each column is converted once, values are
    taken at media rows and again at played rows only when some media row did not play, and
    per-item work goes by runs of rows when items do not interleave (the usual).
    """
    kind = columns["kind"]
    if kind_codes is None:
        kind_codes = np.array([KIND_CODES.get(k, -1) for k in kind], dtype=np.int64)
    messages = len(kind)
    is_media, is_mark = kind_codes == 0, kind_codes == 1
    media_rows, mark_rows = _Rows(is_media), _Rows(is_mark)
    media_count, mark_count = media_rows.count, mark_rows.count
    size, offsets = _ints(columns["size"]), _ints(columns["offset"])
    # Item codes of all rows (those of clears unused): no object array of the item rows to cut.
    item_ids = columns["item_id"]
    if not isinstance(item_ids, np.ndarray):  # np.fromiter: 14 us for 1700 ids, np.asarray 19
        item_ids = np.fromiter(item_ids, dtype=object, count=len(item_ids))
    row_codes, code_of = _item_codes(item_ids, _content_indexes(columns), is_media)
    codes = media_rows.take(row_codes)
    n_items = len(code_of)
    runs = _ItemRuns.of(codes, n_items)
    clear_count = int(np.count_nonzero(kind_codes == 2))
    segments = _Segments.of(codes, media_rows.take(np.cumsum(kind_codes == 2)), n_items) \
        if clear_count else None  # fmt: skip

    sent, arrived = media_rows.floats(columns, "sent_ms"), media_rows.floats(columns, "arrived_ms")
    offset, msize = media_rows.take(offsets), media_rows.take(size)
    offset_ms = offset / BYTES_PER_MS
    media_bytes = int(msize.sum())
    played = _counts_at(columns, "played_bytes", media_rows)
    on = played > 0
    played_count = int(np.count_nonzero(on))
    all_played = played_count == media_count
    if all_played:  # the usual: no second selection
        p_codes, p_played, p_arrived, p_offset_ms = codes, played, arrived, offset_ms
        played_rows = media_rows
        same_played = runs.same
    else:
        p_codes, p_played, p_arrived = codes[on], played[on], arrived[on]
        p_offset_ms = offset_ms[on]
        on_index = media_rows.index[on]
        on_rows = np.zeros_like(is_media)
        on_rows[on_index] = True
        played_rows = _Rows(on_rows, on_index)
        same_played = p_codes[1:] == p_codes[:-1]
    p_start = played_rows.floats(columns, "play_start_ms")
    p_end = played_rows.floats(columns, "play_end_ms")
    p_sent = sent if all_played else sent[on]
    whole_runs = all_played and runs.contiguous
    if pieces is not None:  # some message played in several pieces: count by pieces
        by_piece = _piece_view(pieces, columns, row_codes, offsets)
        p_codes, p_played, p_arrived, p_sent, p_offset_ms, p_start, p_end = by_piece
        same_played = p_codes[1:] == p_codes[:-1]
        whole_runs = False
    if segments is not None:  # the silence across a clear inside an item is no gap
        p_segments = _played(segments.codes, media_rows.index, on, all_played, pieces, messages)
        same_played = p_segments[1:] == p_segments[:-1]

    # gaps between consecutive played pieces (messages, mostly) of one item
    gap_all = (p_start[1:] - p_end[:-1])[same_played]
    audible = gap_all > CONCEALMENT_EPS_MS
    gaps = gap_all[audible]
    onset = p_offset_ms[1:][same_played][audible] < ONSET_MS  # the byte after the gap
    interruptions = gaps[gaps >= INTERRUPTION_MIN_MS]

    # time to first audio and lag, per item
    first_start = _per_item(np.minimum, p_start, p_codes, n_items,
                            runs.first if whole_runs else None)  # fmt: skip
    if origins_ms is None:
        origin = _per_item(np.minimum, sent, codes, n_items, None)
    else:
        looked_up = map(origins_ms.get, code_of, itertools.repeat(math.nan))
        origin = np.fromiter(looked_up, dtype=np.float64, count=n_items)
    waits = first_start - origin
    known_waits = waits[np.isfinite(waits)]
    ttfa = known_waits.tolist()
    weight = p_played.astype(np.float64)
    total_played = float(weight.sum())
    lag = p_start - origin[p_codes] - p_offset_ms
    if segments is not None:
        lag = lag + segments.lag_shift(origin, _known_or(sent, arrived), offset_ms)[p_segments]
    buffer_delay = (p_start - p_arrived) * weight + weight * (weight - 1) / (2 * BYTES_PER_MS)

    # barge-in: audio sent before an interrupt but heard after it was issued
    if interrupts_ms is None:  # when the clear was issued; its arrival if that is all we know
        clear_rows = _Rows(kind_codes == 2)
        interrupts_ms = _known_or(clear_rows.floats(columns, "sent_ms"),
                                  clear_rows.floats(columns, "arrived_ms"))  # fmt: skip
    interrupts = np.asarray(interrupts_ms, dtype=np.float64)
    stale = 0.0
    if len(interrupts) and len(p_start):
        interrupts = np.sort(interrupts)
        idx = np.searchsorted(interrupts, _known_or(p_sent, p_arrived), side="left")
        has = idx < len(interrupts)
        cut = interrupts[np.minimum(idx, len(interrupts) - 1)]
        stale = float(np.clip(p_end - np.maximum(p_start, cut), 0, None)[has].sum())

    marks = _Marks(mark_rows.take(row_codes), mark_rows.take(offsets), mark_rows.take(size),
                   _counts_at(columns, "credited_bytes", mark_rows))  # fmt: skip
    credited_unplayed = _credited_unplayed(marks, _Media(codes, offset, played, runs, all_played))

    audio_ms = media_bytes / BYTES_PER_MS
    names = columns["name"] if "name" in columns else [""] * messages
    wire_bytes = _wire_bytes(msize, mark_rows.index, messages, names)
    sender_gaps = _percentiles((sent[1:] - sent[:-1])[runs.same], "sender_gap")
    arrival_gaps = _percentiles((arrived[1:] - arrived[:-1])[runs.same], "arrival_gap")
    transit = arrived - offset_ms
    if segments is None:
        jitter = _rtp_jitter((transit[1:] - transit[:-1])[runs.same])
        oracle = _oracle_min_delay(transit, codes, runs)
    else:
        segment_runs = _ItemRuns.of(segments.codes, len(segments.item))
        jitter = _rtp_jitter((transit[1:] - transit[:-1])[segment_runs.same])
        oracle = _oracle_min_delay(transit, segments.codes, segment_runs)
    return Metrics(
        messages=messages,
        media_messages=media_count,
        mark_messages=mark_count,
        clear_messages=int(np.count_nonzero(kind_codes == 2)),
        bytes=media_bytes,
        wire_bytes=wire_bytes,
        audio_ms=audio_ms,
        played_ms=total_played / BYTES_PER_MS,
        played_bytes=int(total_played),
        cleared_bytes=_total_at(columns, "cleared_bytes", media_rows),
        discarded_bytes=_total_at(columns, "discarded_bytes", media_rows),
        **sender_gaps,
        **arrival_gaps,
        concealed_ms=float(gaps.sum()),
        concealment_events=len(gaps),
        onset_concealed_ms=float(gaps[onset].sum()),
        onset_concealment_events=int(np.count_nonzero(onset)),
        interruption_count=len(interruptions),
        total_interruption_duration_ms=float(interruptions.sum()),
        mean_time_to_first_audio_ms=float(known_waits.sum() / len(ttfa)) if ttfa else math.nan,
        mean_added_latency_ms=float(buffer_delay.sum() / total_played)
        if total_played
        else math.nan,
        mean_lag_ms=float((lag * weight).sum() / total_played) if total_played else math.nan,
        jitter_ms=jitter if media_count else math.nan,  # no audio: no jitter to speak of
        oracle_min_delay_ms=oracle if media_count else math.nan,
        messages_per_audio_s=messages / (audio_ms / 1000) if audio_ms else math.nan,
        stale_after_barge_in_ms=stale,
        credited_bytes=int(marks.credited.sum()),
        credited_unplayed_bytes=credited_unplayed,
        time_to_first_audio_ms=ttfa,
    )


def measure(schedule: pd.DataFrame, playout: str = "fifo", **params: float) -> Metrics:
    """Metrics of observed arrivals (a live loopback call): replay them through a playout model.

    ``schedule`` needs kind, item_id, content_index, offset, size, generation, arrived_ms (sent_ms
    may be NaN); rows in the order they arrived. Payload bytes do not matter, so silence stands in.
    Without send times (a peer sees only arrivals) sender gaps are NaN, and stale audio after a
    barge-in counts from the clear's arrival.
    """
    required = ("kind", "item_id", "content_index", "offset", "size", "generation", "arrived_ms")
    missing = [c for c in required if c not in schedule.columns]
    if missing:
        raise ValueError(f"measure: schedule lacks the column(s) {', '.join(missing)}")
    columns: dict[str, Any] = {c: schedule[c].tolist() for c in schedule.columns}
    _check_observed(columns, list(schedule.index))
    columns.setdefault("sent_ms", [math.nan] * len(schedule))
    columns.setdefault("name", [""] * len(schedule))
    model = make_playout(playout, **params)
    pieces = replay_playout(model, columns)
    origins = None
    if all(math.isnan(t) for t in columns["sent_ms"]):
        origins = _first_arrivals(columns)
    return compute(columns, origins_ms=origins, interrupts_ms=None, pieces=pieces)


MAX_MESSAGE_BYTES = BYTES_PER_MS * 3_600_000  # an hour of audio: no Twilio message is near it


def _check_observed(columns: dict[str, Any], labels: list[Any]) -> None:
    """A ValueError naming the row (its index label) and column of the first value a live
    schedule cannot hold: an unknown kind, an arrival that is not a finite time or comes before
    the row above it, a media or mark row's size or content index that is not a whole number
    >= 0."""
    previous = -math.inf
    for row, (kind, arrived, size, content) in enumerate(zip(
            columns["kind"], columns["arrived_ms"], columns["size"], columns["content_index"],
            strict=True)):  # fmt: skip
        where = f"measure: schedule row {labels[row]!r}"
        if kind not in KIND_CODES:
            raise ValueError(f"{where}, column 'kind': {kind!r} is not one of "
                             f"{', '.join(KIND_CODES)}")  # fmt: skip
        if not isinstance(arrived, (int, float)) or not math.isfinite(arrived):
            raise ValueError(f"{where}, column 'arrived_ms': {arrived!r} is not a finite time")
        if arrived < previous:
            raise ValueError(f"{where}, column 'arrived_ms': {arrived} is before the row above "
                             f"({previous}); rows go in the order they arrived")  # fmt: skip
        previous = arrived
        if kind == "clear":  # a clear names no item (content index -1) and holds no audio
            continue
        for name, value, most in (("size", size, MAX_MESSAGE_BYTES),
                                  ("content_index", content, math.inf)):  # fmt: skip
            whole = isinstance(value, (int, float)) and float(value).is_integer()
            if not (whole and 0 <= value <= most):
                raise ValueError(f"{where}, column {name!r}: {value!r} is not a whole number "
                                 f"from 0 to {most:g}")  # fmt: skip


def _first_arrivals(columns: dict[str, Any]) -> dict[tuple[str, int], float]:
    first: dict[tuple[str, int], float] = {}
    for k, i, c, a in zip(
        columns["kind"],
        columns["item_id"],
        columns["content_index"],
        columns["arrived_ms"],
        strict=True,
    ):
        if k == "media":
            first.setdefault((i, int(c)), float(a))
    return first


def replay_playout(model: Any, columns: dict[str, Any]) -> Pieces | None:
    """Feed the rows to ``model`` at their arrival times; add the play columns in place.
    Returns the pieces of messages that played in several (None if all played whole)."""
    n = len(columns["kind"])
    start, end = [math.nan] * n, [math.nan] * n
    played, cleared, discarded = [0] * n, [0] * n, [0] * n
    media_rows: list[int] = []
    names = columns["name"]
    for row, (k, a) in enumerate(zip(columns["kind"], columns["arrived_ms"], strict=True)):
        model.advance(a)
        if k == "media":
            model.receive_media(b"\xff" * int(columns["size"][row]), a)
            media_rows.append(row)
        elif k == "mark":
            model.receive_mark(str(names[row]), a)
        elif k == "clear":
            model.receive_clear(a)
    model.advance(math.inf)
    for row, record in zip(media_rows, model.plays, strict=True):
        played[row], cleared[row], discarded[row] = (
            record.played_bytes,
            record.cleared_bytes,
            record.discarded_bytes,
        )
        if record.played_bytes:
            start[row], end[row] = record.start_ms, record.end_ms
    columns.update(play_start_ms=start, play_end_ms=end, played_bytes=played,
                   cleared_bytes=cleared, discarded_bytes=discarded)  # fmt: skip
    return Pieces.of(media_rows, model.plays)

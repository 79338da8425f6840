"""The metrics as labkit.sim.metrics computed them before its speed work (commit 76971f9),
kept as the reference the faster ``compute`` must equal bit for bit. One rule was added since:
a clear inside an item starts a new segment of it (``_segment_codes``)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from labkit.sim.metrics import (
    BYTES_PER_MS,
    CLEAR_JSON_BYTES,
    CONCEALMENT_EPS_MS,
    INTERRUPTION_MIN_MS,
    ITEM_SHIFT,
    KIND_CODES,
    MARK_JSON_BYTES,
    MEDIA_JSON_BYTES,
    ONSET_MS,
    PERCENTILES,
    RTP_JITTER_GAIN,
    BoolArray,
    FloatArray,
    IntArray,
    Metrics,
)


def _wire_bytes(media: BoolArray, marks: BoolArray, size: IntArray, names: Any) -> int:
    media_count = int(np.count_nonzero(media))
    base64_bytes = 4 * int(((size[media] + 2) // 3).sum())  # 4 * ceil(n / 3) each
    mark_rows = np.flatnonzero(marks)
    if isinstance(names, np.ndarray):
        mark_names = names[mark_rows].tolist()
    else:
        mark_names = [names[row] for row in mark_rows.tolist()]
    clears = len(size) - media_count - len(mark_names)
    return (
        MEDIA_JSON_BYTES * media_count + base64_bytes
        + MARK_JSON_BYTES * len(mark_names) + _json_strings_length(mark_names)
        + CLEAR_JSON_BYTES * clears
    )  # fmt: skip


def _json_strings_length(texts: list[Any]) -> int:
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


def _needs_no_escape(text: str) -> bool:
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def _json_string_length(text: str) -> int:
    """Length of ``text`` as a JSON string body (json.dumps escapes; plain ASCII stays as is)."""
    if _needs_no_escape(text):
        return len(text)
    return len(json.dumps(text)) - 2


def _item_codes(
    item_ids: npt.NDArray[np.object_], content: IntArray, is_media: BoolArray
) -> tuple[IntArray, dict[tuple[str, int], int]]:
    """Per row (media and marks; ``is_media`` tells which), the number of its item: items are
    numbered in order of their first media row, a mark of an item without media gets -1.
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


def _segment_codes(codes: IntArray, clears_before: IntArray) -> IntArray:
    """Each media row's segment, an (item, clears before the row) pair, numbered in order."""
    numbers: dict[tuple[int, int], int] = {}
    pairs = zip(codes.tolist(), clears_before.tolist(), strict=True)
    return np.array([numbers.setdefault(pair, len(numbers)) for pair in pairs], dtype=np.int64)


def _segment_lag_shift(segments: IntArray, codes: IntArray, origin: FloatArray,
                       delivered: FloatArray, offset_ms: FloatArray) -> FloatArray:  # fmt: skip
    """Per segment: 0 for an item's first, else the item's origin less the segment's first
    delivery plus its first byte's media offset (its lag counts from its own start)."""
    count = int(segments.max()) + 1 if len(segments) else 0
    first_delivery, first_offset = np.full(count, math.inf), np.full(count, math.inf)
    np.minimum.at(first_delivery, segments, delivered)
    np.minimum.at(first_offset, segments, offset_ms)
    item_of = np.zeros(count, dtype=np.int64)
    item_of[segments] = codes
    firsts: dict[int, int] = {}
    for segment, item in zip(segments.tolist(), codes.tolist(), strict=True):
        firsts.setdefault(item, segment)
    shift: FloatArray = origin[item_of] - first_delivery + first_offset
    shift[list(firsts.values())] = 0.0
    return shift


def _percentiles(gaps: FloatArray, prefix: str) -> dict[str, float]:
    if len(gaps) == 0:
        nan = math.nan
        return {f"{prefix}_p50_ms": nan, f"{prefix}_p95_ms": nan, f"{prefix}_p99_ms": nan,
                f"{prefix}_max_ms": nan}  # fmt: skip
    p50, p95, p99 = _linear_percentiles(gaps, PERCENTILES)
    return {f"{prefix}_p50_ms": p50, f"{prefix}_p95_ms": p95,
            f"{prefix}_p99_ms": p99, f"{prefix}_max_ms": float(gaps.max())}  # fmt: skip


def _linear_percentiles(values: FloatArray, percents: tuple[int, ...]) -> list[float]:
    """``np.percentile(values, percents)`` (default "linear" method, no NaN in ``values``), with
    numpy's float operations, in a third of the time: a partition around the few ranks needed
    and scalar interpolation instead of numpy's general machinery. Checked against numpy in
    tests/test_sim_metrics.py."""
    n = len(values)
    points = []
    for percent in percents:
        rank = (n - 1) * (percent / 100)
        if rank >= n - 1:  # numpy takes the last value, with rank - (-1) as weight
            points.append((-1, -1, rank + 1))
        else:
            below = math.floor(rank)
            points.append((below, below + 1, rank - below))
    ordered = np.partition(values, sorted({i % n for b, a, _ in points for i in (b, a)}))
    result = []
    for below, above, weight in points:
        low, high = float(ordered[below]), float(ordered[above])
        step = high - low
        result.append(high - step * (1 - weight) if weight >= 0.5 else low + step * weight)
    return result


def _within_item_diffs(values: FloatArray, codes: IntArray) -> FloatArray:
    same = codes[1:] == codes[:-1]
    diffs: FloatArray = np.diff(values)[same]
    return diffs[~np.isnan(diffs)]


def _rtp_jitter(transit: FloatArray, codes: IntArray) -> float:
    d = np.abs(_within_item_diffs(transit, codes))
    if len(d) == 0:
        return 0.0
    decay = (1.0 - RTP_JITTER_GAIN) ** np.arange(len(d) - 1, -1, -1, dtype=np.float64)
    return float(RTP_JITTER_GAIN * np.dot(decay, d))


def _oracle_min_delay(arrived: FloatArray, offset_ms: FloatArray, codes: IntArray) -> float:
    if len(arrived) == 0:
        return 0.0
    transit = arrived - offset_ms
    _, first = np.unique(codes, return_index=True)  # codes are 0..k-1 in order of appearance
    worst = np.full(len(first), -math.inf)
    np.maximum.at(worst, codes, transit)
    return float(max((worst - transit[first]).max(), 0.0))


def _played_in_ranges(pos: IntArray, played: IntArray, lo: IntArray, hi: IntArray) -> IntArray:
    """Bytes played inside each [lo, hi), given disjoint played ranges ``[pos, pos + played)``
    from distinct ``pos``:
    bytes played below hi minus those below lo (both ends looked up at once)."""
    if len(pos) == 0:
        return np.zeros(len(lo), dtype=np.int64)
    if np.any(pos[1:] < pos[:-1]):  # usually in order already: items are sent byte by byte
        order = np.argsort(pos, kind="stable")
        pos, played = pos[order], played[order]
    played_before = np.concatenate(([0], np.cumsum(played)))
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


def compute(
    columns: dict[str, Any],
    origins_ms: dict[tuple[str, int], float] | None = None,
    interrupts_ms: FloatArray | None = None,
    *,
    kind_codes: IntArray | None = None,
) -> Metrics:
    """Metrics from schedule columns (lists or arrays, see SCHEDULE_COLUMNS).

    ``origins_ms`` maps an item to when the model delivered its first byte (default: the item's
    first ``sent_ms``); ``interrupts_ms`` are the times barge-ins were issued (default: sent
    times of clears). ``kind_codes`` (0 media, 1 mark, 2 clear) saves decoding ``kind``.
    """
    kind = columns["kind"]
    if kind_codes is None:
        kind_codes = np.array([KIND_CODES.get(k, -1) for k in kind], dtype=np.int64)
    media, marks, clears = kind_codes == 0, kind_codes == 1, kind_codes == 2
    size = np.asarray(columns["size"], dtype=np.int64)
    with_item = media | marks
    media_among = media[with_item]
    item_codes, code_of = _item_codes(
        np.asarray(columns["item_id"], dtype=object)[with_item],
        np.asarray(columns["content_index"], dtype=np.int64)[with_item],
        media_among,
    )
    codes = item_codes[media_among]

    def col(name: str, rows: Any = media) -> FloatArray:
        if name not in columns:
            return np.full(int(np.count_nonzero(rows)), math.nan)
        values: FloatArray = np.asarray(columns[name], dtype=np.float64)[rows]
        return values

    def counts(name: str, rows: Any = media) -> IntArray:
        """Byte counts (NaN as 0): integer columns as they are, saving two conversions."""
        values = np.asarray(columns[name]) if name in columns else np.zeros(0, dtype=np.int64)
        if values.dtype.kind in "iu" and len(values):
            whole: IntArray = values[rows].astype(np.int64)
            return whole
        return np.nan_to_num(col(name, rows)).astype(np.int64)

    sent, arrived = col("sent_ms"), col("arrived_ms")
    offset = np.asarray(columns["offset"], dtype=np.int64)[media]
    msize = size[media]
    start, end = col("play_start_ms"), col("play_end_ms")
    played = counts("played_bytes")
    media_bytes = int(msize.sum())

    # gaps between consecutive played messages of one segment of an item
    segments = _segment_codes(codes, np.cumsum(clears)[media])
    on = played > 0
    p_codes, p_start, p_end = codes[on], start[on], end[on]
    same = segments[on][1:] == segments[on][:-1]
    gaps = (p_start[1:] - p_end[:-1])[same]
    after_gap_ms = (offset[on][1:] / BYTES_PER_MS)[same][gaps > CONCEALMENT_EPS_MS]
    gaps = gaps[gaps > CONCEALMENT_EPS_MS]
    onset = gaps[after_gap_ms < ONSET_MS]
    interruptions = gaps[gaps >= INTERRUPTION_MIN_MS]

    # time to first audio and lag, per item
    n_items = len(code_of)
    first_start = np.full(n_items, math.inf)
    np.minimum.at(first_start, p_codes, p_start)
    if origins_ms is None:
        origin = np.full(n_items, math.inf)
        np.minimum.at(origin, codes, sent)
    else:
        origin = np.array([origins_ms.get(k, math.nan) for k in code_of], dtype=np.float64)
    ttfa = [float(v) for v in (first_start - origin) if math.isfinite(v)]
    weight = played[on].astype(np.float64)
    total_played = float(weight.sum())
    lag = p_start - origin[p_codes] - offset[on] / BYTES_PER_MS
    delivered = _known_or(sent, arrived)
    shift = _segment_lag_shift(segments, codes, origin, delivered, offset / BYTES_PER_MS)
    if len(shift) > n_items:  # a clear falls inside an item
        lag = lag + shift[segments[on]]
    buffer_delay = (p_start - arrived[on]) * weight + weight * (weight - 1) / (2 * BYTES_PER_MS)

    # barge-in: audio sent before an interrupt but heard after it was issued
    if interrupts_ms is None:  # when the clear was issued; its arrival if that is all we know
        interrupts_ms = _known_or(col("sent_ms", clears), col("arrived_ms", clears))
    interrupts = np.sort(np.asarray(interrupts_ms, dtype=np.float64))
    stale = 0.0
    if len(interrupts) and len(p_start):
        idx = np.searchsorted(interrupts, _known_or(sent, arrived)[on], side="left")
        has = idx < len(interrupts)
        cut = interrupts[np.minimum(idx, len(interrupts) - 1)]
        stale = float(np.clip(p_end - np.maximum(p_start, cut), 0, None)[has].sum())

    credited = counts("credited_bytes", marks)
    credited_unplayed = 0
    if credited.any():
        mark_codes = item_codes[~media_among]
        lo = mark_codes * ITEM_SHIFT + np.asarray(columns["offset"], dtype=np.int64)[marks]
        hi = lo + size[marks]
        got = _played_in_ranges(codes * ITEM_SHIFT + offset, played, lo, hi)
        credited_unplayed = int(((credited > 0) * (credited - np.minimum(got, credited))).sum())

    messages = len(kind)
    audio_ms = media_bytes / BYTES_PER_MS
    names = columns["name"] if "name" in columns else [""] * messages
    wire_bytes = _wire_bytes(media, marks, size, names)
    sender_gaps = _percentiles(_within_item_diffs(sent, codes), "sender_gap")
    arrival_gaps = _percentiles(_within_item_diffs(arrived, codes), "arrival_gap")
    offset_ms = offset / BYTES_PER_MS
    jitter = _rtp_jitter(arrived - offset_ms, segments)
    oracle = _oracle_min_delay(arrived, offset_ms, segments)
    return Metrics(
        messages=messages,
        media_messages=int(np.count_nonzero(media)),
        mark_messages=int(np.count_nonzero(marks)),
        clear_messages=int(np.count_nonzero(clears)),
        bytes=media_bytes,
        wire_bytes=wire_bytes,
        audio_ms=audio_ms,
        played_ms=total_played / BYTES_PER_MS,
        played_bytes=int(total_played),
        cleared_bytes=int(counts("cleared_bytes").sum()),
        discarded_bytes=int(counts("discarded_bytes").sum()),
        **sender_gaps,
        **arrival_gaps,
        concealed_ms=float(gaps.sum()),
        concealment_events=len(gaps),
        onset_concealed_ms=float(onset.sum()),
        onset_concealment_events=len(onset),
        interruption_count=len(interruptions),
        total_interruption_duration_ms=float(interruptions.sum()),
        mean_time_to_first_audio_ms=float(np.mean(ttfa)) if ttfa else math.nan,
        mean_added_latency_ms=float(buffer_delay.sum() / total_played)
        if total_played
        else math.nan,
        mean_lag_ms=float((lag * weight).sum() / total_played) if total_played else math.nan,
        jitter_ms=jitter if np.count_nonzero(media) else math.nan,  # no audio: no jitter
        oracle_min_delay_ms=oracle if np.count_nonzero(media) else math.nan,
        messages_per_audio_s=messages / (audio_ms / 1000) if audio_ms else math.nan,
        stale_after_barge_in_ms=stale,
        credited_bytes=int(credited.sum()),
        credited_unplayed_bytes=credited_unplayed,
        time_to_first_audio_ms=ttfa,
    )

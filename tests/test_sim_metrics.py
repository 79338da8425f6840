"""The metrics' shortcuts give what the plain computations give, bit for bit (the plain
computations: tests/sim_metrics_reference.py, the code before its speed work)."""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_metrics_reference import _rtp_jitter as reference_rtp_jitter
from sim_metrics_reference import _wire_bytes as reference_wire_bytes
from sim_metrics_reference import compute as reference_compute

from labkit.sim.metrics import (
    ITEM_SHIFT,
    KIND_CODES,
    PERCENTILES,
    RTP_JITTER_GAIN,
    SCHEDULE_COLUMNS,
    Metrics,
    _decay_powers,
    _item_codes,
    _json_strings_length,
    _linear_percentiles,
    _needs_no_escape,
    _per_item,
    _played_in_ranges,
    _rtp_jitter,
    compute,
    measure,
    wire_sizes,
)


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3000), kind=st.integers(0, 3))
def test_percentiles_equal_numpys(seed: int, n: int, kind: int) -> None:
    rng = np.random.default_rng(seed)
    values = [
        rng.exponential(20.0, n),
        np.round(rng.normal(0.0, 50.0, n), 1),  # ties
        rng.choice([0.125, 20.0, 1e-7, 3.3], n),
        rng.lognormal(0.0, 3.0, n),
    ][kind]
    expected = np.percentile(values, PERCENTILES).tolist()
    assert _linear_percentiles(values.copy(), PERCENTILES) == expected


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 1),
                               st.booleans()), max_size=40))  # fmt: skip
def test_item_codes_number_items_by_their_first_media_row(
    rows: list[tuple[str, int, bool]],
) -> None:
    code_of: dict[tuple[str, int], int] = {}
    for item, index, is_media in rows:
        if is_media:
            code_of.setdefault((item, index), len(code_of))
    expected = [code_of.get((item, index), -1) for item, index, _ in rows]
    codes, got_code_of = _item_codes(
        np.array([item for item, _, _ in rows], dtype=object),
        np.array([index for _, index, _ in rows], dtype=np.int64),
        np.array([is_media for _, _, is_media in rows], dtype=np.bool_),
    )
    assert codes.tolist() == expected
    assert list(got_code_of.items()) == list(code_of.items())


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.tuples(st.integers(1, 30), st.integers(0, 30)), max_size=20),
    ranges=st.lists(st.tuples(st.integers(-5, 400), st.integers(0, 60)), max_size=20),
    shuffle=st.randoms(use_true_random=False),
)
def test_played_in_ranges_counts_byte_by_byte(
    pieces: list[tuple[int, int]], ranges: list[tuple[int, int]], shuffle: object
) -> None:
    pos, played, at = [], [], 0
    for gap, size in pieces:  # disjoint ranges, in any order
        pos.append(at + gap)
        played.append(size)
        at += gap + size
    order = list(range(len(pos)))
    shuffle.shuffle(order)  # type: ignore[attr-defined]
    heard = {b for p, n in zip(pos, played, strict=True) for b in range(p, p + n)}
    expected = [sum(lo <= b < lo + n for b in heard) for lo, n in ranges]
    got = _played_in_ranges(
        np.array([pos[i] for i in order], dtype=np.int64),
        np.array([played[i] for i in order], dtype=np.int64),
        np.array([lo for lo, _ in ranges], dtype=np.int64),
        np.array([lo + n for lo, n in ranges], dtype=np.int64),
    )
    assert got.tolist() == expected


def test_json_length_of_names_as_str_gives_them() -> None:
    names = ["m1", 'say "hi"', "caf\u00e9", math.nan, "tab\there"]
    assert _json_strings_length(names) == sum(len(json.dumps(str(n))) - 2 for n in names)
    assert _json_strings_length(["m1", "m22"]) == 5


def _random_schedule(rng: np.random.Generator, orderly: bool) -> dict[str, list[Any]]:
    """Schedule columns as lists. ``orderly``: items one after the other, media tiling each item
    from byte 0, every media row played, marks inside what was sent (the shortcuts' case);
    otherwise anything: interleaved items, unplayed rows, NaN times, odd marks and names."""
    n = int(rng.integers(0, 60))
    columns: dict[str, list[Any]] = {name: [] for name in SCHEDULE_COLUMNS}
    sent_at, sent_bytes = 0.0, dict.fromkeys(range(4), 0)
    item = 0
    for row in range(n):
        kind = str(rng.choice(["media", "mark", "clear", "odd"], p=[0.6, 0.3, 0.07, 0.03]))
        if orderly:
            kind = "media" if kind == "odd" else kind
            item = min(item + int(rng.random() < 0.08), 3)
        else:
            item = int(rng.integers(0, 4))
        size = int(rng.integers(1, 400)) if orderly else int(rng.integers(-2, 400))
        offset = sent_bytes[item] if orderly or rng.random() < 0.7 else int(rng.integers(0, 900))
        offset += int(orderly and rng.random() < 0.01)  # a hole in what an item sent, rarely
        if kind == "mark" and (orderly or rng.random() < 0.7):
            offset = int(rng.integers(0, max(sent_bytes[item], 1)))
            size = min(size, max(sent_bytes[item] - offset, 0)) if orderly else size
        if kind == "media":
            sent_bytes[item] = max(sent_bytes[item], offset + max(size, 0))
        sent_at += float(rng.exponential(20.0)) * (rng.random() < 0.8)
        sent = sent_at if orderly or rng.random() < 0.9 else math.nan
        arrived = sent_at + float(rng.exponential(30.0)) if rng.random() < 0.97 else math.nan
        played = size if orderly or rng.random() < 0.7 else int(rng.integers(0, max(size, 1)))
        played = max(played, 0) if kind == "media" else 0
        start = arrived + float(rng.exponential(40.0)) if played > 0 else math.nan
        name = f"m{row}.g0" if kind == "mark" else ""
        if not orderly and rng.random() < 0.1:
            name = str(rng.choice(['say "hi"', "caf\u00e9", "tab\there", "", "back\\slash"]))
        values = dict(
            kind=kind, item_id=f"item_{item}" if kind != "clear" else "", content_index=item % 2,
            offset=offset, size=size, generation=0, sent_ms=sent, arrived_ms=arrived,
            play_start_ms=start, play_end_ms=start + played / 8, played_bytes=played,
            cleared_bytes=int(rng.integers(0, 3)) * (rng.random() < 0.1),
            discarded_bytes=int(rng.integers(0, 3)) * (rng.random() < 0.1), name=name,
            echo_ms=math.nan, echo_received_ms=math.nan,
            credited_bytes=size + int(rng.integers(0, 3)) * (rng.random() < 0.2)
            if kind == "mark" and rng.random() < 0.8
            else 0,
        )  # fmt: skip
        for column, value in values.items():
            columns[column].append(value)
    return columns


def _bits(value: Any) -> Any:
    """A value compared bit for bit: floats by their bytes (so -0.0 != 0.0, NaN == NaN)."""
    if isinstance(value, float):
        return struct.pack("<d", value)
    if isinstance(value, list):
        return [_bits(v) for v in value]
    return (type(value), value)


def _assert_same_metrics(got: Metrics, expected: Metrics) -> None:
    for field in dataclasses.fields(Metrics):
        assert _bits(getattr(got, field.name)) == _bits(getattr(expected, field.name)), field.name


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # NaN times
@settings(max_examples=500, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), orderly=st.booleans(),
       form=st.sampled_from(["lists", "arrays", "live"]), known_kinds=st.booleans(),
       origins=st.booleans(), interrupts=st.booleans())  # fmt: skip
def test_compute_equals_the_plain_computation_bit_for_bit(
    seed: int, orderly: bool, form: str, known_kinds: bool, origins: bool, interrupts: bool
) -> None:
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = _random_schedule(rng, orderly)
    if form == "live":  # a DataFrame's lists: counts as floats, NaN where a row has none
        for name in ("played_bytes", "cleared_bytes", "discarded_bytes", "credited_bytes"):
            columns[name] = [float(v) if rng.random() < 0.9 else math.nan for v in columns[name]]
        columns["name"] = [v if v or rng.random() < 0.5 else math.nan for v in columns["name"]]
    if form == "arrays":  # as the fast path gives them (names as an array, too, at times)
        for name in ("kind", "item_id"):
            columns[name] = np.array(columns[name], dtype=object)
        for name in ("content_index", "offset", "size", "played_bytes", "cleared_bytes",
                     "discarded_bytes", "credited_bytes"):  # fmt: skip
            columns[name] = np.array(columns[name], dtype=np.int64)
        for name in ("sent_ms", "arrived_ms", "play_start_ms", "play_end_ms"):
            columns[name] = np.array(columns[name], dtype=np.float64)
        if rng.random() < 0.3:
            columns["name"] = np.array(columns["name"], dtype=object)
    kwargs: dict[str, Any] = {}
    if known_kinds:
        kwargs["kind_codes"] = np.array([KIND_CODES.get(k, -1) for k in columns["kind"]])
    if origins:
        keys = sorted(set(zip(columns["item_id"], map(int, columns["content_index"]), strict=True)))
        kwargs["origins_ms"] = {k: float(rng.uniform(-5, 50)) for k in keys if rng.random() < 0.9}
    if interrupts:
        kwargs["interrupts_ms"] = np.sort(rng.uniform(0, 500, int(rng.integers(0, 3))))
    _assert_same_metrics(compute(columns, **kwargs), reference_compute(columns, **kwargs))


def test_compute_reads_a_schedule_without_play_or_credit_columns() -> None:
    columns: dict[str, Any] = _random_schedule(np.random.default_rng(3), orderly=True)
    for name in ("play_start_ms", "play_end_ms", "played_bytes", "cleared_bytes",
                 "discarded_bytes", "credited_bytes", "name"):  # fmt: skip
        del columns[name]
    _assert_same_metrics(compute(columns), reference_compute(columns))


@pytest.mark.parametrize("item_bytes", [ITEM_SHIFT - 8, ITEM_SHIFT, ITEM_SHIFT + 8])
def test_compute_equals_the_plain_computation_for_items_past_the_item_shift(
    item_bytes: int,
) -> None:
    """Items whose bytes reach past ITEM_SHIFT (their positions would overlap the next item's):
    the shortcut for marks declines, the lookup counts as before."""
    columns: dict[str, Any] = _random_schedule(np.random.default_rng(5), orderly=True)
    rows = [dict(kind="media", item_id="big", offset=0, size=item_bytes, played_bytes=item_bytes),
            dict(kind="mark", item_id="big", offset=item_bytes - 16, size=16, credited_bytes=16),
            dict(kind="media", item_id="next", offset=0, size=8, played_bytes=8),
            dict(kind="mark", item_id="next", offset=0, size=8, credited_bytes=8)]  # fmt: skip
    defaults = dict(content_index=0, generation=0, sent_ms=1.0, arrived_ms=2.0, play_start_ms=3.0,
                    cleared_bytes=0, discarded_bytes=0, name="", echo_ms=math.nan,
                    echo_received_ms=math.nan, played_bytes=0, credited_bytes=0)  # fmt: skip
    for row in rows:
        values = {**defaults, **row}
        values["play_end_ms"] = values["play_start_ms"] + values["played_bytes"] / 8
        for name in SCHEDULE_COLUMNS:
            columns[name].append(values[name])
    _assert_same_metrics(compute(columns), reference_compute(columns))


def test_wire_sizes_counts_as_the_metrics_do() -> None:
    columns = _random_schedule(np.random.default_rng(11), orderly=False)
    kinds = np.array(columns["kind"], dtype=object)
    sizes = np.array(columns["size"], dtype=np.int64)
    expected = reference_wire_bytes(kinds == "media", kinds == "mark", sizes, columns["name"])
    assert wire_sizes(columns["kind"], sizes, columns["name"]) == expected


def test_decay_powers_are_the_powers_computed_afresh() -> None:
    """The cached tail of one long array of powers gives the floats a fresh array would."""
    lengths = [*range(1, 300), 1000, 4097, 8191, 8192, 8193, 20000]
    for n in lengths:
        fresh = (1.0 - RTP_JITTER_GAIN) ** np.arange(n - 1, -1, -1, dtype=np.float64)
        assert np.array_equal(_decay_powers(n), fresh)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 12000), nans=st.booleans())
def test_rtp_jitter_equals_the_plain_computation(seed: int, n: int, nans: bool) -> None:
    rng = np.random.default_rng(seed)
    transit = rng.normal(0.0, 30.0, n)
    if nans and n:
        transit[rng.integers(0, n, 1 + n // 50)] = math.nan
    codes = np.sort(rng.integers(0, 1 + n // 500, n))
    same = codes[1:] == codes[:-1]
    expected = reference_rtp_jitter(transit, codes)
    assert struct.pack("<d", _rtp_jitter(np.diff(transit)[same])) == struct.pack("<d", expected)


def test_no_escape_test_agrees_with_json_on_every_ascii_character() -> None:
    for code in range(128):
        text = f"m{chr(code)}1"
        assert _needs_no_escape(text) == (json.dumps(text) == f'"{text}"' and text.isprintable())
    assert not _needs_no_escape("caf\u00e9")


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # NaN times
@settings(max_examples=200, deadline=None)
@given(runs=st.lists(st.lists(st.sampled_from([0.0, -0.0, 1.5, -2.0, math.nan, math.inf, 7.0]),
                              min_size=1, max_size=5), min_size=1, max_size=6),
       maximum=st.booleans())  # fmt: skip
def test_per_item_by_runs_equals_ufunc_at_bit_for_bit(
    runs: list[list[float]], maximum: bool
) -> None:
    values = np.array([v for run in runs for v in run])
    codes = np.repeat(np.arange(len(runs)), [len(run) for run in runs])
    first = np.concatenate(([0], np.cumsum([len(run) for run in runs])[:-1]))
    extreme = np.maximum if maximum else np.minimum
    expected = np.full(len(runs), -math.inf if maximum else math.inf)
    extreme.at(expected, codes, values)
    got = _per_item(extreme, values, codes, len(runs), first)
    assert got.tobytes() == expected.tobytes()


def _observed(**changes: Any) -> pd.DataFrame:
    """Two 100-byte messages of one answer as a peer saw them arrive, a clear between."""
    rows = pd.DataFrame({"kind": ["media", "clear", "media"], "item_id": ["a", "", "a"],
                         "content_index": [0, -1, 0], "offset": [0, 0, 100],
                         "size": [100, 0, 100], "generation": [0, 1, 1],
                         "arrived_ms": [0.0, 5.0, 10.0]})  # fmt: skip
    for column, (row, value) in changes.items():
        rows[column] = rows[column].astype(object)
        rows.loc[row, column] = value
    return rows


@pytest.mark.parametrize(("changes", "said"), [
    ({"arrived_ms": (2, math.nan)}, r"row 2, column 'arrived_ms': nan is not a finite time"),
    ({"arrived_ms": (2, math.inf)}, r"row 2, column 'arrived_ms': inf is not a finite time"),
    ({"arrived_ms": (2, -5.0)}, r"row 2, column 'arrived_ms': -5.0 is before the row above "
                                r"\(5.0\); rows go in the order they arrived"),
    ({"size": (0, -160)}, r"row 0, column 'size': -160 is not a whole number from 0 to"),
    ({"size": (0, 160.5)}, r"row 0, column 'size': 160.5 is not a whole number"),
    ({"size": (0, 2e9)}, r"row 0, column 'size': 2000000000.0 is not a whole number from 0 to "
                         r"2.88e\+07"),
    ({"content_index": (2, math.nan)}, r"row 2, column 'content_index': nan is not a whole"),
    ({"kind": (1, "bogus")}, r"row 1, column 'kind': 'bogus' is not one of media, mark, clear"),
])  # fmt: skip
def test_measure_refuses_an_observed_schedule_it_cannot_replay(
    changes: dict[str, tuple[int, Any]], said: str
) -> None:
    """Such rows were replayed silently (a NaN arrival conceals 20 ms under one playout and
    nothing under another) or failed deep inside (2 GB of payload for a size of 2e9)."""
    assert measure(_observed()).played_bytes == 40 + 100  # the clear at 5 ms cut the first
    with pytest.raises(ValueError, match=f"^measure: schedule {said}"):
        measure(_observed(**changes))

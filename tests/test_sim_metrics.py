"""The metrics' shortcuts give what the plain computations give, bit for bit."""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.sim.metrics import (
    PERCENTILES,
    _item_codes,
    _json_strings_length,
    _linear_percentiles,
    _played_in_ranges,
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

"""Fuzzing the reader: any bytes give a valid Trace or a TraceFormatError, nothing else."""

from __future__ import annotations

import base64
import gzip
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.traces import EVENT_FIELDS, Trace, TraceFormatError, make_header, read

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

HEADER = make_header("synthetic", "fuzz", generator={"name": "fuzz", "seed": 0})


def valid_lines() -> list[dict[str, Any]]:
    audio = base64.b64encode(b"\x01" * 40).decode()
    return [
        HEADER,
        {"t_ms": 0.0, "type": "turn_started", "response_id": "r"},
        {"t_ms": 1.0, "type": "audio", "response_id": "r", "item_id": "i", "content_index": 0,
         "audio": audio},
        {"t_ms": 2.0, "type": "transcript_delta", "response_id": "r", "item_id": "i", "delta": "x"},
        {"t_ms": 3.0, "type": "audio", "response_id": "r", "item_id": "i", "content_index": 0,
         "audio": audio},
        {"t_ms": 4.0, "type": "audio_done", "item_id": "i", "content_index": 0},
        {"t_ms": 5.0, "type": "audio_interrupted", "item_id": "i", "content_index": 0},
        {"t_ms": 6.0, "type": "turn_ended", "response_id": "r"},
    ]  # fmt: skip


def encode(lines: list[Any]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def assert_valid(trace: Trace) -> None:
    """What a caller may rely on from any trace read returns."""
    assert trace.header["labkit_trace"] == 1
    times = [event.t_ms for event in trace.events]
    assert all(math.isfinite(t) and t >= 0 for t in times)
    assert times == sorted(times)
    done: set[tuple[str, int]] = set()
    for event in trace.events:
        for name, types in EVENT_FIELDS.get(event.type, {}).items():
            if name != "audio":
                assert isinstance(event.fields[name], types)
        if event.type == "audio":
            assert event.audio and event.key not in done
        if event.type == "audio_done" and event.key is not None:
            done.add(event.key)
    for key in trace.items:
        assert trace.sizes(key).sum() == len(trace.item_audio(key))
    assert trace.audio_ms >= 0


def read_or_reject(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    for salvage in (False, True):
        try:
            trace = read(path, salvage=salvage)
        except TraceFormatError as error:
            assert str(path) in str(error)
            continue
        assert_valid(trace)


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    return tmp_path / "fuzz.jsonl"


@pytest.fixture
def packed(tmp_path: Path) -> Path:
    return tmp_path / "fuzz.jsonl.gz"


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(plain: Path, packed: Path, data: bytes) -> None:
    read_or_reject(plain, data)
    read_or_reject(packed, data)
    read_or_reject(plain, encode([HEADER]) + data)


@FUZZ
@given(st.integers(0, 10_000))
def test_truncated_anywhere(plain: Path, packed: Path, cut: int) -> None:
    text = encode(valid_lines())
    read_or_reject(plain, text[: cut % (len(text) + 1)])
    zipped = gzip.compress(text)
    read_or_reject(packed, zipped[: cut % (len(zipped) + 1)])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
field_names = st.sampled_from(["t_ms", "type", "response_id", "item_id", "content_index", "audio",
                               "delta", "labkit_trace", "audio_format", "sample_rate"])  # fmt: skip


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, 7), field_names, json_values | st.just("AQ=") | st.just(-1.0)),
        min_size=1,
        max_size=4,
    )
)
def test_fields_replaced_with_wrong_types(plain: Path, edits: list[tuple[int, str, Any]]) -> None:
    lines = valid_lines()
    for index, name, value in edits:
        lines[index][name] = value
    read_or_reject(plain, encode(lines))


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 7), field_names), min_size=1, max_size=3))
def test_fields_removed(plain: Path, removals: list[tuple[int, str]]) -> None:
    lines = valid_lines()
    for index, name in removals:
        lines[index].pop(name, None)
    read_or_reject(plain, encode(lines))


@FUZZ
@given(st.permutations(range(1, 8)), st.lists(st.floats(-10, 10), min_size=7, max_size=7))
def test_events_shuffled_and_retimed(plain: Path, order: list[int], times: list[float]) -> None:
    lines = valid_lines()
    shuffled = [lines[0], *(dict(lines[i], t_ms=t) for i, t in zip(order, times, strict=True))]
    read_or_reject(plain, encode(shuffled))


@FUZZ
@given(st.integers(0, 100_000), st.integers(0, 255), st.booleans())
def test_a_byte_flipped(plain: Path, packed: Path, where: int, value: int, zip_it: bool) -> None:
    data = gzip.compress(encode(valid_lines())) if zip_it else encode(valid_lines())
    mutated = bytearray(data)
    mutated[where % len(mutated)] = value
    read_or_reject(packed if zip_it else plain, bytes(mutated))


@FUZZ
@given(st.sampled_from(["AQ=", "A", "====", "AQ==AQ==", "AQ\n==", "\u00e9", "-_-_", ""]), st.text())
def test_bad_base64(plain: Path, bad: str, tail: str) -> None:
    lines = valid_lines()
    lines[2]["audio"] = bad + tail
    read_or_reject(plain, encode(lines))


@FUZZ
@given(st.sampled_from([b"[", b'{"a":']), st.integers(1, 50_000))
def test_deep_nesting(plain: Path, opener: bytes, depth: int) -> None:
    read_or_reject(plain, encode([HEADER]) + opener * depth + b"\n")

"""Trace format v1: every rejection the spec lists, salvage of cut files, round trips, views."""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.audio import Audio
from labkit.traces import (
    SHIPPED_DIR,
    Trace,
    TraceEvent,
    TraceFormatError,
    audio_event,
    item_event,
    make_header,
    read,
    shipped,
    turn_event,
    write,
)

HEADER = make_header("synthetic", "test trace", generator={"name": "t", "seed": 0})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def audio_line(t_ms: Any, item: str = "i1", data: bytes = b"\x01" * 160, **over: Any) -> dict:
    line = {"t_ms": t_ms, "type": "audio", "response_id": "r1", "item_id": item}
    line |= {"content_index": 0, "audio": b64(data)}
    return line | over


def good_lines() -> list[dict[str, Any]]:
    return [
        HEADER,
        {"t_ms": 0.0, "type": "turn_started", "response_id": "r1"},
        audio_line(5.0),
        audio_line(7.5, data=b"\x02" * 80),
        {
            "t_ms": 8.0,
            "type": "transcript_delta",
            "response_id": "r1",
            "item_id": "i1",
            "delta": "hi",
        },
        {"t_ms": 9.0, "type": "audio_done", "item_id": "i1", "content_index": 0},
        audio_line(10.0, item="i2", data=b"\x03" * 40),
        {"t_ms": 11.0, "type": "audio_interrupted", "item_id": "i2", "content_index": 0},
        {"t_ms": 12.0, "type": "turn_ended", "response_id": "r1"},
    ]


def write_lines(path: Path, lines: list[Any], *, end: bytes = b"\n") -> Path:
    text = b"\n".join(
        line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines
    )
    data = text + end
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def rejection(path: Path, line: int, *words: str, salvage: bool = False) -> TraceFormatError:
    with pytest.raises(TraceFormatError) as caught:
        read(path, salvage=salvage)
    message = str(caught.value)
    assert str(path) in message
    assert f"line {line}:" in message
    for word in words:
        assert word in message
    assert caught.value.line == line
    return caught.value


@pytest.fixture(params=["t.jsonl", "t.jsonl.gz"])
def path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return tmp_path / request.param


# ---- reading a good file -----------------------------------------------------------------


def test_reads_every_event_type(path: Path) -> None:
    trace = read(write_lines(path, good_lines()))
    assert [event.type for event in trace.events] == [line["type"] for line in good_lines()[1:]]
    assert trace.header == HEADER
    assert trace.cut is None
    first_audio = trace.events[1]
    assert first_audio.audio == b"\x01" * 160
    assert "audio" not in first_audio.fields
    assert (first_audio.item_id, first_audio.content_index) == ("i1", 0)
    assert first_audio.response_id == "r1"
    assert trace.events[0].item_id is None


def test_views(path: Path) -> None:
    trace = read(write_lines(path, good_lines()))
    assert trace.items == [("i1", 0), ("i2", 0)]
    np.testing.assert_array_equal(trace.arrivals_ms(("i1", 0)), [5.0, 7.5])
    np.testing.assert_array_equal(trace.sizes(("i1", 0)), [160, 80])
    np.testing.assert_array_equal(trace.offsets_ms(("i1", 0)), [0.0, 20.0])
    assert trace.sizes(("i1", 0)).dtype == np.int64
    assert trace.arrivals_ms(("i1", 0)).dtype == np.float64
    assert trace.item_audio(("i1", 0)) == b"\x01" * 160 + b"\x02" * 80
    assert trace.audio_ms == (160 + 80 + 40) / 8
    assert trace.duration_ms == 12.0
    assert trace.interrupted_items == {("i2", 0)}
    assert trace.done_items == {("i1", 0)}
    assert trace.is_synthetic
    assert trace.description == "test trace"
    assert len(list(trace.audio_events())) == 3


def test_views_are_cached_and_read_only() -> None:
    trace = Trace(HEADER, [audio_event(0, "r", "i", 0, b"\x01" * 8)])
    assert trace.arrivals_ms(("i", 0)) is trace.arrivals_ms(("i", 0))
    with pytest.raises(ValueError):
        trace.sizes(("i", 0))[0] = 5


def test_unknown_item_names_the_items() -> None:
    trace = Trace(HEADER, [audio_event(0, "r", "i", 0, b"\x01")])
    with pytest.raises(KeyError, match="'i', 0"):
        trace.arrivals_ms(("nope", 0))


def test_render_item_and_whole_trace(path: Path) -> None:
    trace = read(write_lines(path, good_lines()))
    assert isinstance(trace.render(), Audio)
    assert trace.render().duration_ms == trace.audio_ms
    assert trace.render(("i2", 0)).to_ulaw() == b"\x03" * 40


def test_unknown_event_types_are_kept(path: Path) -> None:
    lines = [*good_lines(), {"t_ms": 13.0, "type": "hologram", "beam": [1, 2]}]
    trace = read(write_lines(path, lines))
    assert trace.events[-1] == TraceEvent(13.0, "hologram", {"beam": [1, 2]})


def test_extra_header_keys_and_event_fields_are_kept(path: Path) -> None:
    lines = good_lines()
    lines[0] = {**HEADER, "site": "lab 3"}
    lines[2] = {**lines[2], "extra": 1}
    trace = read(write_lines(path, lines))
    assert trace.header["site"] == "lab 3"
    assert trace.events[1].fields["extra"] == 1


def test_turn_events_may_carry_null_response_id(path: Path) -> None:
    trace = read(
        write_lines(path, [HEADER, {"t_ms": 0, "type": "turn_started", "response_id": None}])
    )
    assert trace.events[0].response_id is None


def test_header_only_is_an_empty_trace(path: Path) -> None:
    trace = read(write_lines(path, [HEADER]))
    assert trace.events == [] and trace.items == [] and trace.duration_ms == 0.0


def test_equal_times_are_allowed(path: Path) -> None:
    trace = read(write_lines(path, [HEADER, audio_line(3.0), audio_line(3.0)]))
    assert len(trace.events) == 2


def test_last_line_without_newline_is_fine_if_whole(tmp_path: Path) -> None:
    trace = read(write_lines(tmp_path / "t.jsonl", good_lines(), end=b""))
    assert len(trace.events) == len(good_lines()) - 1


def test_missing_file_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read(tmp_path / "absent.jsonl")


# ---- every rejection the spec lists: file name and line number in the message -----------


def test_rejects_empty_file(path: Path) -> None:
    write_lines(path, [], end=b"")
    rejection(path, 1, "missing header")


def test_rejects_missing_header(path: Path) -> None:
    rejection(write_lines(path, good_lines()[1:]), 1, "labkit_trace")


def test_rejects_unknown_version(path: Path) -> None:
    rejection(write_lines(path, [{**HEADER, "labkit_trace": 2}]), 1, "version", "2")


def test_rejects_true_as_version(path: Path) -> None:
    rejection(write_lines(path, [{**HEADER, "labkit_trace": True}]), 1, "version")


def test_rejects_header_that_is_not_an_object(path: Path) -> None:
    rejection(write_lines(path, [[1, 2]]), 1, "header", "array")


def test_rejects_other_audio_format(path: Path) -> None:
    rejection(write_lines(path, [{**HEADER, "audio_format": "pcm16"}]), 1, "audio_format")


def test_rejects_other_sample_rate(path: Path) -> None:
    rejection(write_lines(path, [{**HEADER, "sample_rate": 24000}]), 1, "sample_rate")


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (b"[1, 2]", ("JSON object", "array")),
        (b'"text"', ("JSON object", "string")),
        (b"null", ("JSON object", "null")),
        (b"{not json}", ("not valid JSON",)),
        (b"", ("empty line",)),
        (b"\xff\xfe{}", ("not UTF-8",)),
        (b'{"t_ms": NaN, "type": "x"}', ("not valid JSON", "NaN")),
        (b"[" * 100000 + b"]" * 100000, ("nested too deeply",)),
    ],
)
def test_rejects_line_that_is_not_a_json_object(path: Path, bad: bytes, words: tuple[str]) -> None:
    lines = good_lines()
    write_lines(path, [*lines[:3], bad, *lines[3:]])
    rejection(path, 4, *words)


@pytest.mark.parametrize("field", ["t_ms", "type"])
def test_rejects_missing_time_or_type(path: Path, field: str) -> None:
    lines = good_lines()
    del lines[3][field]
    rejection(write_lines(path, lines), 4, f"'{field}'", "missing")


@pytest.mark.parametrize(
    ("line_index", "field"),
    [
        (1, "response_id"),
        (2, "response_id"),
        (2, "item_id"),
        (2, "content_index"),
        (2, "audio"),
        (4, "delta"),
        (5, "item_id"),
        (5, "content_index"),
        (7, "content_index"),
        (8, "response_id"),
    ],
)
def test_rejects_missing_field(path: Path, line_index: int, field: str) -> None:
    lines = good_lines()
    kind = lines[line_index]["type"]
    del lines[line_index][field]
    rejection(write_lines(path, lines), line_index + 1, f"'{field}'", "missing", kind)


@pytest.mark.parametrize(
    ("line_index", "field", "value", "expected", "got"),
    [
        (2, "content_index", "0", "an integer", "string"),
        (2, "content_index", True, "an integer", "boolean"),
        (2, "content_index", 0.0, "an integer", "number"),
        (2, "item_id", 7, "a string", "integer"),
        (2, "response_id", None, "a string", "null"),
        (2, "audio", 5, "a string", "integer"),
        (4, "delta", ["h"], "a string", "array"),
        (5, "content_index", None, "an integer", "null"),
        (1, "response_id", 3, "a string or null", "integer"),
        (3, "type", 4, "a string", "integer"),
        (3, "t_ms", "5", "a number", "string"),
        (3, "t_ms", True, "a number", "boolean"),
    ],
)
def test_rejects_wrongly_typed_field(
    path: Path, line_index: int, field: str, value: Any, expected: str, got: str
) -> None:
    lines = good_lines()
    lines[line_index][field] = value
    rejection(write_lines(path, lines), line_index + 1, f"'{field}'", expected, got)


def test_rejects_negative_content_index(path: Path) -> None:
    lines = good_lines()
    lines[2]["content_index"] = -1
    rejection(write_lines(path, lines), 3, "content_index", ">= 0")


def test_rejects_decreasing_time(path: Path) -> None:
    lines = good_lines()
    lines[3]["t_ms"] = 4.0  # the line before says 5.0
    rejection(write_lines(path, lines), 4, "t_ms", "decreases", "4.0", "5.0")


def test_rejects_negative_time(path: Path) -> None:
    lines = good_lines()
    lines[1]["t_ms"] = -0.5
    rejection(write_lines(path, lines), 2, "t_ms", ">= 0")


@pytest.mark.parametrize("raw", [b"1e400", b"-1e400", b"1" + b"0" * 400])
def test_rejects_infinite_or_huge_time(path: Path, raw: bytes) -> None:
    lines: list[Any] = good_lines()
    lines[3] = b'{"t_ms": ' + raw + b', "type": "turn_ended", "response_id": "r"}'
    rejection(write_lines(path, lines), 4, "t_ms")


@pytest.mark.parametrize("bad", ["AQ=", "AQ==AQ==x", "not base64!", "AQ\nAQ==", "\u00e9\u00e9=="])
def test_rejects_invalid_base64(path: Path, bad: str) -> None:
    lines = good_lines()
    lines[2]["audio"] = bad
    rejection(write_lines(path, lines), 3, "'audio'", "base64")


def test_rejects_empty_audio(path: Path) -> None:
    lines = good_lines()
    lines[2]["audio"] = ""
    rejection(write_lines(path, lines), 3, "'audio'", "empty")


def test_rejects_audio_after_audio_done(path: Path) -> None:
    lines = good_lines()
    lines.insert(6, audio_line(9.5))  # i1 is done at 9.0
    rejection(write_lines(path, lines), 7, "'i1'", "after its audio_done")


def test_audio_of_another_content_index_after_done_is_fine(path: Path) -> None:
    lines = good_lines()
    lines.insert(6, audio_line(9.5, content_index=1))
    assert ("i1", 1) in read(write_lines(path, lines)).items


def test_rejects_garbled_last_line_without_newline(tmp_path: Path) -> None:
    lines: list[Any] = [*good_lines(), b'{"t_ms": 13.0, "type": "au']
    path = write_lines(tmp_path / "t.jsonl", lines, end=b"")
    rejection(path, 10, "not valid JSON", "cut short")


def test_rejects_garbled_middle_line_even_with_salvage(tmp_path: Path) -> None:
    lines: list[Any] = good_lines()
    lines[3] = b'{"t_ms": 7.5, "ty'
    path = write_lines(tmp_path / "t.jsonl", lines)
    rejection(path, 4, "not valid JSON", salvage=True)


def test_rejects_bad_fields_on_last_line_even_with_salvage(tmp_path: Path) -> None:
    lines = good_lines()
    lines[-1]["response_id"] = 5  # whole JSON, wrong type: not a cut
    rejection(write_lines(tmp_path / "t.jsonl", lines, end=b""), 9, "response_id", salvage=True)


# ---- gzip cut short, corrupt gzip, salvage ---------------------------------------------


def gz_bytes(lines: list[dict[str, Any]]) -> tuple[bytes, bytes]:
    text = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    return text, gzip.compress(text)


def test_rejects_gzip_cut_short(tmp_path: Path) -> None:
    _, packed = gz_bytes(good_lines())
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(packed[:-4])  # only the trailer's length is missing: all lines decode
    error = rejection(path, 10, "gzip", "cut short")
    assert "after 9 whole lines (a recording cut short, or still being written; " in str(error)
    assert "read(path, salvage=True) keeps the whole lines" in str(error)


def test_rejects_gzip_cut_in_the_middle(tmp_path: Path) -> None:
    _, packed = gz_bytes(good_lines())
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(packed[: len(packed) // 2])
    error = rejection(path, read_cut_line(path), "cut short")
    assert error.line is not None and error.line >= 1


def read_cut_line(path: Path) -> int:
    with pytest.raises(TraceFormatError) as caught:
        read(path)
    assert caught.value.line is not None
    return caught.value.line


def test_salvage_gzip_cut_short_returns_the_whole_lines_before_it(tmp_path: Path) -> None:
    _, packed = gz_bytes(good_lines())
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(packed[:-4])
    trace = read(path, salvage=True)
    assert trace.cut is not None and str(path) in trace.cut and "line 10" in trace.cut
    assert len(trace.events) == len(good_lines()) - 1


def test_salvage_of_gzip_cut_inside_the_header_still_raises(tmp_path: Path) -> None:
    _, packed = gz_bytes(good_lines())
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(packed[:12])
    rejection(path, 1, "cut short", "header", salvage=True)


def test_rejects_corrupt_gzip(tmp_path: Path) -> None:
    _, packed = gz_bytes(good_lines())
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(packed[:-8] + bytes(8))  # wrong CRC and length
    rejection(path, 10, "corrupt gzip", salvage=True)


def test_rejects_plain_bytes_named_gz(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(json.dumps(HEADER).encode() + b"\n")
    rejection(path, 1, "corrupt gzip")


def test_reads_concatenated_gzip_members(tmp_path: Path) -> None:
    text, _ = gz_bytes(good_lines())
    half = text.index(b"\n", len(text) // 2) + 1
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(gzip.compress(text[:half]) + gzip.compress(text[half:]))
    assert read(path) == read(write_lines(tmp_path / "ref.jsonl", good_lines()))


def test_salvage_plain_garbled_last_line(tmp_path: Path) -> None:
    lines: list[Any] = [*good_lines(), b'{"t_ms": 13.0, "type": "au']
    path = write_lines(tmp_path / "t.jsonl", lines, end=b"")
    trace = read(path, salvage=True)
    assert trace.cut is not None and "line 10" in trace.cut and str(path) in trace.cut
    assert trace == read(write_lines(tmp_path / "whole.jsonl", good_lines()))


def test_salvage_of_a_whole_file_reports_no_cut(path: Path) -> None:
    assert read(write_lines(path, good_lines()), salvage=True).cut is None


# ---- writing -------------------------------------------------------------------------------


def sample_trace() -> Trace:
    return Trace(
        make_header("recorded", "d\u00e9mo", recorder={"sdk": "0.24.0"}, extra=[1]),
        [
            turn_event("turn_started", 0, "r1"),
            audio_event(1, "r1", "i1", 0, bytes(range(256))),
            TraceEvent(
                2.25, "transcript_delta", {"delta": "h\u00e9", "item_id": "i1", "response_id": "r1"}
            ),
            item_event("audio_done", 3, "i1", 0),
            TraceEvent(4, "hologram", {"z": 1, "a": {"b": None}}),
            turn_event("turn_ended", 5, None),
        ],
    )


def test_write_then_read_round_trips(path: Path) -> None:
    trace = sample_trace()
    write(trace, path)
    assert read(path) == trace


def test_write_is_compact_ordered_and_reproducible(tmp_path: Path) -> None:
    plain = tmp_path / "t.jsonl"
    write(sample_trace(), plain)
    lines = plain.read_bytes().split(b"\n")
    assert lines[0].startswith(b'{"labkit_trace":1,"audio_format":"g711_ulaw","sample_rate":8000,')
    assert lines[2].startswith(b'{"t_ms":1.0,"type":"audio","response_id":"r1","item_id":"i1",')
    assert lines[2].endswith(b'"audio":"' + b64(bytes(range(256))).encode() + b'"}')
    assert lines[3] == (
        b'{"t_ms":2.25,"type":"transcript_delta","response_id":"r1","item_id":"i1",'
        b'"delta":"h\\u00e9"}'
    )
    assert b" " not in lines[1]


def test_gzip_output_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl.gz", tmp_path / "sub" / "b.jsonl.gz"
    second.parent.mkdir()
    write(sample_trace(), first)
    os.utime(tmp_path, (0, 0))
    write(sample_trace(), second)
    assert first.read_bytes() == second.read_bytes()
    assert gzip.decompress(first.read_bytes()) == _plain_bytes(tmp_path, sample_trace())


def _plain_bytes(tmp_path: Path, trace: Trace) -> bytes:
    write(trace, tmp_path / "plain.jsonl")
    return (tmp_path / "plain.jsonl").read_bytes()


def test_write_refuses_invalid_trace_and_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write(sample_trace(), path)
    before = path.read_bytes()
    bad = Trace(HEADER, [audio_event(5, "r", "i", 0, b"\x01")])
    bad.events.append(audio_event(4, "r", "i", 0, b"\x01"))  # after it was checked
    with pytest.raises(TraceFormatError, match=r"line 3: .t_ms. decreases"):
        write(bad, path, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]  # no temp file left


@pytest.mark.parametrize(
    "event",
    [
        audio_event(0, "r", "i", 0, b""),
        TraceEvent(0, "audio_done", {"item_id": "i"}),
        TraceEvent(float("nan"), "x"),
        TraceEvent(0, "x", {"v": float("inf")}),
        TraceEvent(0, "x", {"v": object()}),
        TraceEvent(0, "turn_started", {"response_id": "r"}, audio=b"\x01"),
    ],
)
def test_write_refuses_events_the_reader_would_refuse(tmp_path: Path, event: TraceEvent) -> None:
    trace = Trace(HEADER, [])
    trace.events.append(event)  # after it was checked: the writer checks again
    with pytest.raises(TraceFormatError, match="line 2"):
        write(trace, tmp_path / "t.jsonl")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("events", "said"), [
    ([TraceEvent(float("nan"), "x")], "line 2: 't_ms' must be finite, got nan"),
    ([audio_event(0, "r", "i", 0, b"\x01"), audio_event(float("inf"), "r", "i", 0, b"\x01")],
     "line 3: 't_ms' must be finite, got inf"),
    ([audio_event(-1, "r", "i", 0, b"\x01")], "line 2: 't_ms' must be >= 0, got -1"),
    ([audio_event(5, "r", "i", 0, b"\x01"), audio_event(4, "r", "i", 0, b"\x01")],
     "line 3: 't_ms' decreases: 4 after 5"),
    ([audio_event(0, "r", "i", "0", b"\x01")],  # type: ignore[arg-type]
     "line 2: 'audio' field 'content_index' must be an integer, got string"),
    ([audio_event(0, "r", "i", 0, b"")], "line 2: 'audio' is empty"),
    ([audio_event(0, "r", "i", 0, b"\x01"), item_event("audio_done", 1, "i", 0),
      audio_event(2, "r", "i", 0, b"\x01")], "line 4: audio for item 'i' (content_index 0) after"),
])  # fmt: skip
def test_a_trace_built_in_memory_meets_the_rules_a_file_meets(
    events: list[TraceEvent], said: str
) -> None:
    """A trace made in code went straight to the simulator unchecked: a NaN time hung the
    default link's event loop, an infinite one was dropped, a string content_index played
    nothing, and audio after its item's end played, each without a word."""
    with pytest.raises(TraceFormatError, match=re.escape(f"trace built in memory (events[0] is "
                                                         f"line 2), {said}")):  # fmt: skip
        Trace(HEADER, events)
    with pytest.raises(TypeError, match="events must be a list of TraceEvent, got tuple"):
        Trace(HEADER, tuple(events))  # type: ignore[arg-type]


def test_write_fills_the_version_fields_of_a_bare_header(tmp_path: Path) -> None:
    write(Trace({"source": "synthetic", "description": "x"}, []), tmp_path / "t.jsonl")
    assert read(tmp_path / "t.jsonl").header["labkit_trace"] == 1


def test_write_never_replaces_a_file_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write(sample_trace(), path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="not overwriting"):
        write(Trace(HEADER, []), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.jsonl"]
    write(Trace(HEADER, []), path, overwrite=True)
    assert read(path).events == []


def test_write_replaces_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.jsonl.gz"
    write(sample_trace(), path)
    before = path.read_bytes()

    def fail(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        write(Trace(HEADER, []), path, overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.jsonl.gz"]


texts = st.text(max_size=8)
events = st.one_of(
    st.builds(
        lambda r, i, c, d: ("audio", {"response_id": r, "item_id": i, "content_index": c}, d),
        texts,
        st.sampled_from(["a", "b"]),
        st.integers(0, 2),
        st.binary(min_size=1, max_size=50),
    ),
    st.builds(lambda r: ("turn_started", {"response_id": r}, b""), st.none() | texts),
    st.builds(
        lambda r, i, d: ("transcript_delta", {"response_id": r, "item_id": i, "delta": d}, b""),
        texts,
        texts,
        texts,
    ),
    st.builds(
        lambda i, c: ("audio_interrupted", {"item_id": i, "content_index": c}, b""),
        st.sampled_from(["a", "b"]),
        st.integers(0, 2),
    ),
    st.builds(
        lambda k, v: (k, {"v": v}, b""),
        st.sampled_from(["x_new", "other"]),
        st.integers() | texts | st.lists(st.booleans(), max_size=3),
    ),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1e7, allow_nan=False), events), max_size=25),
    st.sampled_from(["t.jsonl", "t.jsonl.gz"]),
)
def test_any_valid_trace_round_trips(
    tmp_path_factory: pytest.TempPathFactory, timed: list[tuple[float, Any]], name: str
) -> None:
    timed.sort(key=lambda pair: pair[0])
    trace = Trace(HEADER, [TraceEvent(t, kind, f, a) for t, (kind, f, a) in timed])
    path = tmp_path_factory.mktemp("rt") / name
    write(trace, path)
    back = read(path)
    assert back == trace
    assert back.audio_ms == sum(len(a) for _, (_, _, a) in timed) / 8


# ---- shipped traces ------------------------------------------------------------------------


def test_shipped_lists_and_finds_traces() -> None:
    listed = shipped()
    assert listed == sorted(listed)
    if not listed:
        pytest.skip("no shipped traces yet")
    first = listed[0]
    stem = first.name.removesuffix(".jsonl.gz").removesuffix(".jsonl")
    assert shipped(stem) == first
    assert shipped(first.name) == first
    assert first.parent == SHIPPED_DIR


def test_every_shipped_trace_reads() -> None:
    for path in shipped():
        trace = read(path)
        assert trace.cut is None and trace.items


def test_unknown_shipped_name_lists_what_exists() -> None:
    with pytest.raises(FileNotFoundError) as caught:
        shipped("no_such_trace")
    assert str(SHIPPED_DIR) in str(caught.value)
    for path in shipped():
        assert path.name.split(".")[0] in str(caught.value)


def _refusal_without_blocking(read_it: Callable[[Path], object], fifo: Path) -> str:
    """What ``read_it(fifo)`` raises; fails the test if it blocks opening the pipe."""
    raised: list[BaseException] = []

    def attempt() -> None:
        try:
            read_it(fifo)
        except BaseException as error:  # handed to the test
            raised.append(error)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # blocked in open(): a writer releases it
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
        pytest.fail(f"{read_it} blocked opening a pipe")
    assert len(raised) == 1 and isinstance(raised[0], TraceFormatError), raised
    return str(raised[0])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_or_a_directory_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    from labkit.traces.reader import read_lines

    fifo = tmp_path / "pipe.jsonl.gz"
    os.mkfifo(fifo)
    said = f"{fifo}: not a regular file (a directory, pipe or device)"
    assert _refusal_without_blocking(read, fifo) == said
    assert _refusal_without_blocking(lambda path: list(read_lines(path)), fifo) == said
    with pytest.raises(TraceFormatError, match="not a regular file"):
        read(tmp_path)

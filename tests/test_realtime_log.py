"""``labkit import``: a raw Realtime WebSocket log (JSON lines of server events) as a v1 trace.

GA and beta event names, both timestamp keys, interruptions by the SDK's own rule, pcm16 turned
into mu-law, and every bad line refused with the file, the line and the field.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labkit.audio import ulaw_decode
from labkit.cli import main as cli_main
from labkit.traces import TraceFormatError, import_log, read
from labkit.traces.realtime_log import SERVER_EVENT_NAMES, UlawConverter, log_line


def delta(item: str, data: bytes, *, names: str = "ga", response: str = "r1") -> dict[str, Any]:
    return {
        "type": SERVER_EVENT_NAMES[names]["audio"],
        "event_id": "e",
        "response_id": response,
        "item_id": item,
        "output_index": 0,
        "content_index": 0,
        "delta": base64.b64encode(data).decode(),
    }


def done(item: str, *, names: str = "ga") -> dict[str, Any]:
    return {
        "type": SERVER_EVENT_NAMES[names]["audio_done"],
        "response_id": "r1",
        "item_id": item,
        "output_index": 0,
        "content_index": 0,
    }


def response(kind: str, rid: str | None = "r1") -> dict[str, Any]:
    return {"type": f"response.{kind}", "event_id": "e", "response": {"id": rid}}


def speech_started() -> dict[str, Any]:
    return {"type": "input_audio_buffer.speech_started", "audio_start_ms": 10, "item_id": "u1"}


def session(event_type: str, fmt: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "session": {"type": "realtime", "audio": {"output": {"format": fmt}}},
    }


def write_log(path: Path, lines: list[Any]) -> Path:
    text = "".join(line if isinstance(line, str) else json.dumps(line) + "\n" for line in lines)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("names", ["ga", "beta"])
def test_a_conversation_becomes_the_trace_the_sdk_would_have_recorded(
    tmp_path: Path, names: str
) -> None:
    transcript = {
        "type": SERVER_EVENT_NAMES[names]["transcript_delta"],
        "response_id": "r1",
        "item_id": "i1",
        "output_index": 0,
        "content_index": 0,
        "delta": "Hello",
    }
    events = [
        session("session.created", {"type": "audio/pcmu"}),
        response("created"),
        transcript,
        delta("i1", b"\x01" * 40, names=names),
        {"type": "response.output_item.added", "item": {}},
        delta("i1", b"\x02" * 120, names=names),
        done("i1", names=names),
        response("done"),
        {"type": "rate_limits.updated", "rate_limits": []},
    ]
    lines = [log_line(10.0 * n, event) for n, event in enumerate(events)]
    imported = import_log(write_log(tmp_path / "call.jsonl.gz", lines))
    trace = imported.trace
    assert [e.type for e in trace.events] == [
        "turn_started",
        "transcript_delta",
        "audio",
        "audio",
        "audio_done",
        "turn_ended",
    ]
    assert [e.t_ms for e in trace.events] == [10.0, 20.0, 30.0, 50.0, 60.0, 70.0]
    assert trace.item_audio(("i1", 0)) == b"\x01" * 40 + b"\x02" * 120
    assert trace.events[1].fields == {"response_id": "r1", "item_id": "i1", "delta": "Hello"}
    assert (
        trace.source == "recorded" and trace.header["recorder"]["imported_from"] == "call.jsonl.gz"
    )
    assert imported.dialects == {names}
    assert imported.skipped == {
        "session.created": 1,
        "response.output_item.added": 1,
        "rate_limits.updated": 1,
    }


def test_speech_started_interrupts_the_item_that_spoke_last_once(tmp_path: Path) -> None:
    lines = [
        {"t_ms": 0, "event": speech_started()},  # nothing spoke yet: nothing to interrupt
        {"t_ms": 1, "event": delta("i1", b"\x01" * 8)},
        {"t_ms": 2, "event": delta("i2", b"\x02" * 8, response="r2")},
        {"t_ms": 3, "event": speech_started()},
        {"t_ms": 4, "event": speech_started()},  # the SDK's tracker forgot i2 at the first one
    ]
    trace = import_log(write_log(tmp_path / "log.jsonl", lines)).trace
    interrupted = [e for e in trace.events if e.type == "audio_interrupted"]
    assert [(e.t_ms, e.key) for e in interrupted] == [(3.0, ("i2", 0))]


def test_received_at_seconds_count_from_the_first_line_and_client_lines_are_skipped(
    tmp_path: Path,
) -> None:
    lines = [
        {"received_at": 1700000000.5, "event": response("created")},
        {"received_at": 1700000000.9, "direction": "client", "event": {"type": "response.cancel"}},
        {"received_at": 1700000001.0, "direction": "server", "event": delta("i1", b"\x05")},
        "\n",  # blank lines are allowed
    ]
    trace = import_log(write_log(tmp_path / "log.jsonl", lines)).trace
    assert [(e.type, e.t_ms) for e in trace.events] == [("turn_started", 0.0), ("audio", 500.0)]


def test_pcm16_sessions_become_mulaw_at_8k_without_drift(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    pcm = (rng.normal(0, 3000, 24000) // 1).astype("<i2")  # one second at 24 kHz
    cuts = [0, 4801, 9600, 9601, 16000, 24000]  # odd sizes: samples split across deltas
    raw = pcm.tobytes()
    events = [session("session.created", {"type": "audio/pcm", "rate": 24000})]
    events += [delta("i1", raw[2 * a : 2 * b]) for a, b in itertools.pairwise(cuts)]
    imported = import_log(
        write_log(tmp_path / "pcm.jsonl", [{"t_ms": n, "event": e} for n, e in enumerate(events)])
    )
    audio = imported.trace.item_audio(("i1", 0))
    assert imported.audio_format == "pcm16" and len(audio) == 8000  # 1 s of mu-law
    expected = pcm.reshape(-1, 3).astype(np.int32).mean(axis=1)
    assert np.abs(ulaw_decode(audio) - expected).max() < 0.04 * 32768  # mu-law's own precision
    # each delta ends where its 24 kHz samples end at 8 kHz (the remainder carried: no drift);
    # the one-sample delta makes no whole 8 kHz sample: it is carried, not an empty event
    sizes = [len(e.audio) for e in imported.trace.audio_events()]
    assert np.cumsum(sizes).tolist() == [1600, 3200, 5333, 8000]
    assert imported.skipped["empty audio delta"] == 1


def test_beta_session_formats_are_read_too(tmp_path: Path) -> None:
    beta = {"type": "session.updated", "session": {"output_audio_format": "g711_alaw"}}
    path = write_log(
        tmp_path / "alaw.jsonl",
        [{"t_ms": 0, "event": beta}, {"t_ms": 1, "event": delta("i1", b"\x01")}],
    )
    with pytest.raises(TraceFormatError, match=r"alaw.jsonl, line 1: 'event.session': .*g711_alaw"):
        import_log(path)


@pytest.mark.parametrize("rate", [16000, "24000", None])
def test_pcm_at_another_rate_is_refused_by_line_not_converted_as_24k(
        tmp_path: Path, rate: object) -> None:  # fmt: skip
    """Converted as 24 kHz, 16 kHz audio came out 1.5x too fast and its media time wrong."""
    path = write_log(tmp_path / "pcm16k.jsonl", [
        {"t_ms": 0, "event": session("session.created", {"type": "audio/pcm", "rate": rate})},
        {"t_ms": 1, "event": delta("i1", b"\x01\x00" * 6)},
    ])  # fmt: skip
    with pytest.raises(TraceFormatError,
                       match=r"pcm16k.jsonl, line 1: 'event.session': .*audio/pcm at .* Hz"):
        import_log(path)


BAD_LINES = [
    ("{nope", "not a JSON line"),
    ("[1, 2]", "expected a JSON object, got array"),
    ('{"event": {"type": "response.created", "response": {}}}', "missing field 't_ms'"),
    ('{"t_ms": "5", "event": {}}', "field 't_ms' must be a finite number, got string"),
    ('{"t_ms": -1, "event": {}}', "field 't_ms' must be >= 0"),
    ('{"t_ms": 1' + "0" * 400 + ', "event": {}}', "field 't_ms' is not a finite time"),
    ('{"t_ms": NaN, "event": {}}', "field 't_ms' is not a finite time"),
    ('{"t_ms": 5, "received_at": 9, "event": {}}', "by 't_ms' alone"),
    ('{"t_ms": 5}', "field 'event' must be a JSON object, got missing"),
    ('{"t_ms": 5, "direction": "sideways", "event": {}}', "field 'direction'"),
    ('{"t_ms": 5, "event": {"no": "type"}}', "missing field 'event.type'"),
    ('{"t_ms": 5, "event": {"type": "response.created"}}', "missing field 'event.response'"),
    (
        '{"t_ms": 5, "event": {"type": "response.done", "response": {"id": 7}}}',
        "field 'event.response.id' must be a string, got integer",
    ),
    (
        '{"t_ms": 5, "event": {"type": "response.output_audio.delta", "item_id": "i"}}',
        "missing field 'event.content_index'",
    ),
    (
        '{"t_ms": 5, "event": {"type": "response.audio.delta", "item_id": "i", '
        '"content_index": -1}}',
        "'event.content_index' must be >= 0",
    ),
    (
        '{"t_ms": 5, "event": {"type": "response.audio.delta", "item_id": "i", "content_index": 0, '
        '"response_id": "r", "delta": "***"}}',
        "field 'event.delta' is not valid base64",
    ),
    (
        '{"t_ms": 5, "event": {"type": "response.output_audio_transcript.delta", "item_id": "i", '
        '"response_id": "r", "delta": 3}}',
        "field 'event.delta' must be a string, got integer",
    ),
]


@pytest.mark.parametrize(("line", "reason"), BAD_LINES)
def test_a_bad_line_is_refused_with_the_file_the_line_and_the_field(
    tmp_path: Path, line: str, reason: str
) -> None:
    good = log_line(1.0, response("created"))
    path = write_log(tmp_path / "bad.jsonl", [good, line + "\n"])
    with pytest.raises(TraceFormatError) as refused:
        import_log(path)
    assert (refused.value.path, refused.value.line) == (str(path), 2)
    assert reason in refused.value.reason


def test_time_going_back_and_audio_after_done_are_refused(tmp_path: Path) -> None:
    back = write_log(
        tmp_path / "back.jsonl",
        [{"t_ms": 9, "event": response("created")}, {"t_ms": 3, "event": response("done")}],
    )
    with pytest.raises(TraceFormatError, match=r"back.jsonl, line 2: field 't_ms' goes back"):
        import_log(back)
    late = write_log(
        tmp_path / "late.jsonl",
        [
            {"t_ms": 1, "event": delta("i1", b"\x01")},
            {"t_ms": 2, "event": done("i1")},
            {"t_ms": 3, "event": delta("i1", b"\x02")},
        ],
    )
    with pytest.raises(TraceFormatError, match=r"late.jsonl, line 3: audio for item 'i1'"):
        import_log(late)
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(log_line(0, response("created")).encode())[:-6])
    with pytest.raises(TraceFormatError, match=r"cut.jsonl.gz, line 2: gzip stream cut short"):
        import_log(cut)


def test_the_ulaw_converter_refuses_what_it_cannot_convert() -> None:
    with pytest.raises(ValueError, match="g711_alaw"):
        UlawConverter("g711_alaw")
    assert UlawConverter().convert(("i", 0), b"\x01\x02") == b"\x01\x02"


# ---------------------------------------------------------------------- the command


def test_labkit_import_writes_the_trace_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write_log(
        tmp_path / "call.jsonl",
        [
            log_line(0, response("created")),
            log_line(5, delta("i1", b"\x07" * 16)),
            log_line(6, {"type": "error", "error": {}}),
        ],
    )
    out = tmp_path / "out" / "call.jsonl.gz"
    assert cli_main(["import", str(log), "-o", str(out), "--description", "mine"]) == 0
    trace = read(out)
    assert trace.description == "mine" and trace.item_audio(("i1", 0)) == b"\x07" * 16
    printed = capsys.readouterr().out
    assert "ga event names" in printed and "error x1" in printed
    before = out.read_bytes()
    with pytest.raises(SystemExit, match="exists; not overwriting"):
        cli_main(["import", str(log), "-o", str(out)])
    assert out.read_bytes() == before
    assert cli_main(["import", str(log), "-o", str(out), "--force"]) == 0


def test_labkit_import_names_the_bad_line_and_writes_nothing(tmp_path: Path) -> None:
    log = write_log(tmp_path / "bad.jsonl", [log_line(0, response("created")), "{oops\n"])
    out = tmp_path / "bad.jsonl.gz"
    with pytest.raises(SystemExit, match=r"bad.jsonl, line 2: not a JSON line"):
        cli_main(["import", str(log), "-o", str(out)])
    assert not out.exists()
    empty = write_log(tmp_path / "empty.jsonl", [log_line(0, {"type": "session.created"})])
    with pytest.raises(SystemExit, match="no event a trace keeps"):
        cli_main(["import", str(empty), "-o", str(out)])
    with pytest.raises(SystemExit, match=r"missing\.jsonl: no such file"):
        cli_main(["import", str(tmp_path / "missing.jsonl"), "-o", str(out)])


CALL_LINES = [log_line(0, response("created")), log_line(5, delta("i1", b"\x07" * 16)),
              log_line(9, delta("i1", b"\x08" * 16))]  # fmt: skip


def test_a_gzip_log_cut_short_is_refused_then_salvaged_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    whole = gzip.compress("".join(CALL_LINES).encode())
    log = tmp_path / "cut.jsonl.gz"
    log.write_bytes(whole[:-6])  # the logger died before the gzip trailer: every line decodes
    out = tmp_path / "cut.trace.jsonl.gz"
    with pytest.raises(SystemExit, match=r"cut.jsonl.gz, line 4: gzip stream cut short "
                                         r".*\(--salvage keeps the whole lines\)"):
        cli_main(["import", str(log), "-o", str(out)])
    assert not out.exists()
    assert cli_main(["import", str(log), "-o", str(out), "--salvage"]) == 0
    assert "salvaged: " in capsys.readouterr().out
    trace = read(out)
    assert trace.item_audio(("i1", 0)) == b"\x07" * 16 + b"\x08" * 16
    assert "line 4: gzip stream cut short" in trace.header["recorder"]["salvaged"]


def test_a_log_whose_last_line_is_cut_keeps_the_lines_before_it(tmp_path: Path) -> None:
    text = "".join(CALL_LINES)
    log = tmp_path / "cut.jsonl"
    log.write_text(text + CALL_LINES[-1][:25])  # a full disk mid-line
    with pytest.raises(TraceFormatError, match=r"cut.jsonl, line 4: not a JSON line"):
        import_log(log)
    salvaged = import_log(log, salvage=True)
    assert salvaged.cut == f"{log}, line 4: last line cut short"
    assert salvaged.trace.item_audio(("i1", 0)) == b"\x07" * 16 + b"\x08" * 16
    whole = import_log(write_log(tmp_path / "whole.jsonl", CALL_LINES), salvage=True)
    assert whole.cut is None and "salvaged" not in whole.trace.header["recorder"]


def test_salvage_keeps_refusing_a_bad_line_in_the_middle(tmp_path: Path) -> None:
    log = write_log(tmp_path / "bad.jsonl", [CALL_LINES[0], "{oops\n", CALL_LINES[1]])
    with pytest.raises(TraceFormatError, match=r"bad.jsonl, line 2: not a JSON line"):
        import_log(log, salvage=True)

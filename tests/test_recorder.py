"""TraceRecorder: real SDK model events in, a valid v1 trace out, even after a kill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.traces import TraceFormatError, TraceRecorder, read, write

model_events = pytest.importorskip("agents.realtime.model_events")

RECORDER_INFO = {"sdk": "openai-agents 0.24.0", "model": "gpt-realtime", "date": "2025-01-01"}


class FakeClock:
    """Seconds, advanced by hand: no wall clock in tests."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def a_conversation() -> list[object]:
    return [
        model_events.RealtimeModelTurnStartedEvent(response_id="r1"),
        model_events.RealtimeModelAudioEvent(
            data=b"\x01" * 160, response_id="r1", item_id="i1", content_index=0
        ),
        model_events.RealtimeModelTranscriptDeltaEvent(item_id="i1", delta="hel", response_id="r1"),
        model_events.RealtimeModelConnectionStatusEvent(status="connected"),  # not in a trace
        model_events.RealtimeModelAudioEvent(
            data=b"\x02" * 80, response_id="r1", item_id="i1", content_index=0
        ),
        model_events.RealtimeModelAudioDoneEvent(item_id="i1", content_index=0),
        model_events.RealtimeModelAudioInterruptedEvent(item_id="i1", content_index=0),
        model_events.RealtimeModelTurnEndedEvent(),  # response_id defaults to None
    ]


def record_all(path: Path, clock: FakeClock, events: list[object]) -> TraceRecorder:
    recorder = TraceRecorder(path, description="a test call", recorder=RECORDER_INFO, clock=clock)
    for step, event in enumerate(events):
        clock.now_s = 100.0 + step * 0.010
        recorder.record(event)
    return recorder


@pytest.mark.parametrize("name", ["call.jsonl", "call.jsonl.gz"])
def test_records_sdk_events_as_a_trace(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with record_all(path, FakeClock(), a_conversation()):
        pass
    trace = read(path)
    assert trace.header["source"] == "recorded"
    assert trace.header["recorder"] == RECORDER_INFO
    assert trace.description == "a test call"
    assert not trace.is_synthetic
    types = [event.type for event in trace.events]
    assert types == [
        "turn_started",
        "audio",
        "transcript_delta",
        "audio",
        "audio_done",
        "audio_interrupted",
        "turn_ended",
    ]
    assert [event.t_ms for event in trace.events] == pytest.approx([0, 10, 20, 40, 50, 60, 70])
    assert trace.item_audio(("i1", 0)) == b"\x01" * 160 + b"\x02" * 80
    assert trace.events[2].fields == {"response_id": "r1", "item_id": "i1", "delta": "hel"}
    assert trace.events[-1].response_id is None
    assert trace.interrupted_items == {("i1", 0)}


def test_unwraps_session_raw_model_events(tmp_path: Path) -> None:
    events = pytest.importorskip("agents.realtime.events")
    inner = model_events.RealtimeModelAudioEvent(
        data=b"\x05" * 8, response_id="r", item_id="i", content_index=0
    )
    wrapped = events.RealtimeRawModelEvent(data=inner, info=None)
    with TraceRecorder(tmp_path / "t.jsonl", description="", recorder={}) as recorder:
        assert recorder.record(wrapped) is not None
    assert read(tmp_path / "t.jsonl").item_audio(("i", 0)) == b"\x05" * 8


def test_time_never_goes_back(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "t.jsonl"
    turn = model_events.RealtimeModelTurnStartedEvent(response_id="r")
    with TraceRecorder(path, description="", recorder={}, clock=clock) as recorder:
        clock.now_s += 0.5
        recorder.record(turn)
        clock.now_s -= 0.2  # a clock that steps back must not make an unreadable trace
        recorder.record(turn)
        recorder.record(turn, t_ms=100.0)  # an explicit earlier time is clamped too
        recorder.record(turn, t_ms=900.0)
    assert [event.t_ms for event in read(path).events] == pytest.approx([500, 500, 500, 900])


def test_events_that_would_break_the_trace_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with TraceRecorder(path, description="", recorder={}, clock=FakeClock()) as recorder:
        done = model_events.RealtimeModelAudioDoneEvent(item_id="i", content_index=0)
        late = model_events.RealtimeModelAudioEvent(
            data=b"\x01", response_id="r", item_id="i", content_index=0
        )
        empty = model_events.RealtimeModelAudioEvent(
            data=b"", response_id="r", item_id="j", content_index=0
        )
        recorder.record(done)
        assert recorder.record(late) is None
        assert recorder.record(empty) is None
    assert len(recorder.skipped) == 2
    assert "after its audio_done" in recorder.skipped[0]
    assert [event.type for event in read(path).events] == ["audio_done"]


def test_each_line_reaches_the_file_before_close(tmp_path: Path) -> None:
    for name in ("t.jsonl", "t.jsonl.gz"):
        path = tmp_path / name
        recorder = record_all(path, FakeClock(), a_conversation()[:3])
        trace = read(path, salvage=True)  # no close: a .gz stream is still open
        assert [event.type for event in trace.events] == [
            "turn_started",
            "audio",
            "transcript_delta",
        ]
        recorder.close()


def test_killed_recorder_leaves_a_salvageable_file(tmp_path: Path) -> None:
    path = tmp_path / "killed.jsonl"
    record_all(path, FakeClock(), a_conversation())  # never closed, as after a kill
    with path.open("ab") as raw:
        raw.write(b'{"t_ms":80.0,"type":"audio","response_id":"r1","item_')  # half a line
    with pytest.raises(TraceFormatError, match=r"line 9:.*cut short"):
        read(path)
    trace = read(path, salvage=True)
    assert trace.cut is not None and "line 9" in trace.cut and str(path) in trace.cut
    assert len(trace.events) == 7
    assert trace.item_audio(("i1", 0)) == b"\x01" * 160 + b"\x02" * 80


def test_killed_gzip_recorder_loses_at_most_the_line_being_written(tmp_path: Path) -> None:
    path = tmp_path / "killed.jsonl.gz"
    # Never closed, as after a kill: kept alive so the finaliser cannot write the gzip trailer.
    alive = record_all(path, FakeClock(), a_conversation())
    with pytest.raises(TraceFormatError, match="cut short"):
        read(path)
    trace = read(path, salvage=True)
    assert trace.cut is not None and "line 9" in trace.cut
    assert len(trace.events) == 7
    assert not alive.closed
    alive.close()  # not left to the collector, which may close the file before the gzip stream


def test_closed_recording_rewrites_identically(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    record_all(path, FakeClock(), a_conversation()).close()
    write(read(path), tmp_path / "copy.jsonl")
    assert (tmp_path / "copy.jsonl").read_bytes() == path.read_bytes()


@pytest.mark.parametrize("secret", ["api_key", "OPENAI_API_KEY", "auth_token", "password"])
def test_refuses_secrets_in_recorder_info(tmp_path: Path, secret: str) -> None:
    with pytest.raises(ValueError, match=secret):
        TraceRecorder(tmp_path / "t.jsonl", description="", recorder={secret: "sk-..."})
    assert not (tmp_path / "t.jsonl").exists()


def test_header_is_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with TraceRecorder(path, description="d", recorder=RECORDER_INFO):
        header = json.loads(path.read_text().splitlines()[0])
    assert header["labkit_trace"] == 1 and header["source"] == "recorded"


def test_a_header_that_cannot_be_written_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "call.jsonl.gz"
    with pytest.raises(TraceFormatError, match=r"line 1: cannot be written as JSON"):
        TraceRecorder(path, description="a call", recorder={"latency_ms": float("nan")})
    assert not path.exists()  # the name stays free for the next try; no empty trace is left


def test_an_event_missing_a_field_or_of_the_wrong_type_is_skipped_and_recording_goes_on(
    tmp_path: Path,
) -> None:
    """An event the SDK never makes (no response_id, str audio, a time that is no number)
    raised out of record(), so record_session stopped for the rest of the call; int audio
    was written as that many zero bytes."""
    from types import SimpleNamespace

    path = tmp_path / "t.jsonl"
    good = model_events.RealtimeModelAudioEvent(
        data=b"\x01" * 8, response_id="r", item_id="i", content_index=0)  # fmt: skip
    with TraceRecorder(path, description="", recorder={}, clock=FakeClock()) as recorder:
        assert recorder.record(SimpleNamespace(type="transcript_delta", item_id="i")) is None
        assert recorder.record(SimpleNamespace(type="audio", data=5, response_id="r",
                                               item_id="i", content_index=0)) is None  # fmt: skip
        assert recorder.record(good, t_ms="abc") is None  # type: ignore[arg-type]
        assert recorder.record(good) is not None
    assert [reason.split(":")[0] for reason in recorder.skipped] == [
        "transcript_delta", "audio", "audio"]  # fmt: skip
    assert "audio data must be bytes, got int" in recorder.skipped[1]
    assert [(event.type, event.audio) for event in read(path).events] == [("audio", b"\x01" * 8)]

"""Recording failures never disturb a call: a full disk, a header that cannot be written, events a
trace cannot hold. Each is logged (once, or the first few then a count), recording stops or goes
on, and the call (a live ``TwilioHandler`` call, or a user's ``record_session`` loop) goes on to
its normal end. A full disk is simulated portably: the recorder's file is opened on a ``FullDisk``
(a real file that takes ``room`` more bytes, then writes are cut short and fail with ENOSPC, as
the kernel does).
"""

from __future__ import annotations

import asyncio
import base64
import errno
import io
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from agents.realtime.events import RealtimeEventInfo, RealtimeRawModelEvent
from agents.realtime.model_events import (
    RealtimeModelAudioDoneEvent,
    RealtimeModelAudioEvent,
    RealtimeModelTranscriptDeltaEvent,
    RealtimeModelTurnStartedEvent,
)
from agents.run_context import RunContextWrapper
from test_handler import SID, FakeTwilio, speech_trace, start, trace_audio

from labkit import traces
from labkit.live.handler import TwilioHandler
from labkit.live.models import ModelChoice
from labkit.live.peer import TwilioPeer
from labkit.live.recording import CallRecordings
from labkit.live.replay_model import TraceReplayModel
from labkit.live.server import serve_in_background
from labkit.live.settings import CallSettings, ServerSettings
from labkit.traces import TraceEvent, TraceFormatError, TraceRecorder, read, record_session
from labkit.traces import recorder as recorder_module

pytestmark = pytest.mark.anyio
SPEED = 10.0
NO_SPACE = "No space left on device"
SKIPS_LOGGED = 10  # skips logged one by one per recording, the rest counted


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---------------------------------------------------------------------- a full disk


class FullDisk(io.FileIO):
    """A new file with ``room`` bytes left on its disk (None: unlimited until ``fill()``)."""

    def __init__(self, path: Path, room: int | None) -> None:
        super().__init__(path, "xb")
        self.room = room
        self.on_full: Callable[[], None] | None = None  # runs at the first failing write

    def fill(self) -> None:
        self.room = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self.room is not None and self.room <= 0:
            if self.on_full is not None:
                on_full, self.on_full = self.on_full, None
                on_full()
            raise OSError(errno.ENOSPC, NO_SPACE)
        size = len(view) if self.room is None else min(len(view), self.room)
        written = super().write(view[:size]) or 0
        if self.room is not None:
            self.room -= written
        return written


class Disks:
    """Opens every new file under ``directory`` (mode ``xb``, as recorders do) on a FullDisk:
    ``rooms`` gives each file in turn its room (the last one for the rest)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
        self.directory = directory
        self.rooms: list[int | None] = [None]
        self.select: Callable[[Path], bool] = lambda path: True
        self.disks: list[FullDisk] = []
        self.files: list[io.BufferedWriter] = []
        original = Path.open

        def open_on_full_disk(path: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if mode != "xb" or path.parent != self.directory or not self.select(path):
                return original(path, mode, *args, **kwargs)
            n = len(self.disks)
            disk = FullDisk(path, self.rooms[min(n, len(self.rooms) - 1)])
            self.disks.append(disk)
            self.files.append(io.BufferedWriter(disk))
            return self.files[-1]

        monkeypatch.setattr(Path, "open", open_on_full_disk)


@pytest.fixture
def disks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Disks:
    return Disks(monkeypatch, tmp_path / "recorded")


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def audio_model_event(data: bytes, item: str = "i", index: int = 0) -> RealtimeModelAudioEvent:
    return RealtimeModelAudioEvent(data=data, response_id="r", item_id=item, content_index=index)


# ---------------------------------------------------------------------- TraceRecorder


@pytest.mark.parametrize("name", ["call.jsonl", "call.jsonl.gz"])
def test_a_failed_write_stops_the_recorder_at_once_keeping_what_was_written(
    disks: Disks, name: str
) -> None:
    """Closing after a failed write wrote the gzip trailer after a line that never reached the
    disk whole (or raised the failure again); the recorder stayed open for more writes."""
    disks.directory.mkdir()
    disks.rooms = [600]
    path = disks.directory / name
    recorder = TraceRecorder(path, description="", recorder={})
    recorded = 0
    with pytest.raises(OSError, match=NO_SPACE):
        for k in range(1000):
            recorder.record(audio_model_event(bytes([k % 256]) * 40 + os.urandom(40)), t_ms=k)
            recorded += 1
    assert recorder.closed and recorder.failure is not None and NO_SPACE in recorder.failure
    size = path.stat().st_size
    recorder.close()  # nothing more to do: never raises again
    recorder.abandon()
    assert path.stat().st_size == size <= 600, "nothing written after the failure"
    assert disks.files[0].closed
    salvaged = read(path, salvage=True)
    # the failing line may have reached the disk whole, only the gzip flush marker after it not
    assert 1 <= len(salvaged.events) <= recorded + 1
    assert [e.t_ms for e in salvaged.events] == list(range(len(salvaged.events)))


@pytest.mark.parametrize("name", ["call.jsonl", "call.jsonl.gz"])
def test_a_header_that_fails_to_write_leaves_no_file_and_no_open_handle(
    disks: Disks, name: str
) -> None:
    disks.directory.mkdir()
    disks.rooms = [5]
    path = disks.directory / name
    with pytest.raises(OSError, match=NO_SPACE) as raised:
        TraceRecorder(path, description="", recorder={})
    assert raised.value.filename == str(path)  # the caller learns which file
    assert not path.exists()
    assert disks.files[0].closed


async def test_a_call_whose_header_cannot_be_written_is_unrecorded_and_leaves_no_file(
    disks: Disks, caplog: pytest.LogCaptureFixture
) -> None:
    disks.rooms = [5]
    recordings = CallRecordings(disks.directory, None, ModelChoice(ServerSettings()))
    assert await recordings.open(SID) is None
    assert list(disks.directory.iterdir()) == []  # no 5-byte unreadable trace
    (line,) = errors(caplog)
    assert "not recorded" in line and NO_SPACE in line and str(disks.directory) in line


# ---------------------------------------------------------------------- live calls


def call_settings(tmp_path: Path, record_dir: Path) -> ServerSettings:
    source = tmp_path / "speech.jsonl.gz"
    if not source.exists():
        traces.write(speech_trace(), source)
    return ServerSettings(
        call=CallSettings(), replay_trace=source, replay_speed=SPEED, openai_api_key=None,
        record_dir=record_dir,
    )  # fmt: skip


async def run_call(
    socket: FakeTwilio, settings: ServerSettings, models: ModelChoice | None = None
) -> TwilioHandler:
    handler = TwilioHandler(socket, settings, models=models)  # type: ignore[arg-type]
    await asyncio.wait_for(handler.run(), timeout=10)
    return handler


def assert_call_ended_normally(socket: FakeTwilio, handler: TwilioHandler) -> None:
    assert handler.stats.failure is None
    assert socket.close_code == 1000  # the model's stream ended and the handler hung up
    assert socket.media_bytes() == trace_audio(speech_trace())  # every byte reached the caller


async def test_a_full_disk_mid_call_stops_the_recording_not_the_call(
    tmp_path: Path, disks: Disks, caplog: pytest.LogCaptureFixture
) -> None:
    """The write's OSError ended the call (1011), then close() raised again in run()'s finally."""
    disks.rooms = [700]
    socket = FakeTwilio()
    socket.text(start())
    handler = await run_call(socket, call_settings(tmp_path, disks.directory))
    assert_call_ended_normally(socket, handler)
    (path,) = disks.directory.iterdir()
    (line,) = errors(caplog)  # logged once
    assert str(path) in line and NO_SPACE in line and "the call goes on" in line
    assert handler.stats.recording_failure is not None
    assert NO_SPACE in handler.stats.recording_failure
    assert disks.files[0].closed
    salvaged = read(path, salvage=True)
    assert 1 <= len(salvaged.events) < len(speech_trace().events)
    assert salvaged.events[0].type == "turn_started"


class FillsOnClose(FakeTwilio):
    """The disk fills when the handler hangs up: only the recording's last writes fail."""

    def __init__(self, disks: Disks) -> None:
        super().__init__()
        self.disks = disks

    async def close(self, code: int = 1000) -> None:
        for disk in self.disks.disks:
            disk.fill()
        await super().close(code)


async def test_a_full_disk_as_the_recording_closes_is_logged_never_raised(
    tmp_path: Path, disks: Disks, caplog: pytest.LogCaptureFixture
) -> None:
    socket = FillsOnClose(disks)
    socket.text(start())
    handler = await run_call(socket, call_settings(tmp_path, disks.directory))
    assert_call_ended_normally(socket, handler)
    (path,) = disks.directory.iterdir()
    (line,) = errors(caplog)
    assert str(path) in line and NO_SPACE in line
    assert handler.stats.recording_failure is not None
    assert disks.files[0].closed
    with pytest.raises(TraceFormatError, match="cut short"):
        read(path)  # no gzip trailer...
    salvaged = read(path, salvage=True)  # ...but every event was on disk
    assert [e.type for e in salvaged.events] == [e.type for e in speech_trace().events]


async def test_one_calls_full_disk_leaves_a_call_beside_it_whole(
    tmp_path: Path, disks: Disks, caplog: pytest.LogCaptureFixture
) -> None:
    """The real server, two calls at once; one call's trace file is on a full disk."""
    full_sid = "MZfull0000000000000000000000000001"
    healthy_sid = "MZfine0000000000000000000000000002"
    disks.rooms = [700]
    disks.select = lambda path: full_sid in path.name
    settings = call_settings(tmp_path, disks.directory)
    async with serve_in_background(settings) as server:
        peers = [TwilioPeer(server.ws_url, speed=SPEED, stream_sid=s) for s in (full_sid,
                 healthy_sid)]  # fmt: skip
        recordings = await asyncio.wait_for(asyncio.gather(*(p.run() for p in peers)), 20)
        finished = list(server.app.state.finished_calls)
    for recording in recordings:
        assert recording.closed_by == "server"
        assert recording.received_audio() == trace_audio(speech_trace())
    assert len(finished) == 2 and all(h.stats.failure is None for h in finished)
    stats = {h.stream_sid: h.stats for h in finished}
    assert stats[full_sid].recording_failure is not None
    assert stats[healthy_sid].recording_failure is None
    (full_path,) = disks.directory.glob(f"*{full_sid}*")
    (healthy_path,) = disks.directory.glob(f"*{healthy_sid}*")
    assert read(full_path, salvage=True).events
    healthy = read(healthy_path)  # whole and strictly readable
    assert [e.audio for e in healthy.events] == [e.audio for e in speech_trace().events]
    assert [line for line in errors(caplog) if full_sid in line] != []
    assert not [r for r in caplog.records if r.exc_info], "no traceback: nothing escaped"


class BadEventsReplay(TraceReplayModel):
    """The replay, plus after every turn_started an audio_done the trace cannot hold
    (content_index -1, for an item never played)."""

    async def _deliver(self, event: TraceEvent) -> None:
        await super()._deliver(event)
        if event.type == "turn_started":
            await self._emit(RealtimeModelAudioDoneEvent(item_id="ghost", content_index=-1))


async def test_events_the_recording_skips_are_logged_and_counted_in_the_calls_stats(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = call_settings(tmp_path, tmp_path / "recorded")
    models = ModelChoice(settings)
    models.new_model = lambda: BadEventsReplay(speech_trace(), speed=SPEED)  # type: ignore[method-assign]
    socket = FakeTwilio()
    socket.text(start())
    handler = await run_call(socket, settings, models)
    assert_call_ended_normally(socket, handler)
    assert handler.stats.recording_skipped == 2
    assert handler.stats.as_json()["recording_skipped"] == 2
    assert handler.stats.recording_failure is None
    skips = [r.getMessage() for r in caplog.records if "skipped one" in r.getMessage()]
    assert len(skips) == 2 and all("audio_done" in s and "content_index" in s for s in skips)
    (path,) = (tmp_path / "recorded").iterdir()
    assert content(read(path).events) == content(speech_trace().events)


def content(events: list[TraceEvent]) -> list[tuple[str, dict[str, Any], bytes]]:
    return [(event.type, event.fields, event.audio) for event in events]


# ---------------------------------------------------------------------- record_session


def raw(data: Any) -> RealtimeRawModelEvent:
    return RealtimeRawModelEvent(data=data, info=RealtimeEventInfo(context=RunContextWrapper(None)))


async def events_of(events: list[Any]) -> AsyncIterator[Any]:
    for event in events:
        yield event


def a_session() -> list[Any]:
    return [
        raw(RealtimeModelTurnStartedEvent(response_id="r")),
        raw(audio_model_event(b"\x00\x01" * 480)),
        raw(RealtimeModelAudioDoneEvent(item_id="i", content_index=0)),
    ]


async def test_record_session_goes_on_unrecorded_when_the_header_cannot_be_written(
    disks: Disks, caplog: pytest.LogCaptureFixture
) -> None:
    """record_session() raised OSError: the app saw no event; a 5-byte file and an open handle
    were left behind."""
    disks.rooms = [5]
    events = a_session()
    recording = record_session(events_of(events), disks.directory)
    passed = [event async for event in recording]
    assert passed == events
    assert recording.failure is not None and NO_SPACE in recording.failure
    assert list(disks.directory.iterdir()) == []
    assert disks.files[0].closed
    (line,) = errors(caplog)
    assert str(recording.path) in line and NO_SPACE in line and "the call goes on" in line
    recording.close()  # still harmless


async def test_record_session_never_removes_a_file_it_did_not_create(
    disks: Disks, tmp_path: Path
) -> None:
    disks.rooms = [5]
    out = disks.directory / "mine.jsonl.gz"
    disks.directory.mkdir()
    precious = tmp_path / "precious"

    def put_another_file_in_its_place() -> None:
        precious.write_bytes(b"precious")
        os.replace(precious, out)

    original_init = FullDisk.__init__

    def init(self: FullDisk, path: Path, room: int | None) -> None:
        original_init(self, path, room)
        self.on_full = put_another_file_in_its_place

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FullDisk, "__init__", init)
        events = a_session()
        passed = [event async for event in record_session(events_of(events), out)]
    assert passed == events
    assert out.read_bytes() == b"precious"


async def test_record_session_keeps_what_reached_a_full_disk(
    disks: Disks, caplog: pytest.LogCaptureFixture
) -> None:
    disks.rooms = [700]
    events = [raw(RealtimeModelTurnStartedEvent(response_id="r"))] + [
        raw(audio_model_event(os.urandom(160))) for _ in range(40)
    ]
    recording = record_session(events_of(events), disks.directory)
    passed = [event async for event in recording]
    assert passed == events
    assert len(errors(caplog)) == 1
    assert disks.files[0].closed
    salvaged = read(recording.path, salvage=True)
    assert 2 <= len(salvaged.events) < len(events)


async def test_events_record_session_skips_are_logged_without_their_audio(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The three were left out of the trace with no word: only an undocumented list held them."""
    caplog.set_level(logging.WARNING)
    payload = bytes(range(256)) * 4
    bad = [
        raw(audio_model_event(payload)),  # after its item's audio_done
        raw(RealtimeModelTranscriptDeltaEvent(item_id="i", delta=None, response_id="r")),  # type: ignore[arg-type]
        raw(audio_model_event(payload, item="j", index=-1)),
    ]
    events = [*a_session(), *bad, raw(RealtimeModelTurnStartedEvent(response_id="r2"))]
    out = tmp_path / "skips.jsonl.gz"
    recording = record_session(events_of(events), out)
    passed = [event async for event in recording]
    assert passed == events
    assert recording.failure is None and recording.skipped_count == 3
    skips = [r for r in caplog.records if "skipped one" in r.getMessage()]
    assert [r.levelno for r in skips] == [logging.WARNING] * 3
    lines = [r.getMessage() for r in skips]
    assert "audio event" in lines[0] and "after its audio_done" in lines[0] and str(out) in lines[0]
    assert "transcript_delta event" in lines[1] and "'delta'" in lines[1]
    assert "audio event" in lines[2] and "content_index" in lines[2]
    text = caplog.text
    converted = base64.b64encode(payload[:16]).decode()[:12]
    assert "\\x00\\x01" not in text and converted not in text and len(text) < 2000
    assert [e.type for e in read(out).events] == ["turn_started", "audio", "audio_done",
                                                  "turn_started"]  # fmt: skip


async def test_many_skips_log_the_first_few_then_a_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    assert getattr(recorder_module, "SKIPS_LOGGED", None) == SKIPS_LOGGED
    bad = [raw(audio_model_event(b"\x00\x01" * 10, index=-1)) for _ in range(SKIPS_LOGGED + 15)]
    recording = record_session(events_of(bad), tmp_path / "many.jsonl.gz")
    assert len([event async for event in recording]) == len(bad)
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if "skipped one" in line]) == SKIPS_LOGGED
    assert lines[-1].endswith("15 more events skipped (25 in all)")
    assert recording.skipped_count == SKIPS_LOGGED + 15
    assert recording.recorder is not None and len(recording.recorder.skipped) == SKIPS_LOGGED

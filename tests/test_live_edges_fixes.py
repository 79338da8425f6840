"""Edges of the live server, the loopback call, the Realtime emulator and ``labkit import``, each
found by a hunt and fixed: a record directory that changes while it is counted, a ``--speed`` the
loopback comparison cannot use, trace limits the emulator ignored, a ``--public-url`` Twilio
cannot call (or that carries a password), a log whose ``received_at`` differences overflow, a log
cut mid-line, an output name that is no trace, and the banners and help of ``serve``/``emulate``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from test_handler import FakeTwilio, start
from test_realtime_log import CALL_LINES, write_log
from test_recording_failures import assert_call_ended_normally, call_settings, run_call

from labkit import traces
from labkit.cli import main
from labkit.cli.serve import instructions
from labkit.live import recording as recording_module
from labkit.live.call import MAX_CALL_SPEED, loopback_call
from labkit.live.models import ModelChoice
from labkit.live.peer import PeerRecording
from labkit.live.realtime_emulator import RealtimeEmulator
from labkit.live.realtime_emulator import serving as serving_module
from labkit.live.recording import CallRecordings
from labkit.live.settings import ServerSettings, check_public_url
from labkit.traces import TraceFormatError, TraceLimits, read, shipped
from labkit.traces.reader import StreamCutShort
from labkit.traces.realtime_log import import_log

pytestmark = pytest.mark.anyio
PASSWORD = "secretpw"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---------------------------------------------------------------------- 1: the record directory


def files_vanishing_after_the_listing(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """``os.scandir`` of ``directory`` lists its files, then they are removed before each is
    stat'ed: an operator freeing space (as the server's own log line asks) while a call starts."""
    real_scandir = os.scandir

    def scandir_then_remove(path: Any) -> Any:
        entries = list(real_scandir(path))
        if Path(path) == directory:
            for entry in entries:
                os.unlink(entry.path)
        return iter(entries)

    monkeypatch.setattr(recording_module.os, "scandir", scandir_then_remove)


def test_a_file_removed_while_the_directory_is_counted_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "recorded"
    directory.mkdir()
    for n in range(3):
        (directory / f"old-{n}.jsonl.gz").write_bytes(b"x" * 10)
    recordings = CallRecordings(directory, 10**9, ModelChoice(ServerSettings()))
    files_vanishing_after_the_listing(monkeypatch, directory)
    assert recordings.used_bytes() == 0  # FileNotFoundError from entry.stat() escaped


async def test_a_call_starting_as_files_are_removed_is_recorded_and_ends_normally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count's OSError reached the handler's bridge: the call ended with close 1011."""
    directory = tmp_path / "recorded"
    directory.mkdir()
    (directory / "old.jsonl.gz").write_bytes(b"x" * 10)
    files_vanishing_after_the_listing(monkeypatch, directory)
    socket = FakeTwilio()
    socket.text(start())
    handler = await run_call(socket, call_settings(tmp_path, directory))
    assert_call_ended_normally(socket, handler)
    (recorded,) = directory.iterdir()  # the old file is gone, the call's own trace is there
    assert read(recorded).events


async def test_a_record_directory_that_cannot_be_counted_leaves_the_call_unrecorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The directory replaced by a file: os.scandir raises NotADirectoryError (no
    FileNotFoundError), which ended every call starting then."""
    directory = tmp_path / "recorded"
    directory.write_text("not a directory")
    socket = FakeTwilio()
    socket.text(start())
    handler = await run_call(socket, call_settings(tmp_path, directory))
    assert_call_ended_normally(socket, handler)
    counted = [r.getMessage() for r in caplog.records if "cannot be counted" in r.getMessage()]
    assert len(counted) == 1 and str(directory) in counted[0] and "not recorded" in counted[0]
    assert directory.read_text() == "not a directory"


# ---------------------------------------------------------------------- 2: labkit call --speed


def test_labkit_call_refuses_a_speed_it_cannot_compare_at_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--speed 10000 ran the call, then the comparison's constant link refused the measured
    delay (media ms = real ms x speed): a ValueError traceback."""
    with pytest.raises(SystemExit) as refused:
        main(["call", "--trace", "tiny_deltas", "--speed", "10000"])
    assert refused.value.code == 2
    said = str(refused.value)
    assert said.startswith("labkit call: --speed: ") and f"at most {MAX_CALL_SPEED:g}" in said
    assert "10000" in said and "\n" not in said
    assert capsys.readouterr().out == ""  # refused before any call ran


async def test_loopback_call_refuses_a_speed_over_its_bound_before_any_server_starts() -> None:
    with pytest.raises(ValueError, match=f"at most {MAX_CALL_SPEED:g}"):
        await loopback_call(shipped("tiny_deltas"), "forward", 50, speed=MAX_CALL_SPEED * 10)


def test_a_loopback_delay_no_link_models_fails_the_call_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A machine stalled as the peer pinged: the delay is over the simulator's links' bound."""
    monkeypatch.setattr(PeerRecording, "one_way_delay_ms", property(lambda self: 700_000.0))
    assert main(["call", "--trace", "tiny_deltas", "--speed", "8"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("labkit call: loopback call: the measured loopback delay")
    assert "try a lower speed" in err


# ---------------------------------------------------------------------- 3: trace limits


async def test_serve_with_the_emulator_reads_the_trace_within_the_settings_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The emulator re-read the replay trace with the default limits, whatever the flags said."""
    announced: list[Any] = []

    async def no_server(self: Any) -> None:
        return None

    monkeypatch.setattr(serving_module.uvicorn.Server, "serve", no_server)
    whole = ServerSettings(replay_trace=shipped("tiny_deltas"))
    await serving_module.serve_with_emulator(whole, "127.0.0.1", 0, announce=announced.append)
    assert len(announced) == 1
    tight = ServerSettings(replay_trace=shipped("tiny_deltas"),
                           trace_limits=TraceLimits(max_line_bytes=64))  # fmt: skip
    with pytest.raises(TraceFormatError, match="--max-line-mib"):
        await serving_module.serve_with_emulator(tight, "127.0.0.1", 0)


def test_labkit_emulate_takes_the_trace_limit_flags() -> None:
    with pytest.raises(SystemExit) as refused:
        main(["emulate", "tiny_deltas", "--max-line-mib", "0.0001"])
    assert refused.value.code == 2
    said = str(refused.value)
    assert said.startswith("labkit emulate: ") and "line over the limit" in said
    with pytest.raises(SystemExit) as refused:
        main(["emulate", "tiny_deltas", "--max-trace-mib", "0.0001"])
    assert "--max-trace-mib" in str(refused.value)


# ---------------------------------------------------------------------- 4: --public-url


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("https://", "must name a valid host"),
        ("https://exa mple.com", "no spaces"),
        ("https://:8443", "must name a valid host"),
        ("https://-x-.example", "must name a valid host"),
        ("https://a..example", "must name a valid host"),
        ("https://x.example:99999", "Port out of range"),
        ("https://x.example:port", "Port could not be cast"),
        ("https://x.example:0", "a port in 1..65535"),
        ("https://[::1", "Invalid IPv6 URL"),
        ("https://x.example/?a=1", "no query or fragment"),
        ("https://x.example/#top", "no query or fragment"),
        (f"https://user:{PASSWORD}@x.example", "user name or password"),
        (f"user:{PASSWORD}@x.example", "user name or password"),
    ],
)
def test_a_public_url_twilio_cannot_call_is_refused_at_startup(url: str, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        ServerSettings(public_url=url)
    with pytest.raises(SystemExit) as refused:
        main(["serve", "--public-url", url])
    assert refused.value.code == 2
    message = str(refused.value)
    assert message.startswith("labkit serve: --public-url ")
    assert said in message and "\n" not in message
    assert PASSWORD not in message  # never echoed back


@pytest.mark.parametrize("url", ["https://abc.ngrok.app", "http://127.0.0.1:8765/",
                                 "https://x.example:8443/prefix", "https://[::1]:8443"])
def test_a_public_url_with_a_host_port_and_path_is_taken(url: str) -> None:
    assert check_public_url("--public-url", url) == url
    assert ServerSettings(public_url=url).public_url == url


# ---------------------------------------------------------------------- 5, 6, 7: labkit import


def test_received_at_differences_that_overflow_name_the_log_line_and_field(tmp_path: Path) -> None:
    """(1.7e308 - 1) s in ms is inf: the refusal named "trace built in memory", no file."""
    lines = [{"received_at": 1.0, "event": {"type": "response.created",
                                            "response": {"id": "r1"}}},
             {"received_at": 1.7e308, "event": {"type": "response.done",
                                                "response": {"id": "r1"}}}]  # fmt: skip
    log = write_log(tmp_path / "far.jsonl", lines)
    with pytest.raises(TraceFormatError) as refused:
        import_log(log)
    assert refused.value.path == str(log) and refused.value.line == 2
    assert "'received_at'" in refused.value.reason
    with pytest.raises(SystemExit, match=rf"labkit import: {log}, line 2: field 'received_at'"):
        main(["import", str(log), "-o", str(tmp_path / "out.jsonl.gz")])


def test_a_plain_log_cut_mid_line_is_refused_as_cut_short_with_the_salvage_hint(
    tmp_path: Path,
) -> None:
    """``head -c`` of a log: refused as "not a JSON line (Unterminated string ...)", no hint."""
    log = tmp_path / "cut.jsonl"
    log.write_text("".join(CALL_LINES) + CALL_LINES[-1][:25])
    with pytest.raises(StreamCutShort, match=r"cut.jsonl, line 4: not a JSON line .*cut short"):
        import_log(log)
    out = tmp_path / "out.jsonl.gz"
    with pytest.raises(SystemExit) as refused:
        main(["import", str(log), "-o", str(out)])
    said = str(refused.value)
    assert "line 4" in said and "cut short" in said and "--salvage" in said
    assert not out.exists()
    assert main(["import", str(log), "-o", str(out), "--salvage"]) == 0


def test_a_bad_last_line_with_its_newline_is_not_called_cut_short(tmp_path: Path) -> None:
    log = write_log(tmp_path / "bad.jsonl", [*CALL_LINES, "{oops\n"])
    with pytest.raises(TraceFormatError) as refused:
        import_log(log)
    assert not isinstance(refused.value, StreamCutShort) and "cut short" not in str(refused.value)


@pytest.mark.parametrize("name", ["out.txt", "out.gz", "out.jsonl.zip", "out"])
def test_labkit_import_refuses_an_output_name_that_is_no_trace(name: str, tmp_path: Path) -> None:
    log = write_log(tmp_path / "log.jsonl", CALL_LINES)
    with pytest.raises(SystemExit) as refused:
        main(["import", str(log), "-o", str(tmp_path / name)])
    assert refused.value.code == 2
    said = str(refused.value)
    assert said.startswith("labkit import: -o/--out must name") and ".jsonl.gz" in said
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz"])
def test_labkit_import_writes_either_trace_name(name: str, tmp_path: Path) -> None:
    log = write_log(tmp_path / "log.jsonl", CALL_LINES)
    assert main(["import", str(log), "-o", str(tmp_path / name)]) == 0
    assert read(tmp_path / name).events


# ---------------------------------------------------------------------- 8: banners and help


async def test_the_emulator_announces_itself_once_through_the_commands_banner(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``labkit emulate`` printed its banner, and the emulator logged the same line at INFO."""
    caplog.set_level(logging.INFO)
    async with RealtimeEmulator(traces.read(shipped("tiny_deltas"))):
        await asyncio.sleep(0)
    announced = [r for r in caplog.records if "Realtime emulator on" in r.getMessage()]
    assert all(r.levelno < logging.INFO for r in announced)


def test_the_serve_banner_shows_settings_as_names_and_values_without_secrets() -> None:
    settings = ServerSettings.from_env({"OPENAI_API_KEY": "sk-shh", "TWILIO_AUTH_TOKEN": "tw-shh",
                                        "LABKIT_STATS_TOKEN": "st-shh"})  # fmt: skip
    banner = instructions(settings, "127.0.0.1", 8765, "OpenAI Realtime")
    assert "CallSettings(" not in banner and "ServerLimits(" not in banner
    assert ("call settings: strategy=forward threshold_ms=50 mark_every_ms=100 "
            "align_frames=false") in banner  # fmt: skip
    assert ("limits: start_timeout_s=10 max_streams=256 request_timeout_s=10 "
            "max_frame_bytes=1048576 record_max_bytes=2147483648") in banner  # fmt: skip
    assert "shh" not in banner
    assert "OPENAI_API_KEY" not in banner  # a key is set: nothing replays for want of one


def test_the_serve_banner_says_it_replays_because_no_key_is_set() -> None:
    unkeyed = ServerSettings.from_env({})
    banner = instructions(unkeyed, "127.0.0.1", 8765, "trace replay")
    assert "replaying a trace because OPENAI_API_KEY is unset" in banner
    asked = ServerSettings.from_env({}, replay_trace=shipped("tiny_deltas"))
    assert "OPENAI_API_KEY" not in instructions(asked, "127.0.0.1", 8765, "trace replay")
    emulated = instructions(unkeyed, "127.0.0.1", 8765, "emulator", realtime_emulator=True)
    assert "OPENAI_API_KEY" not in emulated


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("serve", ["default 127.0.0.1", "default 8765", "default alloy", "(default 1)",
                   "default 50", "default forward", "(default 100)"]),
        ("emulate", ["(default 1)", "default 8766", "--max-line-mib", "--max-trace-mib"]),
        ("call", ["(default 100)", f"at most {MAX_CALL_SPEED:g}"]),
        ("import", ["*.jsonl.gz (gzip) or *.jsonl"]),
    ],
)
def test_flags_with_defaults_say_them_in_their_help(
    command: str, shown: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for words in shown:
        assert words in text, words

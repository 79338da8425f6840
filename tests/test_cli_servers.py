"""The commands that serve or replay (``serve``, ``emulate``, ``call``, ``lab``, ``explore``) end a
bad trace or port with one line naming it, before any server starts: never a traceback. So do all
commands with a place to write that cannot be one (``sweep --out``, ``import -o`` too)."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.cli import main

TRACE_COMMANDS = [["serve", "--replay"], ["emulate"], ["call", "--trace"]]


@pytest.mark.parametrize("command", TRACE_COMMANDS)
def test_a_trace_that_names_nothing_is_refused_with_the_shipped_names(command: list[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        main([*command, "no_such_trace"])
    said = str(refused.value)  # the refusal's line (exit code 2, as argparse's own)
    assert refused.value.code == 2
    assert said.startswith(f"labkit {command[0]}: trace 'no_such_trace' is neither a file")
    assert "tiny_deltas" in said  # what could have been meant


@pytest.mark.parametrize("command", TRACE_COMMANDS)
def test_a_bad_trace_file_is_refused_naming_file_and_line(command: list[str],
                                                          tmp_path: Path) -> None:  # fmt: skip
    bad = tmp_path / "bad.jsonl.gz"
    with gzip.open(bad, "wt") as file:
        file.write("{not json\n")
    with pytest.raises(SystemExit) as refused:
        main([*command, str(bad)])
    assert str(refused.value).startswith(f"labkit {command[0]}: {bad}, line 1: ")


@pytest.mark.parametrize("command", TRACE_COMMANDS)
def test_a_directory_is_not_one_trace(command: list[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as refused:
        main([*command, str(tmp_path)])
    assert "is a directory; give one trace" in str(refused.value)


@pytest.mark.parametrize("command", [["serve"], ["emulate", "tiny_deltas"], ["lab"], ["explore"]])
@pytest.mark.parametrize("port", ["65536", "-1", "http"])
def test_a_port_out_of_range_is_refused_by_the_command_line(
        command: list[str], port: str, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    with pytest.raises(SystemExit) as refused:
        main([*command, f"--port={port}"])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "argument --port:" in err and ("0..65535" in err or "not a port number" in err)


def test_emulate_on_a_taken_port_says_so_in_one_line() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as refused:
            main(["emulate", "tiny_deltas", f"--port={port}"])
    said = str(refused.value)
    assert said.startswith(f"labkit emulate: cannot serve on 127.0.0.1:{port}: ")
    assert "address already in use" in said and "\n" not in said


@pytest.mark.parametrize("host", ["127.0.0.1", "bad..host"])
def test_serve_where_it_cannot_listen_says_so_in_one_line_before_its_instructions(
        host: str, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """A taken port or a host no resolver takes printed the whole how-to-call-me text, then
    uvicorn's error or a UnicodeError traceback."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--replay", "tiny_deltas", "--host", host, f"--port={port}"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"labkit serve: cannot listen on {host}:{port}: ")
    assert err.count("\n") == 1


OUTPUT_DIRECTORY_FLAGS = [
    ["sweep", "tiny_deltas", "--out"],
    ["lab", "--prepare-only", "--dir"],
    ["call", "--trace", "tiny_deltas", "--record"],
    ["call", "--trace", "tiny_deltas", "--realtime-emulator", "--realtime-log"],
    ["serve", "--record"],
    ["emulate", "tiny_deltas", "--log"],
    ["synth", "speech", "--out"],
    ["synth", "traces", "--out"],
]


@pytest.mark.parametrize("command", OUTPUT_DIRECTORY_FLAGS)
@pytest.mark.parametrize("where", ["a_file", "a_file/below", "dangling/below"])
def test_a_directory_to_write_that_cannot_be_one_is_refused_before_any_work(
        command: list[str], where: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    (tmp_path / "a_file").write_text("mine")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    path = tmp_path / where
    with pytest.raises(SystemExit) as refused:
        main([*command, str(path)])  # a call or a sweep would run, then fail at its first write
    assert refused.value.code == 2
    said = capsys.readouterr().err.splitlines()[-1]
    program = " ".join(command[:2]) if command[0] == "synth" else command[0]
    assert said.startswith(f"labkit {program}: error: argument {command[-1]}: {path}")
    reason = {"a_file": "is not a directory", "a_file/below": "which is not a directory",
              "dangling/below": "is a dangling link"}[where]  # fmt: skip
    assert said.endswith(reason)
    assert (tmp_path / "a_file").read_text() == "mine" and not (tmp_path / "nowhere").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("command", OUTPUT_DIRECTORY_FLAGS)
def test_a_directory_nothing_can_be_made_in_is_refused_before_any_work(
        command: list[str], capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    # /proc admits no new entry, even to root (for whom os.access says yes)
    path = "/proc/labkit-out/below"
    with pytest.raises(SystemExit) as refused:
        main([*command, path])
    assert refused.value.code == 2
    said = capsys.readouterr().err.splitlines()[-1]
    program = " ".join(command[:2]) if command[0] == "synth" else command[0]
    assert said.startswith(f"labkit {program}: error: ")
    assert f"argument {command[-1]}: {path}: nothing can be made in /proc (" in said


def test_the_write_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    from labkit.cli.output_paths import output_directory, output_file

    (tmp_path / "made").mkdir()
    assert output_directory(str(tmp_path / "made")) == tmp_path / "made"
    assert output_directory(str(tmp_path / "new" / "deeper")) == tmp_path / "new" / "deeper"
    assert output_file(str(tmp_path / "x.jsonl.gz")) == tmp_path / "x.jsonl.gz"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["made"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_trace_to_import_where_nothing_can_be_made_is_refused(
        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    with pytest.raises(SystemExit) as refused:
        main(["import", "/proc/no-log.jsonl", "-o", "/proc/labkit.jsonl.gz"])
    assert refused.value.code == 2
    said = capsys.readouterr().err.splitlines()[-1]
    assert said.startswith("labkit import: error: argument -o/--out: /proc/labkit.jsonl.gz: "
                           "nothing can be made in /proc (")


@pytest.mark.parametrize("where, reason", [("a_dir", "is a directory; name a file"),
                                           ("a_file/x.jsonl.gz", "which is not a directory"),
                                           ("dangling.jsonl.gz", "is a dangling link")])
def test_a_trace_to_import_into_that_cannot_be_a_file_is_refused(
        where: str, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "a_file").write_text("mine")
    (tmp_path / "dangling.jsonl.gz").symlink_to(tmp_path / "nowhere")  # the write followed it
    with pytest.raises(SystemExit) as refused:
        main(["import", str(tmp_path / "log.jsonl"), "-o", str(tmp_path / where)])
    assert refused.value.code == 2
    said = capsys.readouterr().err.splitlines()[-1]
    assert said.startswith(f"labkit import: error: argument -o/--out: {tmp_path / where}")
    assert said.endswith(reason)


SPEED_AND_CALL_SETTINGS = [
    (command, flag, value, said)
    for command in (["call", "--trace", "tiny_deltas"], ["serve"], ["emulate", "tiny_deltas"])
    for flag, value, said in [
        ("--speed", "inf", "speed must be a finite number > 0, got inf"),
        ("--speed", "0", "speed must be a finite number > 0, got 0.0"),
        ("--speed", "fast", "not a number: 'fast'"),
        ("--threshold-ms", "-1", "threshold_ms must be a finite number of ms from 0 to 600000 (ten "
         "minutes of buffer, Twilio's own limit), got -1.0"),
        ("--threshold-ms", "1e12", "from 0 to 600000 (ten minutes of buffer, Twilio's own "
         "limit), got 1000000000000.0"),
        ("--threshold-ms", "nan", "not a finite number: 'nan'"),
        ("--mark-every-ms", "0", "mark_every_ms must be > 0 or 'none', got '0'"),
        ("--strategy", "nope", "unknown strategy 'nope', expected one of forward, rechunk, paced, "
         "preroll, adaptive"),
        ("--strategy", "original_report", "modelled from its code) runs in simulate and sweep, not "
         "in a call; expected one of forward, rechunk, paced, preroll, adaptive"),
    ]
    if flag == "--speed" or command[0] != "emulate"  # the emulator has no call settings
]


@pytest.mark.parametrize("command, flag, value, said", SPEED_AND_CALL_SETTINGS)
def test_a_call_setting_or_speed_a_call_would_refuse_is_refused_by_the_command_line(
        command: list[str], flag: str, value: str, said: str,
        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    # before: a call started, then its handler refused the strategy (a traceback), or the server
    # started and refused every call; an infinite speed made a call with no audio
    with pytest.raises(SystemExit) as refused:
        main([*command, f"{flag}={value}"])
    assert refused.value.code == 2
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.startswith(f"labkit {command[0]}: error: argument {flag}: ")
    assert said in line
    if flag == "--strategy":
        assert "forward" in line and "adaptive" in line  # what could have been meant


@pytest.mark.parametrize("at_ms, said", [
    ("-5", "no agent audio before -5 ms to interrupt"),
    ("nan", "at_ms must be a finite number of ms, got nan"),
    ("1e12", "the trace ends at 9296 ms, before 1e+12 ms"),  # the call would wait for it
])  # fmt: skip
def test_a_barge_in_outside_the_agents_speech_is_refused_before_the_call(
        at_ms: str, said: str) -> None:
    # a subprocess with a deadline: without the check, 1e12 ms is a call that never ends
    command = [sys.executable, "-m", "labkit", "call", "--trace", "tiny_deltas",
               f"--barge-in-at-ms={at_ms}"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""  # a refusal's code, as argparse's
    assert done.stderr == f"labkit call: --barge-in-at-ms: with_barge_in: {said}\n"


def test_a_public_url_that_twilio_cannot_call_is_refused_in_one_line() -> None:
    with pytest.raises(SystemExit) as refused:
        main(["serve", "--public-url", "abc.ngrok.app"])
    assert refused.value.code == 2
    assert str(refused.value) == ("labkit serve: --public-url must start with http:// "
                                  "or https://, got 'abc.ngrok.app'")  # fmt: skip


@pytest.mark.parametrize("command", [*OUTPUT_DIRECTORY_FLAGS, ["import", "log.jsonl", "-o"]])
def test_an_empty_path_to_write_is_refused_not_taken_for_here(
        command: list[str], capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """``--out ""`` is Path(""), the current directory: a sweep filled it unasked."""
    with pytest.raises(SystemExit) as refused:
        main([*command, ""])
    assert refused.value.code == 2
    assert "an empty path; name a" in capsys.readouterr().err.splitlines()[-1]

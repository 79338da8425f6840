"""Gzip bombs and oversized traces: refused early, with the file, the line and the cap.

The reader decompresses line by line (``labkit.traces.reader``) within ``TraceLimits``; memory is
checked with tracemalloc (allocations, not wall time), on ``labkit simulate`` where the bomb was
first seen. See notebooks/00_traces.ipynb.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import labkit.sim.sweep  # noqa: F401  imported before measuring (and the simulator with it)
from labkit.cli import main
from labkit.traces import (
    TraceFormatError,
    TraceLimits,
    import_log,
    make_header,
    read,
    reader,
    shipped,
)
from labkit.traces.limits import DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_TRACE_BYTES

MIB = 1 << 20
HEADER = json.dumps(make_header("synthetic", "bomb")).encode() + b"\n"
EVENT = b'{"t_ms":0.0,"type":"transcript_delta","response_id":"r","item_id":"i","delta":"x"}\n'
BOMB_MIB = 32  # decompressed; the old reader held all of it, then a list of every line


def gzip_of(*parts: tuple[bytes, int]) -> bytes:
    """gzip of each ``(block, repeat)`` in turn, streamed so the test never holds the bomb."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = []
    for block, repeat in parts:
        for _ in range(repeat):
            out.append(packer.compress(block))
    out.append(packer.flush())
    return b"".join(out)


def peak_bytes(run: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def simulate(path: Path, *flags: str) -> int:
    code: int = main(["simulate", str(path), "--json", *flags])
    return code


@pytest.mark.parametrize("with_header", [False, True], ids=["newlines", "header_then_newlines"])
def test_a_newline_bomb_fails_at_once_in_simulate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], with_header: bool
) -> None:
    path = tmp_path / "bomb.jsonl.gz"
    path.write_bytes(gzip_of((HEADER, int(with_header)), (b"\n" * MIB, BOMB_MIB)))
    code, peak = peak_bytes(lambda: simulate(path))
    assert code == 2
    line = 2 if with_header else 1
    assert f"{path}, line {line}: empty line" in capsys.readouterr().err
    assert peak < 4 * MIB, f"peak {peak / MIB:.1f} MiB on a {BOMB_MIB} MiB bomb"


def test_a_line_bomb_stops_at_the_line_cap_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "line.jsonl.gz"
    path.write_bytes(gzip_of((HEADER, 1), (b" " * MIB, BOMB_MIB)))
    code, peak = peak_bytes(lambda: simulate(path, "--max-line-mib", "1"))
    assert code == 2
    err = capsys.readouterr().err
    assert f"{path}, line 2: line over the limit of {MIB} bytes" in err and "max_line_bytes" in err
    assert peak < 4 * MIB, f"peak {peak / MIB:.1f} MiB"


def test_the_default_line_cap_holds_without_flags(tmp_path: Path) -> None:
    path = tmp_path / "line.jsonl.gz"
    path.write_bytes(gzip_of((HEADER, 1), (b"[" * MIB, DEFAULT_MAX_LINE_BYTES // MIB + 1)))
    with pytest.raises(TraceFormatError, match=f"line over the limit of {DEFAULT_MAX_LINE_BYTES}"):
        read(path)
    path.write_bytes(gzip_of((HEADER, 1), (b" " * MIB, DEFAULT_MAX_LINE_BYTES // MIB)))
    with pytest.raises(TraceFormatError, match="line 2: empty line"):  # at the cap: not over it
        read(path)


def test_a_bomb_of_valid_events_stops_at_the_size_cap_on_the_line_that_crossed_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.jsonl.gz"
    repeats = 2 * MIB // len(EVENT)
    path.write_bytes(gzip_of((HEADER, 1), (EVENT, repeats)))
    cap = MIB
    crossing_line = 2 + (cap - len(HEADER)) // len(EVENT)  # the line holding byte number cap + 1
    with pytest.raises(TraceFormatError) as caught:
        read(path, limits=TraceLimits(max_trace_bytes=cap))
    assert caught.value.line == crossing_line and "max_trace_bytes" in caught.value.reason
    assert f"over the limit of {cap} bytes decompressed" in caught.value.reason
    code = simulate(path, "--max-trace-mib", "1")
    assert code == 2 and f"line {crossing_line}: trace over the limit" in capsys.readouterr().err
    whole = read(path, limits=TraceLimits(max_trace_bytes=len(HEADER) + repeats * len(EVENT)))
    assert len(whole.events) == repeats  # exactly at the cap: read


def test_sweep_takes_the_limits_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(gzip_of((HEADER, 1), (EVENT, 2 * MIB // len(EVENT))))
    argv = ["sweep", str(path), "--strategy", "forward", "--thresholds", "50:50:1"]
    code = main([*argv, "--out", str(tmp_path / "out"), "--max-trace-mib", "0.5"])
    assert code == 2 and "trace over the limit of 524288 bytes" in capsys.readouterr().err


LOG_LINE = b'{"t_ms": 0, "event": {"type": "session.created"}}\n'


def test_a_realtime_log_bomb_stops_at_the_caps_in_labkit_import(tmp_path: Path) -> None:
    """The log is read as the trace is: line by line, within the same caps (it used to be
    decompressed whole into memory first)."""
    path, out = tmp_path / "log.jsonl.gz", tmp_path / "trace.jsonl.gz"
    path.write_bytes(gzip_of((LOG_LINE, 1), (b" " * MIB, BOMB_MIB)))

    def run_import() -> None:
        with pytest.raises(SystemExit, match=f"{path}, line 2: line over the limit of {MIB} by"):
            main(["import", str(path), "-o", str(out), "--max-line-mib", "1"])

    _, peak = peak_bytes(run_import)
    assert peak < 4 * MIB, f"peak {peak / MIB:.1f} MiB on a {BOMB_MIB} MiB bomb"
    path.write_bytes(gzip_of((LOG_LINE, 2 * MIB // len(LOG_LINE))))
    with pytest.raises(TraceFormatError) as caught:
        import_log(path, limits=TraceLimits(max_trace_bytes=MIB))
    crossing_line = MIB // len(LOG_LINE) + 1  # the line holding byte number MIB + 1
    assert caught.value.line == crossing_line and "max_trace_bytes" in caught.value.reason
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--max-trace-mib", "--max-line-mib"])
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "lots"])
def test_limit_flags_refuse_nonsense(flag: str, value: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["simulate", "tiny_deltas", flag, value])
    assert exited.value.code == 2


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_line_bytes"):
        TraceLimits(max_line_bytes=0)
    assert TraceLimits() == TraceLimits(DEFAULT_MAX_TRACE_BYTES, DEFAULT_MAX_LINE_BYTES)


# ---- the streaming reader agrees with itself at any piece size -------------------------------


def outcome(path: Path, salvage: bool) -> tuple[str, Any]:
    try:
        trace = read(path, salvage=salvage)
    except TraceFormatError as error:
        return "error", (error.line, error.reason)
    return "trace", (trace, trace.cut)


def awkward_files(tmp_path: Path) -> list[Path]:
    text = gzip.decompress(shipped("tiny_deltas").read_bytes())
    half = text.index(b"\n", len(text) // 2) + 1
    packed = gzip.compress(text, mtime=0)
    files = {
        "whole.jsonl.gz": packed,
        "members.jsonl.gz": gzip.compress(text[:half]) + bytes(70_000) + gzip.compress(text[half:]),
        "cut.jsonl.gz": packed[: len(packed) * 2 // 3],
        "corrupt.jsonl.gz": packed[:5000] + bytes(300) + packed[5300:],
        "plain_cut.jsonl": text[: len(text) * 2 // 3],
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return [tmp_path / name for name in files]


@pytest.mark.parametrize("piece_bytes", [1, 7, 4096])
def test_results_do_not_depend_on_how_the_file_is_cut_into_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece_bytes: int
) -> None:
    files = awkward_files(tmp_path)
    expected = {(p, s): outcome(p, s) for p in files for s in (False, True)}
    assert expected[(files[0], False)][0] == "trace"
    assert expected[(files[1], False)] == expected[(files[0], False)]
    assert expected[(files[3], True)][0] == "error"
    monkeypatch.setattr(reader, "_READ_BYTES", piece_bytes)
    monkeypatch.setattr(reader, "_PIECE_BYTES", piece_bytes)
    for (path, salvage), result in expected.items():
        assert outcome(path, salvage) == result, (path.name, salvage)

"""Loopback calls through the real server, handler and SDK session, dialled by the Twilio emulator:
every byte the model spoke reaches the caller once and in order, marks are credited exactly, and
after a barge-in the ``clear`` arrives and no audio of the cleared response follows it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from labkit.cli import main as cli_main
from labkit.live.call import CallResult, arrivals_side_by_side, loopback_call, with_barge_in
from labkit.outbound import STRATEGY_NAMES
from labkit.traces import read, shipped

pytestmark = pytest.mark.anyio
SPEED = 8.0  # fast enough for CI; timing still inside every strategy's tolerances at this speed
# echoes in flight while the handler sends clear: marks come every 100 ms of audio (25 ms of real
# time at speed 4) and a loopback trip takes about a millisecond, so one at most; two for slack
CROSSING_ECHOES_MAX = 2


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def all_item_audio(result: CallResult) -> bytes:
    return b"".join(result.trace.item_audio(key) for key in result.trace.items)


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
async def test_every_byte_arrives_once_in_order_and_marks_are_credited_exactly(
    strategy: str,
) -> None:
    result = await loopback_call(shipped("tiny_deltas"), strategy, 60, speed=SPEED)
    recording, stats = result.recording, result.handler_stats
    assert recording.closed_by == "server"  # the handler hung up once everything was heard
    assert recording.protocol_errors == []
    assert recording.received_audio() == all_item_audio(result)
    assert stats.bytes_sent == recording.media_bytes == result.measured.bytes
    # No clear: every mark echoed because its audio played, each credited once, all bytes covered.
    assert not any(echo.cleared for echo in recording.echoes)
    assert stats.marks_sent == len(recording.echoes) == stats.marks_credited
    assert stats.marks_credited_bytes == recording.media_bytes
    assert sum(len(seg[2]) for seg in recording.segments) == recording.media_bytes
    # Measured and simulated agree on what was sent (message counts of timer-driven strategies
    # depend on timing; forward's depend only on the deltas).
    assert result.measured.bytes == result.simulated.bytes
    if strategy == "forward":
        assert result.measured.mark_messages == result.simulated.mark_messages
    assert result.schedule["item_id"][result.schedule["kind"] == "media"].nunique() == len(
        result.trace.items
    )


@pytest.mark.parametrize("strategy", ["forward", "paced"])
async def test_after_barge_in_clear_arrives_and_no_cleared_audio_follows(strategy: str) -> None:
    trace = read(shipped("bursty"))
    first_item = trace.items[0]
    barge_in_ms = float(trace.arrivals_ms(first_item)[0]) + 600.0
    result = await loopback_call(
        shipped("bursty"), strategy, 50, speed=4.0, barge_in_at_ms=barge_in_ms
    )
    recording, stats = result.recording, result.handler_stats
    kinds = [a.kind for a in recording.arrivals]
    assert kinds.count("clear") == 1
    cut = kinds.index("clear")
    before = b"".join(a.payload for a in recording.arrivals[:cut] if a.kind == "media")
    after = b"".join(a.payload for a in recording.arrivals[cut:] if a.kind == "media")
    spoken = result.trace.item_audio(first_item)
    # Before the clear: a prefix of the interrupted item; after it: only the next items, whole.
    assert spoken.startswith(before)
    assert after == b"".join(result.trace.item_audio(k) for k in result.trace.items[1:])
    # Marks of cleared audio were echoed by the clear and never credited. An echo the caller
    # sent for played audio just before the clear reached it can cross the clear on the wire:
    # the handler has forgotten that generation by then, so it is not credited either (the
    # conservative side: the model truncates a little early, never at words not heard).
    cleared = [e for e in recording.echoes if e.cleared]
    played_echoes = len(recording.echoes) - len(cleared)
    assert played_echoes - CROSSING_ECHOES_MAX <= stats.marks_credited <= played_echoes
    heard = sum(len(seg[2]) for seg in recording.segments)
    assert stats.marks_credited_bytes <= heard
    assert result.measured.clear_messages == 1


def test_with_barge_in_interrupts_the_speaking_item_and_drops_its_later_audio() -> None:
    trace = read(shipped("bursty"))
    key = trace.items[0]
    at_ms = float(trace.arrivals_ms(key)[2])
    cut = with_barge_in(trace, at_ms)
    assert cut.interrupted_items == {key}
    assert all(t <= at_ms for t in cut.arrivals_ms(key))
    assert cut.items == trace.items
    with pytest.raises(ValueError, match="no agent audio"):
        with_barge_in(trace, -1.0)


async def test_unknown_options_are_refused() -> None:
    with pytest.raises(TypeError, match="frame_ms"):
        await loopback_call(shipped("bursty"), "paced", 50, frame_ms=20)


def test_cli_prints_measured_and_simulated_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(
        ["call", "--trace", "tiny_deltas", "--strategy", "rechunk", "--speed", "8", "--json"]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"measured", "simulated"}
    assert out["measured"].keys() == out["simulated"].keys()
    assert out["measured"]["bytes"] == out["simulated"]["bytes"] > 0


def test_cli_table_says_what_is_not_observed_instead_of_nan(
        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """The table printed 'nan' for the sender gaps (no caller sees send times) and '-0.00' for a
    lag that rounds to nothing, with no word of why."""
    command = ["call", "--trace", "tiny_deltas", "--strategy", "rechunk", "--speed", "8"]
    assert cli_main(command) == 0
    out = capsys.readouterr().out
    assert "nan" not in out and "-0.00" not in out
    sender_gaps = [line.split() for line in out.splitlines() if "sender_gap_" in line]
    assert len(sender_gaps) == 4 and all(row[1:] == ["-", "-"] for row in sender_gaps)
    assert "  -: not observed." in out


def test_cli_refuses_a_missing_trace(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="neither a file, a directory nor a shipped trace"):
        cli_main(["call", "--trace", str(tmp_path / "nope.jsonl.gz")])


# The replay model and the handler run on asyncio timers, each late by about a millisecond of real
# time on an idle machine; at speed S that is S ms of media time, at both ends of every gap the
# caller hears. So a measured underrun may differ from the simulated one by about
# 2 x lateness x S per gap, the lateness being at least TIMER_SLACK_MS and, on a busy machine, what
# a probe timer in the same loop measures during the call (its 95th percentile).
TIMER_SLACK_MS = 2.0
MEASURE_SPEED = 4.0
PROBE_S = 0.005


async def _late_timers_ms(lateness: list[float]) -> None:
    """Sleep PROBE_S again and again, noting how late each wake-up is (ms)."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time()
        await asyncio.sleep(PROBE_S)
        lateness.append((loop.time() - asked - PROBE_S) * 1000)


@pytest.mark.parametrize("strategy", ["forward", "rechunk"])
async def test_a_loopback_call_measures_what_the_simulator_predicts(strategy: str) -> None:
    """realtime_jitter starves Twilio's queue upstream (the model delivers near real time), so
    even an ideal loopback link has underruns: the simulator must predict them."""
    lateness: list[float] = []
    probe = asyncio.create_task(_late_timers_ms(lateness))
    try:
        result = await loopback_call(shipped("realtime_jitter"), strategy, 40, speed=MEASURE_SPEED)
    finally:
        probe.cancel()
    measured, simulated = result.measured, result.simulated
    assert simulated.concealed_ms > 0, "the trace has upstream underruns to measure"
    assert measured.media_messages == simulated.media_messages
    assert measured.messages == simulated.messages
    gaps = max(measured.concealment_events, simulated.concealment_events)
    late_ms = max(TIMER_SLACK_MS, float(np.percentile(lateness, 95)))
    tolerance_ms = 2 * late_ms * MEASURE_SPEED * (gaps + 1)
    assert abs(measured.concealed_ms - simulated.concealed_ms) <= tolerance_ms, (
        f"timers late {late_ms:.1f} ms (p95)")


def test_arrivals_are_matched_by_byte_where_live_and_simulated_cut_differently() -> None:
    import pandas as pd

    def media(rows: list[tuple[str, int, int, float]]) -> pd.DataFrame:
        return pd.DataFrame([{"kind": "media", "item_id": i, "offset": o, "size": n,
                              "arrived_ms": a} for i, o, n, a in rows])  # fmt: skip

    simulated = media([("a", 0, 400, 50.0), ("a", 400, 400, 100.0), ("b", 0, 160, 300.0)])
    measured = media([("a", 0, 390, 60.0), ("a", 390, 410, 125.0), ("b", 0, 160, 310.0),
                      ("c", 0, 8, 400.0)])  # fmt: skip
    table = arrivals_side_by_side(measured, simulated)
    # byte 390 of "a" went out in the simulation's first message (bytes 0-399)
    assert table["simulated_ms"].tolist()[:3] == [50.0, 50.0, 300.0]
    assert table["difference_ms"].tolist()[:3] == [10.0, 75.0, 10.0]
    assert pd.isna(table["simulated_ms"].iloc[3])  # never simulated: no match
    assert table["media_s"].tolist() == [0.0, 390 / 8000, 800 / 8000, 960 / 8000]


async def test_a_loopback_call_lands_no_byte_before_the_simulator_says() -> None:
    result = await loopback_call(shipped("tiny_deltas"), "rechunk", 50, speed=MEASURE_SPEED)
    arrivals = result.arrivals()
    assert len(arrivals) == result.measured.media_messages
    assert arrivals["difference_ms"].notna().all()
    assert (arrivals["difference_ms"] > -1.0).all()


async def test_a_call_the_server_could_not_carry_is_an_error_not_a_measurement(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A call ended by an error on the server (here: the strategy cannot be built) was reported
    as measured: 0 bytes against the simulation's thousands, and exit code 0."""
    from labkit.live import handler

    def broken(call: object) -> object:
        raise RuntimeError("no strategy today")

    monkeypatch.setattr(handler, "build_strategy", broken)
    with pytest.raises(RuntimeError, match="the server's call ended by RuntimeError: no strategy"):
        await loopback_call(shipped("tiny_deltas"), "forward", 0, speed=SPEED)

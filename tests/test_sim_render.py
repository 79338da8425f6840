"""What the caller hears: the rendered timeline, its concealment, and the score of a run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labkit import plots
from labkit.audio import ulaw_decode
from labkit.cli import main
from labkit.sim import simulate
from labkit.sim.render import mos_lqo, render_caller
from labkit.traces import Trace, audio_event, item_event, make_header, read, shipped

SPEECH = Path(shipped("tiny_deltas")).parents[1] / "audio" / "how_can_i_help.ulaw"


def one_answer(gap_at_ms: float | None, gap_ms: float = 60.0, delta_bytes: int = 160) -> Trace:
    """The phrase delivered at exactly real time in ``delta_bytes`` deltas, late by ``gap_ms``
    from ``gap_at_ms`` on: a FIFO queue with no cushion runs dry there for ``gap_ms``."""
    phrase = SPEECH.read_bytes()
    events = []
    for offset in range(0, len(phrase), delta_bytes):
        at = 100.0 + offset / 8
        if gap_at_ms is not None and offset / 8 >= gap_at_ms:
            at += gap_ms
        events.append(audio_event(at, "r", "i", 0, phrase[offset : offset + delta_bytes]))
    events.append(item_event("audio_done", events[-1].t_ms, "i", 0))
    return Trace(make_header("synthetic", "one answer, one late delta"), events)


def test_silence_rendering_is_the_played_bytes_with_the_gap_empty() -> None:
    run = simulate(one_answer(500.0), "forward", link="ideal")
    heard = render_caller(run, "silence")
    (answer,) = heard.answers
    phrase = ulaw_decode(SPEECH.read_bytes())
    assert np.array_equal(answer.reference, phrase), "the reference is the answer's own audio"
    assert answer.inserted == [(4000, 4480)], "60 ms late at 500 ms: 480 samples inserted"
    assert heard.erasures == [(answer.start + 4000, answer.start + 4480)]
    assert not heard.samples[answer.start + 4000 : answer.start + 4480].any()
    degraded = np.delete(answer.degraded, np.s_[4000:4480])
    assert np.array_equal(degraded, answer.reference), "degraded = reference + the gap, exactly"


def loudest_frame_ms() -> float:
    """Where 20 ms frames of the phrase are loudest (after its first 100 ms): voiced speech."""
    pcm = ulaw_decode(SPEECH.read_bytes()).astype(float)
    energy = [np.abs(pcm[k : k + 160]).mean() for k in range(800, len(pcm) - 160, 160)]
    return (800 + 160 * int(np.argmax(energy))) / 8


def test_plc_fills_the_gap_from_the_speech_before_it() -> None:
    run = simulate(one_answer(loudest_frame_ms()), "forward", link="ideal")
    plc, silent = render_caller(run, "plc"), render_caller(run, "silence")
    start, end = plc.erasures[0]
    filled = plc.samples[start : start + 80].astype(float)
    assert np.abs(filled).mean() > 100, "the first 10 ms repeat the voice at full level"
    assert not silent.samples[start:end].any()
    outside = np.ones(len(plc.samples), dtype=bool)
    outside[start - 40 : end + 80] = False  # the cross-fades at either end may differ
    assert np.array_equal(plc.samples[outside], silent.samples[outside])


def test_padding_a_playout_inserts_stays_silence_under_plc() -> None:
    run = simulate(one_answer(None, delta_bytes=100), "forward", link="ideal",
                   playout="pad_every_message")  # fmt: skip
    heard = render_caller(run, "plc")
    assert heard.fills and not heard.erasures, "padding reached the carrier: nothing to conceal"
    begin, end = heard.fills[0]
    assert not heard.samples[begin:end].any()


def test_a_message_played_in_pieces_renders_in_pieces() -> None:
    trace = Trace(make_header("synthetic", "one 400 B message, then 160 B later"), [
        audio_event(0.5, "r", "i", 0, SPEECH.read_bytes()[:400]),
        audio_event(50.0, "r", "i", 0, SPEECH.read_bytes()[400:560]),
        item_event("audio_done", 50.0, "i", 0),
    ])  # fmt: skip
    run = simulate(trace, "forward", link="ideal", playout="frame_clock_skip")
    assert run.pieces is not None
    (answer,) = render_caller(run, "silence").answers
    assert len(answer.reference) == 560
    assert answer.inserted, "the skipped tick is a gap inside the first message"


def test_a_clean_run_scores_high_and_gaps_score_lower() -> None:
    clean = mos_lqo(simulate(one_answer(None), "forward", link="ideal"))
    gapped = [mos_lqo(simulate(one_answer(at, gap_ms=120.0), "forward", link="ideal"),
                      "silence") for at in (300.0, 900.0)]  # fmt: skip
    assert clean >= 4.0
    assert all(score < clean for score in gapped)


def test_unknown_concealment_lists_the_choices() -> None:
    run = simulate(one_answer(None), "forward", link="ideal")
    with pytest.raises(ValueError, match="unknown conceal 'noise'; choose one of plc, silence"):
        render_caller(run, "noise")


def test_a_short_answer_is_not_scored() -> None:
    trace = Trace(make_header("synthetic", "0.1 s"), [
        audio_event(1.0, "r", "i", 0, SPEECH.read_bytes()[:800]),
        item_event("audio_done", 1.0, "i", 0)])  # fmt: skip
    assert math.isnan(mos_lqo(simulate(trace, "forward", link="ideal")))


def test_simulate_reports_mos_and_sweep_summarises_it(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "tiny_deltas", "--conceal", "silence", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["concealment"] == "silence" and 1.0 < row["mos_lqo"] <= 4.6
    assert main(["sweep", "tiny_deltas", "--strategy", "forward", "--thresholds", "50:50:1",
                 "--seeds", "2", "--mos", "--out", str(tmp_path)]) == 0  # fmt: skip
    runs = pd.read_csv(tmp_path / "sweep.csv")
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert runs["mos_lqo"].between(1.0, 4.6).all()
    assert summary["mos_lqo_mean"].item() == pytest.approx(runs["mos_lqo"].mean())
    assert "mos_lqo_ci_low" in summary.columns


def test_shipped_runs_render_every_answer() -> None:
    trace = read(shipped("multi_turn"))
    heard = simulate(trace, "preroll", 100).render()
    assert len(heard.answers) == len(trace.items)
    assert heard.audio.duration_ms >= trace.audio_ms


def test_an_answer_heard_inside_another_answers_pause_is_never_concealed_over() -> None:
    """Item a plays 25 ms, item b 50 ms, then a resumes: a's layout spans b's audio as a pause.
    That pause was taken for a gap to conceal, so "plc" overwrote all of b with a's concealment
    (the metrics said nothing was concealed)."""
    a = bytes(0x10 + k % 50 for k in range(400))
    b = bytes(0x90 + k % 50 for k in range(400))
    trace = Trace(make_header("synthetic", "a resumes after b"), [
        audio_event(0, "r", "a", 0, a[:200]), audio_event(1, "r", "b", 0, b),
        audio_event(2, "r", "a", 0, a[200:]), item_event("audio_done", 3, "a", 0),
        item_event("audio_done", 4, "b", 0)])  # fmt: skip
    run = simulate(trace, "forward", 0, "ideal")
    assert run.metrics.concealed_ms == 0.0
    for conceal in ("plc", "silence"):
        heard = render_caller(run, conceal)
        assert heard.erasures == [], conceal
        expected = np.concatenate([ulaw_decode(a[:200]), ulaw_decode(b), ulaw_decode(a[200:])])
        np.testing.assert_array_equal(heard.samples, expected)


def test_an_answer_resumed_days_later_is_refused_before_its_silence_is_made() -> None:
    """A delta three days into a trace, of an answer that began at the start: its rendering
    would hold three days of silence (4 GB). Refused before any of it is allocated."""
    import tracemalloc

    days_ms = 3 * 24 * 3600 * 1000.0
    events = [audio_event(0.0, "r", "i", 0, b"\xff" * 160),
              audio_event(days_ms, "r", "i", 0, b"\xff" * 160),
              item_event("audio_done", days_ms, "i", 0)]  # fmt: skip
    run = simulate(Trace(make_header("synthetic", "a delta days in"), events), "forward",
                   link="ideal")  # fmt: skip
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"would span 72\.0 h .* at most 4 h"):
            render_caller(run)
        assert tracemalloc.get_traced_memory()[1] < 10_000_000
    finally:
        tracemalloc.stop()


def test_a_clear_inside_an_answer_renders_its_two_parts_apart() -> None:
    """Audio of an answer, a barge-in at 300 ms, the rest of it from 1.5 s: the silence across
    the clear is the barge-in's, not a gap to conceal or score (the metrics count none)."""
    phrase = SPEECH.read_bytes()
    events = [audio_event(0.0, "r", "a", 0, phrase[:8000]),
              item_event("audio_interrupted", 300.0, "a", 0),
              audio_event(1500.0, "r", "a", 0, phrase[8000:16000]),
              item_event("audio_done", 1500.0, "a", 0)]  # fmt: skip
    run = simulate(Trace(make_header("synthetic", "a clear inside an answer"), events), "forward",
                   link="ideal")  # fmt: skip
    heard = render_caller(run)
    assert run.metrics.concealment_events == 0
    assert heard.erasures == [] and [answer.inserted for answer in heard.answers] == [[], []]
    assert [len(answer.reference) for answer in heard.answers] == [2400, len(phrase) - 8000]


def test_simulate_prints_its_metrics_when_the_call_cannot_be_scored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rendering past 4 h cannot be scored: the metrics still print, mos_lqo is null, and the
    reason is one line (it was a traceback, and no metrics)."""
    from labkit.traces import write

    days_ms = 3 * 24 * 3600 * 1000.0
    events = [audio_event(0.0, "r", "i", 0, b"\xff" * 160),
              audio_event(days_ms, "r", "i", 0, b"\xff" * 160),
              item_event("audio_done", days_ms, "i", 0)]  # fmt: skip
    path = tmp_path / "days.jsonl"
    write(Trace(make_header("synthetic", "a delta days in"), events), path)
    assert main(["simulate", str(path), "--link", "ideal", "--json"]) == 0
    out, err = capsys.readouterr()
    row = json.loads(out)
    assert row["mos_lqo"] is None and row["media_messages"] == 2
    assert err.startswith("labkit simulate: no mos_lqo: render: the caller's audio would span")
    assert err.count("\n") == 1


def test_an_answer_resumed_after_another_is_rendered_as_the_metrics_count_it() -> None:
    """Half a second of a, all of b from 100 ms, the rest of a from 3 s: the metrics count no
    gap (a's rows do not follow one another), and the rendering used to insert 1.5 s into a
    and conceal it (MOS 3.0). Each run of an answer is rendered, and scored, on its own."""
    phrase = SPEECH.read_bytes()
    events = [audio_event(0.0, "r", "a", 0, phrase[:4000]),
              audio_event(100.0, "r", "b", 0, phrase[:8000]),
              audio_event(3000.0, "r", "a", 0, phrase[4000:]),
              item_event("audio_done", 3000.0, "a", 0), item_event("audio_done", 3000.0, "b", 0)]
    run = simulate(Trace(make_header("synthetic", "a resumes after b"), events), "forward",
                   link="ideal")  # fmt: skip
    heard = render_caller(run)
    assert run.metrics.concealment_events == 0 and plots.playout_gaps(run).empty
    assert heard.erasures == [] and [answer.inserted for answer in heard.answers] == [[]] * 3

"""P.862 MOS-LQO on the shipped speech: clean, damaged, concealed, and gaps inserted vs erased.

The speech is the repository's own phrases (data/audio, 8 kHz mu-law), laid out as a short call:
0.5 s of silence around each phrase. Every score here is computed, none is written down.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.audio import Audio, ulaw_decode, ulaw_encode
from labkit.plc import conceal
from labkit.quality import (
    GAP_SCORED_MAX_MS,
    MIN_SAMPLES,
    _insertion_map,
    mos_lqo,
    mos_lqo_audio,
    mos_lqo_chunks,
    mos_lqo_ulaw,
)

AUDIO_DIR = Path(__file__).resolve().parents[1] / "data" / "audio"
PHRASES = ("greeting", "order_status", "confirm_address", "payment")
PAUSE = np.zeros(4000, dtype=np.int16)  # 0.5 s
Pcm = npt.NDArray[np.int16]


@cache
def call_speech() -> Pcm:
    """About 30 s: four phrases, each with half a second of silence before and after."""
    parts = [PAUSE]
    for name in PHRASES:
        parts += [ulaw_decode((AUDIO_DIR / f"{name}.ulaw").read_bytes()), PAUSE]
    return np.concatenate(parts)


def pauses_between_phrases() -> list[int]:
    """The middle of each pause between two phrases."""
    middles, position = [], len(PAUSE)
    for name in PHRASES[:-1]:
        position += len(ulaw_decode((AUDIO_DIR / f"{name}.ulaw").read_bytes()))
        middles.append(position + len(PAUSE) // 2)
        position += len(PAUSE)
    return middles


def word_onsets(speech: Pcm) -> list[int]:
    """Samples where speech starts after at least 120 ms of quiet (the 20 ms level)."""
    level = np.convolve(np.abs(speech.astype(np.float64)), np.ones(160) / 160, mode="same")
    active = level > 300
    quiet = np.convolve(active, np.ones(960), mode="full")[: len(active)] == 0  # the last 120 ms
    return [int(i) for i in np.flatnonzero(active[1:] & quiet[:-1]) + 1]


def erased(speech: Pcm, starts: list[int], gap: int) -> Pcm:
    """The gaps' samples replaced by silence: audio lost, nothing moves."""
    damaged = speech.copy()
    for start in starts:
        damaged[start : start + gap] = 0
    return damaged


def inserted(speech: Pcm, starts: list[int], gap: int) -> tuple[Pcm, list[tuple[int, int]]]:
    """Silence inserted at each start: nothing lost, what follows plays later (a FIFO underrun)."""
    pieces, gaps, previous = [], [], 0
    for number, start in enumerate(starts):
        pieces += [speech[previous:start], np.zeros(gap, dtype=np.int16)]
        gaps.append((start + number * gap, start + (number + 1) * gap))
        previous = start
    return np.concatenate([*pieces, speech[previous:]]), gaps


def spread_in_speech(speech: Pcm, count: int) -> list[int]:
    """``count`` positions inside speech, evenly spread over the active samples."""
    level = np.convolve(np.abs(speech.astype(np.float64)), np.ones(160) / 160, mode="same")
    active = np.flatnonzero(level > 1500)
    return [int(active[i]) for i in np.linspace(0, len(active) - 1, count + 2)[1:-1].astype(int)]


def test_a_clean_copy_scores_at_least_4() -> None:
    speech = call_speech()
    assert mos_lqo(speech, speech) >= 4.0
    assert mos_lqo_ulaw(ulaw_encode(speech), ulaw_encode(speech)) >= 4.0
    assert mos_lqo(speech, speech / 32768.0) == pytest.approx(mos_lqo(speech, speech), abs=0.01)


def test_more_damage_scores_lower() -> None:
    speech = call_speech()
    scores = [
        mos_lqo(speech, erased(speech, spread_in_speech(speech, count), 40 * 8))
        for count in (0, 4, 12, 30)
    ]
    assert np.all(np.diff(scores) < 0)
    assert scores[0] >= 4.0 > scores[-1]


def test_concealment_scores_higher_than_silence_for_the_same_gaps() -> None:
    speech = call_speech()
    starts, gap = spread_in_speech(speech, 12), 60 * 8
    silent, gaps = inserted(speech, starts, gap)
    assert mos_lqo(speech, conceal(silent, gaps)) > mos_lqo(speech, silent)


def test_a_gap_in_a_pause_costs_nothing_though_everything_after_it_plays_later() -> None:
    # P.862 aligns each utterance on its own: the delay a gap adds is not scored at all.
    speech = call_speech()
    delayed, _ = inserted(speech, pauses_between_phrases(), 200 * 8)
    assert len(delayed) == len(speech) + 3 * 1600
    assert mos_lqo(speech, delayed) == pytest.approx(mos_lqo(speech, speech), abs=0.01)


def test_a_gap_inserted_at_word_starts_is_partly_forgiven_vs_the_same_samples_erased() -> None:
    # The report's symptom: speech starts, stops for 60 ms, resumes ("h-h-"). Inserted, nothing is
    # lost and P.862 realigns what follows; erased in place, the same 60 ms of the word are gone.
    speech = call_speech()
    starts, gap = [onset + 20 * 8 for onset in word_onsets(speech)], 60 * 8
    assert len(starts) >= 8
    clean = mos_lqo(speech, speech)
    stutter, _ = inserted(speech, starts, gap)
    score_inserted = mos_lqo(speech, stutter)
    score_erased = mos_lqo(speech, erased(speech, starts, gap))
    assert clean - 0.3 > score_inserted > score_erased  # scored, but less than lost audio


# --- long calls -----------------------------------------------------------------------------


def test_a_long_call_scored_whole_collapses_where_its_chunks_do_not() -> None:
    # One P.862 run aligns at most 50 utterances: 40 gaps in a minute of speech are too many delay
    # changes for it, and the whole minute scores near 1; each 10 s chunk holds a few gaps.
    speech = np.concatenate([call_speech(), call_speech()])
    stutter, gaps = inserted(speech, spread_in_speech(speech, 40), 40 * 8)
    whole = mos_lqo(speech, stutter)
    chunks = mos_lqo_chunks(speech, stutter, gaps)
    assert [(start, end) for start, end, _ in chunks][:2] == [(0, 80_000), (80_000, 160_000)]
    assert chunks[-1][1] == len(speech)
    assert whole < 1.5 and min(score for _, _, score in chunks) > whole + 0.75


def test_one_chunk_is_the_whole_score() -> None:
    speech = call_speech()
    stutter, gaps = inserted(speech, spread_in_speech(speech, 6), 50 * 8)
    [(start, end, score)] = mos_lqo_chunks(speech, stutter, gaps, chunk_ms=40_000)
    assert (start, end) == (0, len(speech)) and score == mos_lqo(speech, stutter)


@settings(max_examples=200, deadline=None)
@given(
    length=st.integers(1, 400),
    gaps=st.lists(st.tuples(st.integers(0, 400), st.integers(1, 30)), max_size=8),
    edges=st.lists(st.integers(0, 400), min_size=2, max_size=2),
)
def test_each_chunk_of_degraded_is_its_reference_chunk_plus_the_gaps_inside_it(
    length: int, gaps: list[tuple[int, int]], edges: list[int]
) -> None:
    reference = np.arange(1, length + 1)
    starts = sorted(min(place, length) for place, _ in gaps)
    pieces, ranges, previous, shift = [], [], 0, 0
    for place, (_, size) in zip(starts, gaps, strict=True):
        pieces += [reference[previous:place], np.zeros(size, dtype=reference.dtype)]
        ranges.append((place + shift, place + shift + size))
        previous, shift = place, shift + size
    degraded = np.concatenate([*pieces, reference[previous:]])
    shift_at = _insertion_map(length, len(degraded), ranges)
    a, b = sorted(min(edge, length) for edge in edges)
    played = degraded[a + shift_at(a) : b + shift_at(b)]
    np.testing.assert_array_equal(played[played != 0], reference[a:b])


def test_chunks_refuse_gaps_that_do_not_add_up() -> None:
    speech = call_speech()
    with pytest.raises(ValueError, match="plus the 10 inserted make"):
        mos_lqo_chunks(speech, speech, [(100, 110)])
    with pytest.raises(ValueError, match=r"inserted\[1\] = \(105, 120\)"):
        mos_lqo_chunks(speech, speech, [(100, 110), (105, 120)])
    with pytest.raises(ValueError, match="chunk_ms=100 is below"):
        mos_lqo_chunks(speech, speech, [], chunk_ms=100)


# --- bad input ------------------------------------------------------------------------------

SPEECH_LIKE = np.tile(np.array([0, 3000, 0, -3000], dtype=np.int16), 1000)


@pytest.mark.parametrize(
    ("reference", "degraded", "message"),
    [
        (SPEECH_LIKE.reshape(2, -1), SPEECH_LIKE, "reference must be mono"),
        (SPEECH_LIKE, SPEECH_LIKE.reshape(2, -1), "degraded must be mono"),
        (np.zeros(0, dtype=np.int16), SPEECH_LIKE, r"reference has 0 samples"),
        (SPEECH_LIKE, SPEECH_LIKE[: MIN_SAMPLES - 1], r"degraded has 1999 samples .249.9 ms"),
        (np.zeros(4000, dtype=np.int16), SPEECH_LIKE, "reference is all silence"),
        (SPEECH_LIKE, np.zeros(4000, dtype=np.int16), "degraded is all silence"),
        (SPEECH_LIKE, np.full(4000, np.nan), r"degraded\[0\] is nan"),
        (SPEECH_LIKE.astype(bool), SPEECH_LIKE, "dtype bool"),
        (SPEECH_LIKE.astype(np.complex64), SPEECH_LIKE, "dtype complex64"),
        (SPEECH_LIKE.astype(np.int32) * 20, SPEECH_LIKE, "reference: integer samples outside"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(
    reference: npt.NDArray[np.generic], degraded: npt.NDArray[np.generic], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        mos_lqo(reference, degraded)


def test_only_8_khz_is_scored() -> None:
    with pytest.raises(ValueError, match="needs 8000 Hz audio, got sample_rate_hz=16000"):
        mos_lqo(SPEECH_LIKE, SPEECH_LIKE, sample_rate_hz=16000)


def test_two_rates_must_match() -> None:
    speech = Audio(call_speech()[:16000])
    with pytest.raises(ValueError, match="reference is 8000 Hz but degraded is 16000 Hz"):
        mos_lqo_audio(speech, speech.resampled(16000))
    with pytest.raises(ValueError, match="needs 8000 Hz"):
        mos_lqo_audio(speech.resampled(16000), speech.resampled(16000))
    assert mos_lqo_audio(speech, speech) >= 4.0


def test_a_reference_without_speech_activity_is_refused() -> None:
    # A constant level is no utterance to P.862 (it removes DC before looking for speech).
    click = np.zeros(16000, dtype=np.int16)
    click[8000:8100] = 3000
    with pytest.raises(ValueError, match="no utterance"):
        mos_lqo(click, SPEECH_LIKE)


def test_a_chunk_with_no_utterance_is_left_unscored() -> None:
    """10 s of speech, then a 10 s chunk of pause with a quarter second of speech at its end:
    P.862 finds no utterance there. That chunk goes unscored (as a silent one does); the call
    used to fail with "found no utterance" and lose its metrics."""
    speech = call_speech()[:80_000]
    tail = np.concatenate([np.zeros(78_000, dtype=np.int16), call_speech()[12_000:14_000]])
    reference = np.concatenate([speech, tail])
    scores = mos_lqo_chunks(reference, reference, [])
    assert [(start, end) for start, end, _ in scores] == [(0, 80_000)]
    assert scores[0][2] > 4.0


def test_a_gap_longer_than_a_chunk_is_scored_as_one_chunk_long() -> None:
    """Past about a second P.862 scores a gap erratically, and every second costs the C code
    memory (6.5 GB for 3.9 h): a gap is scored as at most GAP_SCORED_MAX_MS long."""
    speech = call_speech()[:80_000]
    cap = GAP_SCORED_MAX_MS * 8
    scored = {}
    for gap in (cap, 6 * cap):
        degraded = np.concatenate([speech[:30_000], np.zeros(gap, dtype=np.int16),
                                   speech[30_000:]])  # fmt: skip
        scored[gap] = mos_lqo_chunks(speech, degraded, [(30_000, 30_000 + gap)])
    assert scored[cap] == scored[6 * cap]


@pytest.mark.parametrize(("samples", "said"), [
    (np.ones(4000) * 0.1 * 32767, r"reference is float with a peak of 3276\.7, but float samples "
                                  r"are full scale at \+-1\.0"),
    (np.full(4000, 0x55, dtype=np.uint8), r"reference has 8-bit samples \(uint8\); give int16 "
                                          r"PCM, or mu-law bytes to mos_lqo_ulaw"),
])  # fmt: skip
def test_mos_refuses_audio_at_the_wrong_scale(samples: npt.NDArray[np.generic], said: str) -> None:
    """int16 values passed as floats scored 1.18 for an identical copy (clipped to +-1.0)."""
    with pytest.raises(ValueError, match=said):
        mos_lqo(samples, call_speech()[:4000])

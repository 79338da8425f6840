"""G.711 Appendix I concealment on synthetic voiced signals with a known pitch.

Two voices: a harmonic series (a sawtooth-like glottal source) and a glottal pulse train through two
formant resonators. Both are exactly periodic, so the true continuation of the audio is known and
the standard's fill can be checked sample by sample: the repeated period, the fade schedule, the
cross-fades. Timelines come in the two shapes the lab renders: audio erased in place, and a gap
inserted into the audio (a FIFO underrun delays what follows).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.signal import lfilter

from labkit.plc import (
    ATTENUATION_PER_10MS,
    END_OVERLAP_MAX_SAMPLES,
    HISTORY_MS,
    HISTORY_SAMPLES,
    OVERLAP_MAX_SAMPLES,
    PITCH_MAX_SAMPLES,
    PITCH_MIN_SAMPLES,
    SILENT_AFTER_MS,
    attenuation,
    conceal,
    end_overlap_samples,
    pitch_period_samples,
)

FloatArray = npt.NDArray[np.float64]
RATE_HZ = 8000
SAMPLES_PER_MS = RATE_HZ // 1000
AMPLITUDE = 8000.0
periods = st.integers(PITCH_MIN_SAMPLES, PITCH_MAX_SAMPLES)
voices = st.sampled_from(["harmonic", "pulses"])


def harmonic_voice(period: int, length: int) -> FloatArray:
    """Harmonics 1/k of f0 = 8000/period Hz, every one below 4 kHz, fixed phases."""
    n = np.arange(length)
    signal = sum(
        np.cos(2 * np.pi * k * n / period + 0.7 * k) / k for k in range(1, (period + 1) // 2)
    )
    return AMPLITUDE * np.asarray(signal) / np.max(np.abs(signal))


def pulse_voice(period: int, length: int) -> FloatArray:
    """A glottal pulse every ``period`` samples through formants at 700 and 1200 Hz (steady)."""
    settle = 4000  # the resonators' transient has died out (r**4000 < 1e-60)
    pulses = np.zeros(settle + length)
    pulses[::period] = 1.0
    for centre_hz, bandwidth_hz in ((700.0, 90.0), (1200.0, 110.0)):
        radius = np.exp(-np.pi * bandwidth_hz / RATE_HZ)
        angle = 2 * np.pi * centre_hz / RATE_HZ
        pulses = lfilter([1.0], [1.0, -2 * radius * np.cos(angle), radius**2], pulses)
    steady = pulses[settle:]
    return AMPLITUDE * steady / np.max(np.abs(steady))


def vowel_voice(period: int, length: int) -> FloatArray:
    """Harmonics below 1 kHz only, where voiced speech has most of its energy: a smooth wave."""
    n = np.arange(length)
    harmonics = [k for k in range(1, 6) if k * RATE_HZ / period < 1000]
    signal = sum(np.cos(2 * np.pi * k * n / period + 0.7 * k) / k for k in harmonics)
    return AMPLITUDE * np.asarray(signal) / np.max(np.abs(signal))


def noise(seed: int, length: int) -> FloatArray:
    """Audio with no period at all: what the fill does to it shows the mechanism bare."""
    return np.random.default_rng(seed).normal(0.0, AMPLITUDE / 4, length)


def voice(kind: str, period: int, length: int) -> FloatArray:
    return harmonic_voice(period, length) if kind == "harmonic" else pulse_voice(period, length)


def erased_in_place(clean: FloatArray, start: int, end: int) -> FloatArray:
    timeline = clean.copy()
    timeline[start:end] = 0.0
    return timeline


def gap_inserted(clean: FloatArray, start: int, gap: int) -> FloatArray:
    return np.concatenate([clean[:start], np.zeros(gap), clean[start:]])


def lag_correlation(audio: FloatArray, start: int, end: int, lag: int) -> float:
    now, before = audio[start:end], audio[start - lag : end - lag]
    return float(now @ before / np.sqrt((now @ now) * (before @ before)))


# --- the standard's numbers -----------------------------------------------------------------


def test_constants_are_the_standards() -> None:
    assert (PITCH_MIN_SAMPLES, PITCH_MAX_SAMPLES) == (40, 120)  # 200 Hz .. 66 Hz
    assert HISTORY_SAMPLES == 390 and HISTORY_MS == 48.75
    assert OVERLAP_MAX_SAMPLES == 30  # 3.75 ms
    assert ATTENUATION_PER_10MS == 0.2 and SILENT_AFTER_MS == 60


def test_attenuation_is_full_for_10_ms_then_falls_20_percent_per_10_ms() -> None:
    at_ms = [0, 5, 10, 20, 30, 40, 50, 60, 70]
    gains = attenuation([ms * SAMPLES_PER_MS for ms in at_ms])
    np.testing.assert_allclose(gains, [1, 1, 1, 0.8, 0.6, 0.4, 0.2, 0, 0], atol=1e-12)


def test_end_cross_fade_is_a_quarter_period_plus_4_ms_per_10_ms_up_to_10_ms() -> None:
    assert end_overlap_samples(80, 80) == 20  # a 10 ms erasure: a quarter period
    assert end_overlap_samples(1, 40) == 10
    assert end_overlap_samples(160, 80) == 20 + 32  # 20 ms: + 4 ms
    assert end_overlap_samples(161, 40) == 10 + 2 * 32  # into the third 10 ms: + 8 ms
    assert end_overlap_samples(240, 120) == END_OVERLAP_MAX_SAMPLES  # capped at 10 ms
    assert end_overlap_samples(4000, 40) == END_OVERLAP_MAX_SAMPLES


# --- pitch ----------------------------------------------------------------------------------


@given(period=periods, kind=voices)
def test_pitch_estimate_is_the_period_or_a_multiple_of_it(period: int, kind: str) -> None:
    estimate = pitch_period_samples(voice(kind, period, 1000))
    assert PITCH_MIN_SAMPLES <= estimate <= PITCH_MAX_SAMPLES
    assert estimate % period == 0  # a multiple repeats the waveform just as well
    if 2 * period > PITCH_MAX_SAMPLES:
        assert estimate == period


def test_pitch_estimate_of_silence_is_in_range() -> None:
    assert PITCH_MIN_SAMPLES <= pitch_period_samples(np.zeros(HISTORY_SAMPLES)) <= 120


# --- the fill -------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    period=periods,
    kind=voices,
    start=st.integers(HISTORY_SAMPLES, 1200),
    erased_ms=st.integers(1, 100),
)
def test_fill_is_the_periodic_continuation_times_the_standards_fade(
    period: int, kind: str, start: int, erased_ms: int
) -> None:
    # Repeating 1, 2 then 3 periods, with every cross-fade at the same phase, continues an exactly
    # periodic signal exactly; what remains is the fade.
    clean = voice(kind, period, 2400)
    end = start + erased_ms * SAMPLES_PER_MS
    filled = conceal(erased_in_place(clean, start, end), [(start, end)])
    expected = clean[start:end] * attenuation(np.arange(end - start))
    np.testing.assert_allclose(filled[start:end], expected, rtol=0, atol=1e-6 * AMPLITUDE)
    np.testing.assert_allclose(filled[:start], clean[:start], rtol=0, atol=1e-6 * AMPLITUDE)


@settings(max_examples=60, deadline=None)
@given(period=periods, kind=voices, start=st.integers(HISTORY_SAMPLES, 1200))
def test_a_20_ms_gap_is_filled_with_audio_continuing_the_pitch_period(
    period: int, kind: str, start: int
) -> None:
    gap = 20 * SAMPLES_PER_MS
    timeline = np.rint(gap_inserted(voice(kind, period, 2400), start, gap)).astype(np.int16)
    filled = conceal(timeline, [(start, start + gap)]).astype(np.float64)
    # The fill repeats at the voice's period: across the gap, and from the history into it.
    assert lag_correlation(filled, start, start + gap, period) > 0.99
    assert lag_correlation(filled, start - period, start + period, period) > 0.99
    silent = timeline.astype(np.float64)
    assert np.all(silent[start : start + gap] == 0)  # what the check sees without concealment


def test_a_long_erasure_fades_by_the_standards_steps_and_is_silent_after_60_ms() -> None:
    period = 80  # one period per 10 ms: every 10 ms of the voice holds the same energy
    clean = voice("pulses", period, 4000)
    start, end = 800, 800 + 120 * SAMPLES_PER_MS
    filled = conceal(erased_in_place(clean, start, end), [(start, end)])
    window = 10 * SAMPLES_PER_MS
    full = clean[start - window : start] @ clean[start - window : start]
    measured, expected = [], []
    for step in range(12):  # the energy of each 10 ms of the fill, relative to the last 10 ms heard
        part = slice(start + step * window, start + (step + 1) * window)
        measured.append(filled[part] @ filled[part] / full)
        gain = 1.0 - ATTENUATION_PER_10MS * (np.arange(part.start, part.stop) - start - 80) / 80
        faded = np.clip(gain, 0.0, 1.0) * clean[part]
        expected.append(faded @ faded / full)
    np.testing.assert_allclose(measured, expected, rtol=1e-9, atol=1e-12)
    assert measured[0] == pytest.approx(1.0)  # full level for 10 ms
    assert np.all(np.diff(measured[:6]) < 0)  # then falling, step by step
    assert measured[1] < 1.0 and measured[5] < 0.05 * measured[1]
    assert np.all(
        filled[start + SILENT_AFTER_MS * SAMPLES_PER_MS : end] == 0.0
    )  # silent from 60 ms


@settings(max_examples=80, deadline=None)
@given(period=periods, start=st.integers(HISTORY_SAMPLES, 1200), gap=st.integers(1, 800))
def test_the_erasure_ends_without_a_click(period: int, start: int, gap: int) -> None:
    # A gap inserted into the voice: what follows it resumes at another phase than the fill has,
    # and the end cross-fade hides the step (without it the step reaches ~13x the largest one).
    clean = vowel_voice(period, 2400)
    filled = conceal(gap_inserted(clean, start, gap), [(start, start + gap)])
    around = slice(start - OVERLAP_MAX_SAMPLES - 1, start + gap + END_OVERLAP_MAX_SAMPLES + 1)
    largest_clean_step = np.max(np.abs(np.diff(clean)))
    assert np.max(np.abs(np.diff(filled[around]))) <= 1.5 * largest_clean_step


def test_silence_instead_of_concealment_clicks_where_concealment_does_not() -> None:
    # The same gap placed at a peak: silence steps from the peak to zero, the fill does not.
    clean = vowel_voice(80, 2400)
    start = 800 + int(np.argmax(np.abs(clean[800:880])))
    timeline = gap_inserted(clean, start, 160)
    largest_clean_step = np.max(np.abs(np.diff(clean)))
    silent_jump = np.max(np.abs(np.diff(timeline[start - 40 : start + 240])))
    filled = conceal(timeline, [(start, start + 160)])
    concealed_jump = np.max(np.abs(np.diff(filled[start - 40 : start + 240])))
    assert silent_jump > 1.5 * largest_clean_step >= concealed_jump


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    start=st.integers(HISTORY_SAMPLES, 900),
    erased=st.integers(1, 400),
)
def test_the_first_10_ms_repeat_the_last_period_from_a_seamless_start(
    seed: int, start: int, erased: int
) -> None:
    audio = noise(seed, 1400)
    pitch = pitch_period_samples(audio[:start])
    overlap = pitch // 4
    filled = conceal(erased_in_place(audio, start, start + erased), [(start, start + erased)])
    # The last quarter period heard fades into the audio one period earlier ...
    weights = np.arange(1, overlap + 1) / overlap
    lead_in = (1 - weights) * audio[start - overlap : start] + weights * audio[
        start - overlap - pitch : start - pitch
    ]
    np.testing.assert_allclose(filled[start - overlap : start], lead_in, rtol=1e-12)
    np.testing.assert_array_equal(filled[: start - overlap], audio[: start - overlap])
    # ... so its last sample is the one before the repeated period, and the repetition that follows
    # steps on from it as the audio itself once did.
    assert filled[start - 1] == pytest.approx(audio[start - 1 - pitch], rel=1e-12)
    first = np.arange(start, start + min(erased, 80))
    np.testing.assert_allclose(filled[first], filled[first - pitch], rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), start=st.integers(HISTORY_SAMPLES, 900))
def test_at_10_ms_the_fill_cross_fades_into_two_periods_at_the_same_phase(
    seed: int, start: int
) -> None:
    audio = noise(seed, 1400)
    pitch = pitch_period_samples(audio[:start])
    overlap, switch = pitch // 4, 10 * SAMPLES_PER_MS
    end = start + 20 * SAMPLES_PER_MS
    filled = conceal(erased_in_place(audio, start, end), [(start, end)])
    offsets = np.arange(switch, switch + overlap)
    one_period = filled[start - pitch + offsets % pitch]  # what repeating one period would play
    two_periods = audio[start - 2 * pitch + switch % pitch + (offsets - switch)]  # same phase
    weights = np.arange(1, overlap + 1) / overlap
    expected = ((1 - weights) * one_period + weights * two_periods) * attenuation(offsets)
    np.testing.assert_allclose(filled[start + offsets], expected, rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_from_20_ms_the_fill_repeats_three_periods_not_one(seed: int) -> None:
    audio, start = noise(seed, 1400), 600
    pitch = pitch_period_samples(audio[:start])
    assume(pitch <= 96)  # three periods fit between the switch at 20 ms and silence at 60 ms
    end = start + 60 * SAMPLES_PER_MS
    filled = conceal(erased_in_place(audio, start, end), [(start, end)])
    offsets = np.arange(20 * SAMPLES_PER_MS + pitch // 4 + 3 * pitch, 60 * SAMPLES_PER_MS)
    unfaded = filled[start + offsets] / attenuation(offsets)
    earlier = filled[start + offsets - 3 * pitch] / attenuation(offsets - 3 * pitch)
    np.testing.assert_allclose(unfaded, earlier, rtol=1e-9, atol=1e-9)
    one_period_back = filled[start + offsets - pitch] / attenuation(offsets - pitch)
    assert not np.allclose(unfaded, one_period_back)  # a long fill is not a buzz of one period


def test_an_erasure_at_time_zero_stays_silent() -> None:
    clean = np.rint(voice("harmonic", 64, 2000)).astype(np.int16)
    filled = conceal(erased_in_place(clean, 0, 240).astype(np.int16), [(0, 240)])
    assert np.all(filled[:240] == 0)
    # The first good audio fades in over the end cross-fade, then is untouched.
    tail = end_overlap_samples(240, pitch_period_samples(np.zeros(1)))
    assert np.all(np.abs(filled[240 : 240 + tail]) <= np.abs(clean[240 : 240 + tail]))
    np.testing.assert_array_equal(filled[240 + tail :], clean[240 + tail :])


def test_an_erasure_with_a_short_history_uses_what_there_is() -> None:
    clean = voice("pulses", 50, 2000)
    filled = conceal(erased_in_place(clean, 150, 310), [(150, 310)])
    assert lag_correlation(filled, 150, 230, 50) > 0.99


# --- the rest of the audio ------------------------------------------------------------------


@st.composite
def timelines(draw: st.DrawFn) -> tuple[npt.NDArray[np.int16], list[tuple[int, int]]]:
    length = draw(st.integers(1, 3000))
    pcm = draw(arrays(np.int16, length))
    cuts = sorted(draw(st.lists(st.integers(0, length), max_size=12, unique=True)))
    erasures = [(a, b) for a, b in zip(cuts[::2], cuts[1::2], strict=False) if draw(st.booleans())]
    return pcm, erasures


@settings(max_examples=150, deadline=None)
@given(timeline=timelines())
def test_good_audio_is_untouched_outside_the_cross_fades(
    timeline: tuple[npt.NDArray[np.int16], list[tuple[int, int]]],
) -> None:
    pcm, erasures = timeline
    original = pcm.copy()
    filled = conceal(pcm, erasures)
    np.testing.assert_array_equal(pcm, original)  # the input is not modified
    assert filled.dtype == np.int16 and filled.shape == pcm.shape
    np.testing.assert_array_equal(conceal(pcm, erasures), filled)  # deterministic
    may_change = np.zeros(len(pcm), dtype=bool)
    for start, end in erasures:
        may_change[max(0, start - OVERLAP_MAX_SAMPLES) : end + END_OVERLAP_MAX_SAMPLES] = True
    np.testing.assert_array_equal(filled[~may_change], pcm[~may_change])


def test_touching_erasures_are_one_erasure() -> None:
    clean = np.rint(voice("pulses", 90, 3000)).astype(np.int16)
    timeline = erased_in_place(clean.astype(np.float64), 1000, 1500).astype(np.int16)
    split = conceal(timeline, [(1000, 1100), (1100, 1320), (1320, 1500)])
    np.testing.assert_array_equal(split, conceal(timeline, [(1000, 1500)]))


def test_float_audio_is_concealed_like_int16_audio() -> None:
    clean = np.rint(voice("harmonic", 70, 3000)).astype(np.int16)
    timeline = erased_in_place(clean.astype(np.float64), 1000, 1400).astype(np.int16)
    as_int16 = conceal(timeline, [(1000, 1400)])
    as_float32 = conceal((timeline / 32768.0).astype(np.float32), [(1000, 1400)])
    assert as_float32.dtype == np.float32
    np.testing.assert_allclose(as_float32 * 32768.0, as_int16, atol=0.51)


def test_full_scale_audio_stays_in_range() -> None:
    square = np.where(np.arange(4000) % 100 < 50, 32767, -32768).astype(np.int16)
    filled = conceal(square, [(500, 1500), (1600, 1700)])
    assert filled.dtype == np.int16 and filled.min() >= -32768 and filled.max() <= 32767


# --- bad input ------------------------------------------------------------------------------

PCM = np.zeros(1000, dtype=np.int16)


@pytest.mark.parametrize(
    ("pcm", "erasures", "message"),
    [
        (np.zeros((2, 500), dtype=np.int16), [], "mono"),
        (np.zeros(1000, dtype=np.int32), [], "dtype int32"),
        (np.zeros(1000, dtype=bool), [], "dtype bool"),
        (np.array([0.0, np.nan, 0.0]), [], r"pcm\[1\] is nan"),
        (PCM, [(10, 5)], r"erasures\[0\] = \(10, 5\)"),
        (PCM, [(10, 10)], r"0 <= start < end <= 1000"),
        (PCM, [(-1, 5)], r"erasures\[0\]"),
        (PCM, [(900, 1001)], r"<= 1000 \(the length of pcm\)"),
        (PCM, [(100, 200), (150, 300)], r"erasures\[1\] = \(150, 300\) starts before"),
        (PCM, [(300, 400), (100, 200)], "sorted"),
        (PCM, [(1.5, 20)], "not a .start, end. pair of integers"),
        (PCM, [(1, 2, 3)], r"erasures\[0\] = \(1, 2, 3\)"),
        (PCM, [None], "pair of integers"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(
    pcm: npt.NDArray[np.generic], erasures: list[tuple[int, int]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        conceal(pcm, erasures)

"""Packet loss concealment of ITU-T G.711 Appendix I: what a caller hears when the audio stops.

When Twilio's outbound queue runs dry, the carrier or the handset does not play silence: a G.711
receiver conceals the gap. Appendix I of G.711 (09/1999, "A high quality low-complexity algorithm
for packet loss concealment with G.711") is the standard way, and it repeats the last pitch period
with a fade. That repetition is one reason an underrun at a word start sounds like "h-h-hello"
rather than a click. See the lesson "what the caller hears" (notebooks/).

The algorithm, as Appendix I describes it (facts from the Recommendation and public descriptions of
it: Dr. Dobb's "Error-resilient coding for audio communication", p. 3; the quoted text of clauses
I.2.4 and I.2.7; Kapilow's patent US 8,423,358, claim 3). This module is written from those facts:

- **History** (``HISTORY_SAMPLES``, 390 samples = 48.75 ms): the audio just before the erasure;
  three of the longest pitch periods plus a quarter of one. A receiver starts with a zeroed
  history, so an erasure with no audio before it stays silent.
- **Pitch** (``PITCH_MIN_SAMPLES``..``PITCH_MAX_SAMPLES``, 40..120 samples = 200..66 Hz): the lag
  that maximises the normalised cross-correlation between the last 20 ms of history and the history
  that lag earlier; a coarse search at 2:1 decimation, then a full-rate search one sample either
  side of the coarse best. The energy in the normaliser has a floor so silence does not divide by 0.
- **First 10 ms** (I.2.4): repeat the last pitch period. A quarter of a period before the erasure,
  the real audio is cross-faded into the audio one period earlier, so the repetition starts where
  the waveform was heading and every wrap of the period is seamless.
- **Longer erasures**: at 10 ms and again at 20 ms the repeated segment grows by one period (at
  most three), so a long erasure is not a buzz of one period; each switch is a quarter-period
  cross-fade from the old segment to the new one at the same phase.
- **Attenuation** (``ATTENUATION_PER_10MS``): full level for the first 10 ms, then a linear ramp
  down 20 % per 10 ms, so the fill is silent from 60 ms on (``SILENT_AFTER_MS``).
- **End of the erasure** (I.2.7): the synthetic signal is continued past the erasure (keeping its
  fade) and cross-faded into the first good audio. The cross-fade lasts a quarter period after a
  10 ms erasure and grows by 4 ms per further 10 ms of erasure, up to 10 ms.

What differs from a G.711 receiver: the receiver works in 10 ms frames and delays its output by
3.75 ms (the longest quarter period) so that the cross-fade at the erasure start can still change
audio it has not played. Here the whole timeline is at hand, so the cross-fade rewrites the last
quarter period before the erasure in place, with no delay, and erasures may be any number of
samples (the 10 ms steps of the schedule are counted in samples from the erasure start).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from labkit.audio import SAMPLE_RATE_HZ

FloatArray = npt.NDArray[np.float64]

SAMPLES_PER_MS = SAMPLE_RATE_HZ // 1000
PITCH_MIN_SAMPLES = 40  # 200 Hz
PITCH_MAX_SAMPLES = 120  # 66.7 Hz
CORRELATION_WINDOW_MS = 20  # the most recent 20 ms of history are matched
CORRELATION_WINDOW_SAMPLES = CORRELATION_WINDOW_MS * SAMPLES_PER_MS
PITCH_SEARCH_DECIMATION = 2  # coarse search at 4 kHz, then refined at 8 kHz
# Floor on the segment energy (sum of squares, 16-bit sample units) in the correlation normaliser.
CORRELATION_ENERGY_FLOOR = 250.0
OVERLAP_MAX_SAMPLES = PITCH_MAX_SAMPLES // 4  # a quarter of the longest period: 3.75 ms
MAX_PERIODS = 3  # pitch periods repeated once the erasure is 20 ms old
HISTORY_SAMPLES = MAX_PERIODS * PITCH_MAX_SAMPLES + OVERLAP_MAX_SAMPLES  # 390
HISTORY_MS = HISTORY_SAMPLES / SAMPLES_PER_MS  # 48.75
STEP_MS = 10  # the schedule's unit: period count, fade and end cross-fade change every 10 ms
STEP_SAMPLES = STEP_MS * SAMPLES_PER_MS
FULL_LEVEL_MS = 10  # no attenuation during the first 10 ms
ATTENUATION_PER_10MS = 0.2  # then a linear ramp, 20 % of full level per 10 ms
SILENT_AFTER_MS = FULL_LEVEL_MS + round(10 / ATTENUATION_PER_10MS)  # 60
END_OVERLAP_GROWTH_PER_10MS_MS = 4  # end cross-fade: + 4 ms per 10 ms of erasure after the first
END_OVERLAP_MAX_MS = 10
END_OVERLAP_MAX_SAMPLES = END_OVERLAP_MAX_MS * SAMPLES_PER_MS

_INT16_FULL_SCALE = 32768.0  # float audio is full scale at +-1.0 (as in labkit.audio)


def conceal(pcm: npt.NDArray[Any], erasures: Sequence[tuple[int, int]]) -> npt.NDArray[Any]:
    """A copy of ``pcm`` with every erased range filled by G.711 Appendix I concealment.

    ``pcm`` is mono 8 kHz audio, int16 or float (full scale at +-1.0); the copy has its dtype.
    ``erasures`` are half-open sample ranges ``(start, end)``, sorted and not overlapping; ranges
    that touch are one erasure. Each is filled from the audio before it (already concealed audio
    counts, as in a receiver) and cross-faded into the audio after it. Samples outside the erased
    ranges change only within a quarter period (<= 3.75 ms) before each erasure and the end
    cross-fade (<= 10 ms) after it. An erasure with no audio before it stays silent.
    """
    samples = _validated_pcm(pcm)
    ranges = _validated_erasures(erasures, len(samples))
    scale = _INT16_FULL_SCALE if np.issubdtype(samples.dtype, np.floating) else 1.0
    work = samples.astype(np.float64) * scale  # in 16-bit units, where the energy floor is defined
    for index, (start, end) in enumerate(ranges):
        next_start = ranges[index + 1][0] if index + 1 < len(ranges) else len(work)
        _conceal_erasure(work, start, end, good_until=next_start)
    return _as_dtype(work / scale, samples.dtype)


def pitch_period_samples(history: npt.ArrayLike) -> int:
    """The pitch period (samples) Appendix I finds at the end of ``history`` (16-bit units).

    Short histories count as preceded by silence, as in a receiver's zeroed history buffer.
    """
    recent = _padded_history(np.asarray(history, dtype=np.float64))
    coarse_lags = np.arange(PITCH_MIN_SAMPLES, PITCH_MAX_SAMPLES + 1, PITCH_SEARCH_DECIMATION)
    coarse = int(
        coarse_lags[np.argmax(_correlations(recent, coarse_lags, PITCH_SEARCH_DECIMATION))]
    )
    fine_lags = np.arange(
        max(PITCH_MIN_SAMPLES, coarse - PITCH_SEARCH_DECIMATION + 1),
        min(PITCH_MAX_SAMPLES, coarse + PITCH_SEARCH_DECIMATION - 1) + 1,
    )
    return int(fine_lags[np.argmax(_correlations(recent, fine_lags, 1))])


def attenuation(samples_into_erasure: npt.ArrayLike) -> FloatArray:
    """Gain of the synthetic signal at each sample offset from the erasure start."""
    offsets = np.asarray(samples_into_erasure, dtype=np.float64)
    full_level_samples = FULL_LEVEL_MS * SAMPLES_PER_MS
    faded = 1.0 - ATTENUATION_PER_10MS * (offsets - full_level_samples) / STEP_SAMPLES
    gain: FloatArray = np.clip(faded, 0.0, 1.0)
    return gain


def end_overlap_samples(erasure_samples: int, pitch_samples: int) -> int:
    """Length of the cross-fade into the first good audio after an erasure (clause I.2.7)."""
    steps = math.ceil(erasure_samples / STEP_SAMPLES)
    growth = END_OVERLAP_GROWTH_PER_10MS_MS * SAMPLES_PER_MS * max(steps - 1, 0)
    return min(pitch_samples // 4 + growth, END_OVERLAP_MAX_SAMPLES)


def _conceal_erasure(work: FloatArray, start: int, end: int, good_until: int) -> None:
    history = _padded_history(work[max(0, start - HISTORY_SAMPLES) : start])
    pitch = pitch_period_samples(history)
    erased = end - start
    tail = min(end_overlap_samples(erased, pitch), good_until - end)
    lead_in, synthetic = _synthesize(history, pitch, erased + tail)
    rewritten = min(len(lead_in), start)  # the cross-fade into the repetition, before the erasure
    if rewritten:
        work[start - rewritten : start] = lead_in[len(lead_in) - rewritten :]
    work[start:end] = synthetic[:erased]
    if tail:
        work[end : end + tail] = _cross_fade(synthetic[erased:], work[end : end + tail])


def _synthesize(history: FloatArray, pitch: int, count: int) -> tuple[FloatArray, FloatArray]:
    """The rewritten last quarter period of history, and ``count`` attenuated synthetic samples."""
    overlap = pitch // 4
    segments = [_repeated_segment(history, pitch, periods) for periods in range(1, MAX_PERIODS + 1)]
    raw = np.empty(count, dtype=np.float64)
    offset, filled = 0, 0
    for periods, segment in enumerate(segments, start=1):
        stage_end = count if periods == MAX_PERIODS else min(count, periods * STEP_SAMPLES)
        if filled >= stage_end:
            break
        if periods == 1:
            raw[:stage_end], offset = _read_cyclic(segment, offset, stage_end)
        else:
            # Same phase, one period further back; cross-fade from the old segment's continuation.
            previous, _ = _read_cyclic(segments[periods - 2], offset, overlap)
            offset %= pitch
            fresh, offset = _read_cyclic(segment, offset, stage_end - filled)
            blend = min(overlap, len(fresh))
            fresh[:blend] = _cross_fade(previous[:blend], fresh[:blend], overlap)
            raw[filled:stage_end] = fresh
        filled = stage_end
    return segments[0][len(segments[0]) - overlap :], raw * attenuation(np.arange(count))


def _repeated_segment(history: FloatArray, pitch: int, periods: int) -> FloatArray:
    """The last ``periods`` pitch periods, their end cross-faded into the audio just before them.

    The last quarter period fades from the real audio into the audio one segment earlier, so the
    segment's last sample flows into its first and the repetition wraps without a step.
    """
    length = periods * pitch
    overlap = pitch // 4
    segment = history[len(history) - length :].copy()
    before = history[len(history) - length - overlap : len(history) - length]
    segment[length - overlap :] = _cross_fade(history[len(history) - overlap :], before)
    return segment


def _read_cyclic(segment: FloatArray, offset: int, count: int) -> tuple[FloatArray, int]:
    positions = (offset + np.arange(count)) % len(segment)
    return segment[positions], (offset + count) % len(segment)


def _cross_fade(
    fading_out: FloatArray, fading_in: FloatArray, length: int | None = None
) -> FloatArray:
    """A linear cross-fade over ``length`` samples (default: all); the last weight is 1 at most."""
    span = len(fading_in) if length is None else length
    weights = np.arange(1, len(fading_in) + 1, dtype=np.float64) / span
    blended: FloatArray = (1.0 - weights) * fading_out + weights * fading_in
    return blended


def _correlations(history: FloatArray, lags: npt.NDArray[np.int64], step: int) -> FloatArray:
    """Normalised cross-correlation of the last 20 ms with the history ``lag`` samples earlier."""
    window = CORRELATION_WINDOW_SAMPLES
    recent = history[len(history) - window :: step]
    earlier = np.stack(
        [history[len(history) - window - lag : len(history) - lag : step] for lag in lags]
    )
    energy = np.maximum(np.einsum("ij,ij->i", earlier, earlier), CORRELATION_ENERGY_FLOOR)
    scores: FloatArray = (earlier @ recent) / np.sqrt(energy)
    return scores


def _padded_history(history: FloatArray) -> FloatArray:
    recent = (
        history[len(history) - HISTORY_SAMPLES :] if len(history) > HISTORY_SAMPLES else history
    )
    padded = np.zeros(HISTORY_SAMPLES, dtype=np.float64)
    padded[HISTORY_SAMPLES - len(recent) :] = recent
    return padded


def _validated_pcm(pcm: npt.NDArray[Any]) -> npt.NDArray[Any]:
    samples = np.asarray(pcm)
    if samples.ndim != 1:
        raise ValueError(f"conceal: pcm must be mono (1-D), got shape {samples.shape}")
    if samples.dtype != np.int16 and not np.issubdtype(samples.dtype, np.floating):
        raise ValueError(f"conceal: pcm must be int16 or float samples, got dtype {samples.dtype}")
    if np.issubdtype(samples.dtype, np.floating) and not np.all(np.isfinite(samples)):
        first = int(np.flatnonzero(~np.isfinite(samples))[0])
        raise ValueError(f"conceal: pcm[{first}] is {samples[first]}, not a finite sample")
    return samples


def _validated_erasures(erasures: Sequence[tuple[int, int]], length: int) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for index, erasure in enumerate(erasures):
        start, end = _erasure_bounds(index, erasure)
        if not 0 <= start < end <= length:
            raise ValueError(
                f"conceal: erasures[{index}] = ({start}, {end}) must satisfy"
                f" 0 <= start < end <= {length} (the length of pcm)"
            )
        if merged and start < merged[-1][1]:
            raise ValueError(
                f"conceal: erasures[{index}] = ({start}, {end}) starts before the previous erasure"
                f" ends at {merged[-1][1]}: erasures must be sorted and must not overlap"
            )
        if merged and start == merged[-1][1]:
            merged[-1] = (merged[-1][0], end)  # touching ranges are one erasure
        else:
            merged.append((start, end))
    return merged


def _erasure_bounds(index: int, erasure: tuple[int, int]) -> tuple[int, int]:
    try:  # checked at run time too: callers may pass any sequence
        start, end = erasure
        return operator.index(start), operator.index(end)
    except (TypeError, ValueError):
        raise ValueError(
            f"conceal: erasures[{index}] = {erasure!r} is not a (start, end) pair of integers"
        ) from None


def _as_dtype(work: FloatArray, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    if dtype == np.int16:
        return np.clip(np.rint(work), -32768, 32767).astype(np.int16)
    return work.astype(dtype)

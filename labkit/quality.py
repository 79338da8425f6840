"""A perceptual score of what the caller hears: ITU-T P.862 narrowband MOS-LQO.

Engineers judge call audio by perceptual scores, not by gap counts. ``mos_lqo`` compares the
rendered caller audio (degraded) with the trace's own audio played without gaps (reference) via the
ITU-T P.862 reference implementation (the ``pesq`` package wraps its ANSI-C code, which P.862's
Annex A says takes precedence over the Recommendation's text) and maps the raw score to MOS-LQO
with P.862.1 (``0.999 + 4 / (1 + exp(-1.4945 x + 4.6607))``): 1.02 (bad) to 4.55 (a clean copy).
See the lesson "what the caller hears" (notebooks/).

What P.862 does with time (P.862 clause 10.1, "level and time alignment pre-processing", and the
reference code's ``id_utterances``, ``utterance_split`` and bad-interval search):

- It finds utterances in the reference (voice activity runs of at least 200 ms) and estimates one
  delay per utterance; the boundary between two utterances is placed mid-pause.
- It splits an utterance holding at least 0.8 s of speech where two halves align better than the
  whole (up to 40 candidate break points, repeated; at most 50 utterances in all).
- Every reference frame is compared with the degraded audio at its utterance's delay. Degraded audio
  that no reference frame maps to, such as a gap at an utterance boundary, is never scored.
- In the perceptual model, runs of at least 5 badly distorted frames (32 ms frames every 16 ms) get
  a second delay search within +-128 ms, and each frame keeps the smaller of its two disturbances.

What that means for an inserted gap. A Twilio underrun does not erase audio: the FIFO plays what
follows later, so the rendered timeline has the gap inserted and everything after it shifted.

- The delay is never penalised. P.862 scores one-way speech distortion and noise, not delay: a gap
  inserted in a pause between utterances costs nothing, even though it delays all later speech
  (``tests/test_quality.py``: a clean copy and the same speech with 200 ms inserted in each pause
  score the same).
- A gap inside an utterance counts only in so far as the realignment does not absorb it. At word
  starts, where the report's "h-h-" lives, a 60 ms gap inserted into the audio scores markedly
  higher than the same 60 ms erased in place (the test measures both); so the score understates a
  stutter compared with losing the audio, and it cannot tell late speech from timely speech.
- Read MOS-LQO beside the lab's delay measures (the oracle, the 150 ms G.114 budget), never instead
  of them, and compare renderings of the same run (``conceal="plc"`` vs ``"silence"``) or runs of
  similar length: the score depends on where the gaps fall as well as on how much is concealed.

Application limits (P.862.3, as summarised in Cyara's "PESQ guidelines"): references of 8-30 s
with at least 3.2 s of speech, 40-80 % active speech, at most 50 utterances; longer files score
less reliably, text-to-speech voices (the shipped phrases are espeak-ng) are outside the validated
material. P.862's own minimum is 0.25 s per signal. Scores are deterministic.

Long calls: one P.862 run holds at most 50 utterances, each at one delay. A call whose delay
changes more often than that (a long call with many underruns) ends up mostly misaligned and
scores near 1 whatever was heard: 98 s of the shipped phrases with 5 % inserted as 121 gaps of
20-60 ms score 1.1 in one run, 2.6 (silence) and 2.9 (G.711 PLC) as the mean of 10 s chunks
(``benchmarks/bench_quality.py``). Score long calls in chunks (``mos_lqo_chunks``) or per turn.

No second score: ViSQOL (``visqol-python`` 3.8.0, models bundled, nothing downloaded) was tried and
left out. Its speech mode wants 16 kHz wideband audio, it took 71 s for 30 s of speech here (pure
Python), and it barely moved for the damage that matters: 14 gaps of 60 ms at word starts scored
4.90 (erased) and 4.82 (inserted) against 5.0 for a clean copy, where P.862 gave 2.56 and 3.14.

Cost: one call runs the C code in the calling thread with the GIL held and with global state (not
thread safe): 0.14-0.4 s for a 10 s call, 1-3.3 s for a 98 s call on this shared 2-core machine,
where concealing either takes 2-8 ms and 22-84 ms (``benchmarks/bench_quality.py``). To keep a
notebook responsive, score on request or in another process, not in a thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from labkit.audio import SAMPLE_RATE_HZ, Audio, Int16Array, to_int16, ulaw_decode

P862_RATE_HZ = SAMPLE_RATE_HZ  # narrowband P.862 runs at 8 kHz (16 kHz is the wideband P.862.2)
MIN_DURATION_MS = 250  # the reference code refuses shorter signals
MIN_SAMPLES = MIN_DURATION_MS * P862_RATE_HZ // 1000
CHUNK_MS = 10_000  # within P.862.3's 8-30 s, and few enough delay changes per run
# A longer gap is scored as this long: past ~1 s P.862 scores a gap erratically (2, 5, 10 and
# 30 s inside one utterance scored 1.50, 1.62, 1.59 and 2.49; 3.9 h scored 4.49), and every
# second of it costs memory in the C code (6.5 GB for the 3.9 h).
GAP_SCORED_MAX_MS = CHUNK_MS


class NoSpeechError(ValueError):
    """P.862 found no utterance (200 ms of voice activity) in the reference."""


def mos_lqo(
    reference: npt.NDArray[Any], degraded: npt.NDArray[Any], sample_rate_hz: int = P862_RATE_HZ
) -> float:
    """P.862 narrowband MOS-LQO (P.862.1 mapping) of ``degraded`` against ``reference``.

    Both are mono 8 kHz arrays, int16 or float (full scale at +-1.0), of any lengths of at least
    0.25 s (an inserted gap makes the degraded audio longer; P.862 realigns it). Raises
    ``ValueError`` naming the signal and the problem for any other input.
    """
    if sample_rate_hz != P862_RATE_HZ:
        raise ValueError(
            f"mos_lqo: P.862 narrowband needs {P862_RATE_HZ} Hz audio, got sample_rate_hz="
            f"{sample_rate_hz!r}; resample first (labkit.audio.resample_to_8k)"
        )
    ref = _speech_signal("reference", reference)
    deg = _speech_signal("degraded", degraded)
    return _p862_nb(ref, deg)


def mos_lqo_chunks(
    reference: npt.NDArray[Any],
    degraded: npt.NDArray[Any],
    inserted: Sequence[tuple[int, int]],
    chunk_ms: int = CHUNK_MS,
) -> list[tuple[int, int, float]]:
    """``mos_lqo`` of each ``chunk_ms`` of ``reference`` against the ``degraded`` audio playing it.

    ``degraded`` is ``reference`` with the sample ranges ``inserted`` (half-open, sorted, in
    ``degraded``'s samples: the underruns, concealed or not) inserted; they map each chunk's ends
    into ``degraded``, a gap at a chunk's end going with the next chunk. Returns ``(start, end,
    mos_lqo)`` per chunk, ``start`` and ``end`` in ``reference`` samples; a last chunk shorter
    than ``chunk_ms`` joins the one before, and chunks whose reference is silent, or holds no
    utterance P.862 finds, are not scored (P.862 needs speech). A gap longer than
    ``GAP_SCORED_MAX_MS`` is scored as that long. 8 kHz only.
    """
    if isinstance(chunk_ms, bool) or not isinstance(chunk_ms, int):
        raise ValueError(f"mos_lqo_chunks: chunk_ms must be a whole number of ms, got {chunk_ms!r}")
    chunk_samples = chunk_ms * P862_RATE_HZ // 1000
    if chunk_samples < MIN_SAMPLES:
        raise ValueError(
            f"mos_lqo_chunks: chunk_ms={chunk_ms} is below P.862's {MIN_DURATION_MS} ms"
        )
    ref, deg = np.asarray(reference), np.asarray(degraded)
    if ref.ndim != 1 or deg.ndim != 1:
        raise ValueError(f"mos_lqo_chunks: expected mono (1-D) audio, got {ref.shape}, {deg.shape}")
    shift_at = _insertion_map(len(ref), len(deg), inserted)
    edges = list(range(0, len(ref), chunk_samples))
    if len(edges) > 1 and len(ref) - edges[-1] < chunk_samples:
        edges.pop()  # the short tail joins the chunk before
    scores = []
    for start, end in zip(edges, [*edges[1:], len(ref)], strict=True):
        if not np.any(ref[start:end]):
            continue
        played = _gaps_capped(deg, start + shift_at(start), end + shift_at(end), inserted)
        try:
            scores.append((start, end, mos_lqo(ref[start:end], played)))
        except NoSpeechError:  # a chunk of pause and a breath: nothing P.862 can compare
            continue
    return scores


def _gaps_capped(degraded: npt.NDArray[Any], begin: int, end: int,
                 inserted: Sequence[tuple[int, int]]) -> npt.NDArray[Any]:  # fmt: skip
    """``degraded[begin:end]`` with each inserted range cut to ``GAP_SCORED_MAX_MS``."""
    cap = GAP_SCORED_MAX_MS * P862_RATE_HZ // 1000
    cuts = [(gap_start + cap, gap_end) for gap_start, gap_end in inserted
            if gap_end - gap_start > cap and gap_start < end and gap_end > begin]  # fmt: skip
    if not cuts:
        return degraded[begin:end]
    keep, at = [], begin
    for cut_start, cut_end in cuts:
        keep.append(degraded[at : max(at, min(cut_start, end))])
        at = max(at, min(cut_end, end))
    keep.append(degraded[at:end])
    return np.concatenate(keep)


def mos_lqo_audio(reference: Audio, degraded: Audio) -> float:
    """``mos_lqo`` of two ``Audio`` values, which must share their 8 kHz rate."""
    if reference.rate_hz != degraded.rate_hz:
        raise ValueError(
            f"mos_lqo_audio: reference is {reference.rate_hz} Hz but degraded is"
            f" {degraded.rate_hz} Hz; both must be {P862_RATE_HZ} Hz (Audio.to_8k())"
        )
    return mos_lqo(reference.samples, degraded.samples, reference.rate_hz)


def mos_lqo_ulaw(reference: bytes, degraded: bytes) -> float:
    """``mos_lqo`` of two 8 kHz G.711 mu-law byte strings (as Twilio and the traces carry)."""
    return mos_lqo(ulaw_decode(reference), ulaw_decode(degraded))


def _insertion_map(
    reference_length: int, degraded_length: int, inserted: Sequence[tuple[int, int]]
) -> Callable[[int], int]:
    """How many inserted samples play before reference sample ``x`` (checked against lengths)."""
    places: list[int] = []
    before = [0]  # samples inserted before the n-th gap (the last: in all)
    previous_end = 0
    for index, (start, end) in enumerate(inserted):
        if not previous_end <= start < end <= degraded_length:
            raise ValueError(
                f"mos_lqo_chunks: inserted[{index}] = ({start}, {end}) must be a non-empty range of"
                f" degraded, after the previous one (which ends at {previous_end})"
            )
        places.append(start - before[-1])  # the reference sample the gap plays before
        before.append(before[-1] + end - start)
        previous_end = end
    if degraded_length != reference_length + before[-1]:
        raise ValueError(
            f"mos_lqo_chunks: degraded has {degraded_length} samples but the reference's"
            f" {reference_length} plus the {before[-1]} inserted make"
            f" {reference_length + before[-1]}"
        )
    return lambda x: before[int(np.searchsorted(places, x, side="left"))]


def _speech_signal(name: str, samples: npt.NDArray[Any]) -> Int16Array:
    array = np.asarray(samples)
    if array.ndim != 1:
        raise ValueError(f"mos_lqo: {name} must be mono (1-D), got shape {array.shape}")
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise ValueError(f"mos_lqo: {name} must be int16 or float samples, got dtype {array.dtype}")
    if len(array) < MIN_SAMPLES:
        raise ValueError(
            f"mos_lqo: {name} has {len(array)} samples ({len(array) / 8:.1f} ms); P.862 needs at"
            f" least {MIN_SAMPLES} ({MIN_DURATION_MS} ms)"
        )
    if array.dtype.itemsize == 1:  # mu-law bytes as an array, most likely
        raise ValueError(f"mos_lqo: {name} has 8-bit samples ({array.dtype}); give int16 PCM, "
                         f"or mu-law bytes to mos_lqo_ulaw")  # fmt: skip
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        first = int(np.flatnonzero(~np.isfinite(array))[0])
        raise ValueError(f"mos_lqo: {name}[{first}] is {array[first]}, not a finite sample")
    if np.issubdtype(array.dtype, np.floating) and len(array) and np.abs(array).max() > 1.0:
        raise ValueError(f"mos_lqo: {name} is float with a peak of {np.abs(array).max():g}, but "
                         f"float samples are full scale at +-1.0 (clipping would change the "
                         f"score): scale them, or give int16 samples")  # fmt: skip
    try:
        pcm = to_int16(array)
    except ValueError as error:
        raise ValueError(f"mos_lqo: {name}: {error}") from None
    if not np.any(pcm):
        raise ValueError(f"mos_lqo: {name} is all silence; P.862 needs speech to compare")
    return pcm


def _p862_nb(reference: Int16Array, degraded: Int16Array) -> float:
    from pesq import NoUtterancesError, pesq  # imported here: only scoring needs the C extension

    try:
        score = pesq(P862_RATE_HZ, reference, degraded, "nb")
    except NoUtterancesError:
        raise NoSpeechError(
            "mos_lqo: P.862 found no utterance (no speech activity) in the reference"
        ) from None
    return float(score)

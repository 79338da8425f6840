"""mu-law codec against the stdlib audioop reference, resampling, and the playable Audio value."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from labkit.audio import (
    BYTES_PER_MS,
    SAMPLE_RATE_HZ,
    SILENCE_BYTE,
    Audio,
    resample_to_8k,
    to_int16,
    ulaw_decode,
    ulaw_encode,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # stdlib audioop on 3.11/3.12
    import audioop  # on 3.13+ provided by the audioop-lts package

ALL_CODES = bytes(range(256))
ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)


def test_decode_matches_audioop_for_every_code() -> None:
    expected = np.frombuffer(audioop.ulaw2lin(ALL_CODES, 2), dtype=np.int16)
    np.testing.assert_array_equal(ulaw_decode(ALL_CODES), expected)


def test_encode_matches_audioop_for_every_int16() -> None:
    expected = audioop.lin2ulaw(ALL_INT16.tobytes(), 2)
    assert ulaw_encode(ALL_INT16) == expected


@given(arrays(np.int16, st.integers(0, 400)))
def test_encode_matches_audioop_on_random_pcm(pcm: np.ndarray) -> None:
    assert ulaw_encode(pcm) == audioop.lin2ulaw(pcm.tobytes(), 2)


def test_audioop_rounds_small_negatives_down_not_to_silence() -> None:
    # The documented difference from the G.711 tables: audioop shifts -1..-4 to -1 (14-bit).
    assert ulaw_encode(np.array([0, 1, 3, -1, -4], dtype=np.int16)) == bytes(
        [0xFF, 0xFF, 0xFF, 0x7E, 0x7E]
    )


def test_silence_byte_decodes_to_zero() -> None:
    assert ulaw_decode(bytes([SILENCE_BYTE]))[0] == 0
    assert ulaw_encode(np.zeros(3, dtype=np.int16)) == bytes([SILENCE_BYTE]) * 3


def test_decode_then_encode_is_identity_except_negative_zero() -> None:
    codes = ulaw_encode(ulaw_decode(ALL_CODES))
    differing = [code for code, back in zip(ALL_CODES, codes, strict=True) if code != back]
    assert differing == [0x7F]  # the second zero (negative zero) encodes as the first, 0xFF


def test_encode_refuses_non_int16() -> None:
    with pytest.raises(TypeError, match="int16"):
        ulaw_encode(np.zeros(4, dtype=np.float32))


def test_units() -> None:
    assert SAMPLE_RATE_HZ == 8000
    assert BYTES_PER_MS == 8


def _dominant_hz(samples: np.ndarray, rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate_hz)[np.argmax(spectrum)])


@pytest.mark.parametrize("rate_hz", [16000, 22050, 24000, 44100, 8000])
def test_resampled_1khz_sine_stays_1khz(rate_hz: int) -> None:
    seconds = 0.5
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    sine = (0.5 * np.sin(2 * np.pi * 1000 * t) * 32767).astype(np.int16)
    out = resample_to_8k(sine, rate_hz)
    assert out.dtype == np.int16
    assert abs(len(out) - SAMPLE_RATE_HZ * seconds) <= 1
    assert _dominant_hz(out, SAMPLE_RATE_HZ) == pytest.approx(1000, abs=4)
    middle = out[200:-200].astype(np.float64)  # away from the filter's edge transients
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.5 * 32767 / np.sqrt(2), rel=0.05)


def test_resample_takes_floats_at_full_scale_one() -> None:
    t = np.arange(24000) / 24000
    out = resample_to_8k(np.sin(2 * np.pi * 500 * t), 24000)
    assert 30000 < np.abs(out).max() <= 32767


def test_resample_rejects_bad_rate_and_stereo() -> None:
    with pytest.raises(ValueError, match="rate_hz"):
        resample_to_8k(np.zeros(10, dtype=np.int16), 0)
    with pytest.raises(ValueError, match="mono"):
        resample_to_8k(np.zeros((10, 2), dtype=np.int16), 16000)


def test_to_int16_clips_floats_and_refuses_wide_ints() -> None:
    np.testing.assert_array_equal(to_int16(np.array([2.0, -2.0, 0.0])), [32767, -32767, 0])
    with pytest.raises(ValueError, match="int16"):
        to_int16(np.array([40000]))


def test_audio_from_ulaw_duration_and_round_trip() -> None:
    data = bytes(range(256)) * 10
    audio = Audio.from_ulaw(data)
    assert audio.rate_hz == SAMPLE_RATE_HZ
    assert audio.duration_ms == len(data) / BYTES_PER_MS
    assert Audio.from_ulaw(audio.to_ulaw()).to_ulaw() == audio.to_ulaw()


def test_audio_concat_resamples_to_the_first_rate() -> None:
    a = Audio.silence(100)
    b = Audio(np.zeros(1600, dtype=np.int16), 16000)
    assert a.concat(b, a).duration_ms == pytest.approx(300)


def test_audio_plays_inline_in_ipython() -> None:
    ipython_display = pytest.importorskip("IPython.display")
    audio = Audio.from_ulaw(bytes(range(256)))
    player = audio.play()
    assert isinstance(player, ipython_display.Audio)
    assert "<audio" in audio._repr_html_()
    assert "<audio" in Audio.silence(0)._repr_html_()  # empty audio still renders


def test_quiet_audio_is_not_normalised_to_full_scale() -> None:
    pytest.importorskip("IPython.display")
    import io
    import wave

    quiet = Audio(np.full(800, 100, dtype=np.int16))
    with wave.open(io.BytesIO(quiet.play().data)) as wav:
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    assert np.abs(frames).max() < 200


@pytest.mark.parametrize("rate", [0, -8000, 8000.5, True])
def test_audio_refuses_a_rate_that_is_not_a_whole_positive_number(rate: object) -> None:
    """Audio(samples, 0) was made, then failed in its repr with ZeroDivisionError."""
    with pytest.raises(ValueError, match="rate_hz must be a whole number of Hz >= 1"):
        Audio(np.zeros(8, dtype=np.int16), rate)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="duration_ms must be a finite number >= 0, got -5"):
        Audio.silence(-5)
    assert Audio(np.zeros(8, dtype=np.int16), np.int64(16000)).rate_hz == 16000


def test_audio_refuses_more_than_one_channel_and_samples_that_are_not_numbers() -> None:
    with pytest.raises(ValueError, match=r"Audio: samples must be mono \(1-D\), got shape "
                                         r"\(100, 2\)"):  # fmt: skip
        Audio(np.zeros((100, 2), dtype=np.int16))
    with pytest.raises(ValueError, match=r"Audio: sample 1 is nan, not a finite number"):
        Audio(np.array([0.5, np.nan, np.inf]))
    with pytest.raises(ValueError, match=r"resample_to_8k: rate_hz must be a whole number of Hz"):
        resample_to_8k(np.zeros(10, dtype=np.int16), float("nan"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Audio.resampled: rate_hz must be a whole number of Hz "
                                         r">= 1, got 0"):  # fmt: skip
        Audio(np.zeros(10, dtype=np.int16)).resampled(0)

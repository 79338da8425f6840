"""G.711 mu-law at 8 kHz, resampling to 8 kHz, and an ``Audio`` value a notebook can play.

Twilio Media Streams and the Realtime ``g711_ulaw`` format both carry 8000 one-byte samples per
second. See notebooks/00_traces.ipynb.

The codec matches Python's ``audioop`` (``lin2ulaw``/``ulaw2lin``, width 2) exactly, because that
is the reference the original report's code used. ``audioop`` drops the two low bits of a 16-bit
sample with an arithmetic shift before encoding, so small negative samples (-1..-4) round towards
minus infinity and encode as the smallest negative code (0x7E), not as silence (0xFF) as the G.711
reference tables would. The difference is below one quantisation step and inaudible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from labkit.values import is_whole

SAMPLE_RATE_HZ = 8000
BYTES_PER_MS = SAMPLE_RATE_HZ // 1000  # one byte per sample
SILENCE_BYTE = 0xFF  # mu-law code of the sample 0

_ULAW_BIAS = 0x84
_ULAW_CLIP_14BIT = 8159  # largest 14-bit magnitude before the bias pushes it out of segment 7
_SEGMENT_ENDS_14BIT = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])

Int16Array = npt.NDArray[np.int16]


def _build_decode_table() -> Int16Array:
    inverted = np.arange(256, dtype=np.int32) ^ 0xFF  # mu-law stores every bit inverted
    magnitude = (((inverted & 0x0F) << 3) + _ULAW_BIAS) << ((inverted & 0x70) >> 4)
    linear = np.where(inverted & 0x80, _ULAW_BIAS - magnitude, magnitude - _ULAW_BIAS)
    return linear.astype(np.int16)


def _build_encode_table() -> npt.NDArray[np.uint8]:
    # Index i is the int16 whose bit pattern is i, so a sample array indexes it via .view(uint16).
    samples = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)
    scaled = samples >> 2  # 14-bit, rounding towards minus infinity like audioop
    negative = scaled < 0
    magnitude = np.minimum(np.abs(scaled), _ULAW_CLIP_14BIT) + (_ULAW_BIAS >> 2)
    segment = np.searchsorted(_SEGMENT_ENDS_14BIT, magnitude, side="left")
    mantissa = (magnitude >> np.minimum(segment + 1, 31)) & 0x0F
    code = np.where(segment >= 8, 0x7F, (segment << 4) | mantissa)
    mask = np.where(negative, 0x7F, 0xFF)
    encoded: npt.NDArray[np.uint8] = (code ^ mask).astype(np.uint8)
    return encoded


_DECODE_TABLE = _build_decode_table()
_ENCODE_TABLE = _build_encode_table()


def ulaw_decode(data: bytes) -> Int16Array:
    """Decode mu-law bytes to 16-bit linear PCM, one sample per byte."""
    codes = np.frombuffer(data, dtype=np.uint8)
    return _DECODE_TABLE[codes]


def ulaw_encode(pcm: npt.ArrayLike) -> bytes:
    """Encode 16-bit linear PCM samples to mu-law bytes (same output as ``audioop.lin2ulaw``)."""
    samples = np.ascontiguousarray(pcm)
    if samples.dtype != np.int16:
        raise TypeError(f"ulaw_encode expects int16 samples, got dtype {samples.dtype}")
    return bytes(_ENCODE_TABLE[samples.reshape(-1).view(np.uint16)])


def to_int16(pcm: npt.ArrayLike) -> Int16Array:
    """int16 unchanged; floats are full scale at +-1.0 (clipped) and must be finite; other ints
    must fit int16."""
    samples = np.asarray(pcm)
    if samples.dtype == np.int16:
        return samples.astype(np.int16, copy=False)
    if np.issubdtype(samples.dtype, np.floating):
        if not np.all(np.isfinite(samples)):
            first = int(np.flatnonzero(~np.isfinite(samples.reshape(-1)))[0])
            raise ValueError(f"sample {first} is {samples.reshape(-1)[first]}, not a finite "
                             f"number")  # fmt: skip
        scaled = np.rint(np.clip(samples.astype(np.float64), -1.0, 1.0) * 32767.0)
        rounded: npt.NDArray[np.int16] = scaled.astype(np.int16)
        return rounded
    if np.issubdtype(samples.dtype, np.integer):
        if samples.size and (samples.min() < -32768 or samples.max() > 32767):
            raise ValueError("integer samples outside the int16 range")
        return samples.astype(np.int16)
    raise TypeError(f"cannot treat dtype {samples.dtype} as audio samples")


def resample_to_8k(pcm: npt.ArrayLike, rate_hz: int) -> Int16Array:
    """Resample mono PCM (int16, or float at +-1.0 full scale) from ``rate_hz`` to 8 kHz int16."""
    _check_rate("resample_to_8k", rate_hz)
    samples = np.asarray(pcm)
    if samples.ndim != 1:
        raise ValueError(f"expected mono (1-D) samples, got shape {samples.shape}")
    if rate_hz == SAMPLE_RATE_HZ:
        return to_int16(samples)
    as_float = to_int16(samples).astype(np.float64) / 32767.0
    return to_int16(_resample(as_float, int(rate_hz), SAMPLE_RATE_HZ))


def _resample(
    samples: npt.NDArray[np.float64], from_hz: int, to_hz: int
) -> npt.NDArray[np.float64]:
    from scipy.signal import resample_poly  # imported here: scipy.signal takes ~1 s to import

    common = math.gcd(from_hz, to_hz)
    resampled = resample_poly(samples, to_hz // common, from_hz // common)
    return np.asarray(resampled, dtype=np.float64)


def _check_rate(what: str, rate_hz: object) -> None:
    """A ValueError unless ``rate_hz`` is a whole number of Hz >= 1 (not a bool, NaN or 8000.5)."""
    if not (is_whole(rate_hz) and rate_hz >= 1):
        raise ValueError(f"{what}: rate_hz must be a whole number of Hz >= 1, got {rate_hz!r}")


@dataclass(frozen=True, eq=False)
class Audio:
    """Mono 16-bit audio that plays inline in a notebook: ``trace.render().play()``."""

    samples: Int16Array
    rate_hz: int = SAMPLE_RATE_HZ

    def __post_init__(self) -> None:
        _check_rate("Audio", self.rate_hz)
        object.__setattr__(self, "rate_hz", int(self.rate_hz))
        samples = np.asarray(self.samples)
        if samples.ndim > 1:  # flattened, a stereo frame's channels would play one after another
            raise ValueError(f"Audio: samples must be mono (1-D), got shape {samples.shape}")
        try:
            object.__setattr__(self, "samples", to_int16(samples.reshape(-1)))
        except ValueError as error:
            raise ValueError(f"Audio: {error}") from None

    @classmethod
    def from_ulaw(cls, data: bytes) -> Audio:
        return cls(ulaw_decode(data), SAMPLE_RATE_HZ)

    @classmethod
    def silence(cls, duration_ms: float) -> Audio:
        if not (math.isfinite(duration_ms) and duration_ms >= 0):
            raise ValueError(f"Audio.silence: duration_ms must be a finite number >= 0, "
                             f"got {duration_ms!r}")  # fmt: skip
        count = round(duration_ms * SAMPLE_RATE_HZ / 1000)
        return cls(np.zeros(count, dtype=np.int16), SAMPLE_RATE_HZ)

    @property
    def duration_ms(self) -> float:
        return len(self.samples) * 1000.0 / self.rate_hz

    def __len__(self) -> int:
        return len(self.samples)

    def to_8k(self) -> Audio:
        return Audio(resample_to_8k(self.samples, self.rate_hz), SAMPLE_RATE_HZ)

    def to_ulaw(self) -> bytes:
        """mu-law bytes at 8 kHz (resampled first if needed)."""
        return ulaw_encode(self.to_8k().samples)

    def concat(self, *others: Audio) -> Audio:
        """This audio followed by ``others`` (each resampled to this rate if needed)."""
        parts = [self.samples, *(other.resampled(self.rate_hz).samples for other in others)]
        return Audio(np.concatenate(parts), self.rate_hz)

    def resampled(self, rate_hz: int) -> Audio:
        _check_rate("Audio.resampled", rate_hz)
        if rate_hz == self.rate_hz:
            return self
        floats = _resample(self.samples / 32767.0, int(self.rate_hz), int(rate_hz))
        return Audio(to_int16(floats), rate_hz)

    def play(self) -> Any:
        """An ``IPython.display.Audio`` of these samples (IPython is imported only here)."""
        from IPython.display import Audio as IPythonAudio

        # Floats at true scale with normalize=False, so quiet audio is not amplified to full scale;
        # one silent sample stands in for empty audio, which IPython refuses.
        samples = self.samples if len(self.samples) else np.zeros(1, dtype=np.int16)
        player: Any = IPythonAudio(data=samples / 32768.0, rate=self.rate_hz, normalize=False)  # type: ignore[no-untyped-call]
        return player

    def _repr_html_(self) -> str:
        html: str = self.play()._repr_html_()
        return html

    def __repr__(self) -> str:
        return f"Audio({len(self.samples)} samples, {self.rate_hz} Hz, {self.duration_ms:.0f} ms)"

"""How a Realtime model delivers one item's audio: delta sizes and arrival times (synthetic).

No public recording of real Realtime delta sizes and timings exists, so the lab's shipped traces
come from these documented, seeded models. Every draw comes from a ``numpy.random.Generator``
passed in, so a seed fixes a trace byte for byte. Units: mu-law bytes (8 per ms) and milliseconds.
See notebooks/00_traces.ipynb.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from labkit.values import is_real, is_whole

BYTES_PER_MS = 8  # mu-law, 8000 samples/s, 1 byte per sample
MIN_SPEED = 1e-3  # audio ms per wall-clock ms: slower would stretch one item over hours

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ArrivalModel:
    """Parameters of one delivery regime. Ranges ``(low, high)`` are drawn uniformly.

    - ``delta_bytes``: size of each audio delta (the last delta of an item may be shorter when
      the range cannot absorb the remainder, e.g. fixed 4800 B deltas).
    - ``speed``: audio ms produced per wall-clock ms, drawn once per item (1 = real time;
      5 = one second of audio in 200 ms, the "bursty" regime vendors report).
    - ``jitter_ms``: standard deviation of Gaussian noise on each delta's arrival (arrivals stay
      in order: noise never moves a delta before its predecessor).
    - ``stall_probability`` / ``stall_ms``: chance that a delta (not the first) arrives only after
      a stall, and the gap in ms since the delta before it.
    - ``first_audio_ms``: time to first audio, from ``turn_started`` to the item's first delta.
    - ``turn_end_ms``: from ``audio_done`` to ``turn_ended``.
    - ``caller_speaking_ms``: from ``turn_ended`` (or a barge-in) to the next ``turn_started``:
      the caller talks and the model's turn detection fires.
    - ``words_per_transcript``: words carried by each ``transcript_delta``.
    """

    name: str
    delta_bytes: tuple[int, int]
    speed: tuple[float, float]
    jitter_ms: float = 0.0
    stall_probability: float = 0.0
    stall_ms: tuple[float, float] = (100.0, 600.0)
    first_audio_ms: tuple[float, float] = (300.0, 800.0)
    turn_end_ms: tuple[float, float] = (5.0, 40.0)
    caller_speaking_ms: tuple[float, float] = (1500.0, 3500.0)
    words_per_transcript: int = 4

    def __post_init__(self) -> None:
        owner = f"ArrivalModel({self.name!r})"
        check_range(f"{owner}.delta_bytes", self.delta_bytes, minimum=1, integers=True)
        check_range(f"{owner}.speed", self.speed, minimum=MIN_SPEED)
        check_range(f"{owner}.stall_ms", self.stall_ms, minimum=0)
        check_range(f"{owner}.first_audio_ms", self.first_audio_ms, minimum=0)
        check_range(f"{owner}.turn_end_ms", self.turn_end_ms, minimum=0)
        check_range(f"{owner}.caller_speaking_ms", self.caller_speaking_ms, minimum=0)
        if not (is_real(self.jitter_ms) and math.isfinite(self.jitter_ms) and self.jitter_ms >= 0):
            raise ValueError(f"{owner}.jitter_ms must be finite and >= 0, got {self.jitter_ms!r}")
        probability = self.stall_probability
        if not (is_real(probability) and 0.0 <= probability <= 1.0):
            raise ValueError(f"{owner}.stall_probability must be in [0, 1], got {probability!r}")
        words = self.words_per_transcript
        if not (is_whole(words) and words >= 1):
            raise ValueError(f"{owner}.words_per_transcript must be an integer >= 1, got {words!r}")

    def parameters(self) -> dict[str, Any]:
        """The parameters as JSON-ready values (for a trace header)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def check_range(what: str, bounds: object, minimum: float, integers: bool = False) -> None:
    """Refuse ``bounds`` unless it is ``(low, high)``, finite, with ``minimum <= low <= high``
    (and both integers when ``integers``): numpy cannot draw from an infinite or float-bounded
    integer range, and would fail far from the parameter's name."""
    kind = "integers" if integers else "finite numbers"
    rule = f"{what} must be (low, high), {kind} with {minimum} <= low <= high, got {bounds!r}"
    if not (isinstance(bounds, tuple) and len(bounds) == 2):
        raise ValueError(rule)
    wanted = is_whole if integers else is_real
    if not all(wanted(bound) and math.isfinite(bound) for bound in bounds):
        raise ValueError(rule)
    if not minimum <= bounds[0] <= bounds[1]:
        raise ValueError(rule)


def draw_uniform(bounds: tuple[float, float], rng: np.random.Generator) -> float:
    """One uniform draw from ``[low, high]`` (always consumes one number, even if low == high)."""
    return float(rng.uniform(bounds[0], bounds[1]))


def split_into_deltas(total_bytes: int, model: ArrivalModel, rng: np.random.Generator) -> IntArray:
    """Delta sizes (bytes) that sum exactly to ``total_bytes``, each within ``model.delta_bytes``
    except, when the range is too narrow to absorb it, a shorter final delta."""
    if total_bytes < 1:
        raise ValueError(f"an item needs at least 1 byte of audio, got {total_bytes}")
    low, high = model.delta_bytes
    # Over-draw: the mean size is at least `low`, so this many always reach the total.
    draws = rng.integers(low, high, endpoint=True, size=total_bytes // low + 1)
    count = int(np.searchsorted(np.cumsum(draws), total_bytes)) + 1
    sizes = draws[:count].astype(np.int64)
    sizes[-1] = total_bytes - int(sizes[:-1].sum())
    return _absorb_short_tail(sizes, low, high)


def _absorb_short_tail(sizes: IntArray, low: int, high: int) -> IntArray:
    """Fold a final delta shorter than ``low`` into its predecessor, keeping both in range."""
    if len(sizes) < 2 or sizes[-1] >= low:
        return sizes
    pooled = int(sizes[-2] + sizes[-1])
    if pooled <= high:
        return np.concatenate([sizes[:-2], [pooled]]).astype(np.int64)
    if high >= 2 * low:  # pooled > high >= 2*low, so two halves both fit in [low, high]
        return np.concatenate([sizes[:-2], [pooled // 2, pooled - pooled // 2]]).astype(np.int64)
    return sizes


def arrival_offsets_ms(
    sizes: IntArray, model: ArrivalModel, rng: np.random.Generator
) -> FloatArray:
    """Arrival time of each delta, in ms after the item's first delta (so the first is 0).

    A model producing audio at ``speed`` sends a delta once its last byte is generated; stalls then
    stretch single gaps, jitter perturbs each arrival, and arrivals never reorder.
    """
    speed = draw_uniform(model.speed, rng)
    ends_ms = np.cumsum(sizes) / BYTES_PER_MS
    gaps = np.diff(ends_ms - ends_ms[0]) / speed
    stalled = rng.random(len(gaps)) < model.stall_probability
    stalls = rng.uniform(model.stall_ms[0], model.stall_ms[1], size=len(gaps))
    gaps = np.where(stalled, np.maximum(gaps, stalls), gaps)
    arrivals = np.concatenate([[0.0], np.cumsum(gaps)])
    noise = rng.normal(0.0, model.jitter_ms, size=len(arrivals)) if model.jitter_ms else 0.0
    arrivals = np.maximum(arrivals + noise, 0.0)
    arrivals[0] = 0.0
    return np.maximum.accumulate(arrivals).astype(np.float64)

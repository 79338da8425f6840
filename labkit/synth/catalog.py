"""The shipped synthetic traces: one entry per file in data/traces, each a delivery regime.

Each entry names its phrases (one item per turn), its arrival model and its seed; ``labkit synth
traces`` turns the list into data/traces/<name>.jsonl.gz, byte for byte.
See notebooks/00_traces.ipynb.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from labkit.synth.arrivals import ArrivalModel
from labkit.values import is_real, is_whole

TYPICAL_DELTA_BYTES = (240, 1200)  # 30-150 ms of audio per delta (an assumption; no public data)
TINY_DELTA_BYTES = (20, 60)  # what the original report logged
LARGE_DELTA_BYTES = (4800, 4800)  # 600 ms per delta


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The caller interrupts turn ``turn`` (0-based) ``after_ms`` after its first audio arrived."""

    turn: int
    after_ms: float

    def __post_init__(self) -> None:
        if not (is_whole(self.turn) and self.turn >= 0):
            raise ValueError(f"BargeIn.turn must be an integer >= 0, got {self.turn!r}")
        if not (is_real(self.after_ms) and math.isfinite(self.after_ms) and self.after_ms >= 0):
            raise ValueError(f"BargeIn.after_ms must be finite and >= 0, got {self.after_ms!r}")


@dataclass(frozen=True, slots=True)
class TraceSpec:
    """Recipe for one shipped trace."""

    name: str
    summary: str
    turns: tuple[str, ...]  # phrase name spoken in each turn
    model: ArrivalModel
    seed: int
    barge_ins: tuple[BargeIn, ...] = ()

    def __post_init__(self) -> None:
        owner = f"TraceSpec({self.name!r})"
        if not self.turns or not all(isinstance(phrase, str) for phrase in self.turns):
            raise ValueError(f"{owner}.turns must name one phrase or more, got {self.turns!r}")
        if not (is_whole(self.seed) and self.seed >= 0):
            raise ValueError(f"{owner}.seed must be an integer >= 0, got {self.seed!r}")
        _check_barge_ins(owner, self.barge_ins, len(self.turns))

    @property
    def file_name(self) -> str:
        return f"{self.name}.jsonl.gz"


def _check_barge_ins(owner: str, barge_ins: tuple[BargeIn, ...], turns: int) -> None:
    """Each barge-in cuts a turn the spec has, and no turn twice (a turn has one item, and
    the build applies one barge-in per turn)."""
    seen: set[int] = set()
    for barge_in in barge_ins:
        if not isinstance(barge_in, BargeIn):
            raise ValueError(f"{owner}.barge_ins must hold BargeIn entries, got {barge_in!r}")
        if barge_in.turn >= turns:
            raise ValueError(f"{owner}.barge_ins: turn {barge_in.turn} is outside the spec's "
                             f"turns 0..{turns - 1}")  # fmt: skip
        if barge_in.turn in seen:
            raise ValueError(f"{owner}.barge_ins: two barge-ins on turn {barge_in.turn}; "
                             "a turn can be cut only once")  # fmt: skip
        seen.add(barge_in.turn)


BURSTY = ArrivalModel("bursty", TYPICAL_DELTA_BYTES, speed=(4.0, 8.0), jitter_ms=2.0)
REALTIME_JITTER = ArrivalModel(
    "realtime_jitter", TYPICAL_DELTA_BYTES, speed=(1.0, 1.1), jitter_ms=15.0
)
TINY = ArrivalModel("tiny_deltas", TINY_DELTA_BYTES, speed=(1.5, 3.0), jitter_ms=1.0)
STALLS = ArrivalModel("stalls", TYPICAL_DELTA_BYTES, speed=(3.0, 6.0), stall_probability=0.08)
MULTI_TURN = ArrivalModel(
    "multi_turn",
    TYPICAL_DELTA_BYTES,
    speed=(1.5, 6.0),
    jitter_ms=5.0,
    first_audio_ms=(300.0, 1500.0),
    caller_speaking_ms=(1200.0, 4000.0),
)
LARGE = ArrivalModel("large_deltas", LARGE_DELTA_BYTES, speed=(2.0, 5.0), jitter_ms=5.0)
CONVERSATION = ArrivalModel(
    "conversation",
    TYPICAL_DELTA_BYTES,
    speed=(1.2, 6.0),
    jitter_ms=8.0,
    stall_probability=0.02,
    first_audio_ms=(300.0, 1200.0),
)

CATALOG: tuple[TraceSpec, ...] = (
    TraceSpec(
        "bursty",
        "deltas arrive 4-8x faster than real time (1 s of audio in 125-250 ms)",
        ("greeting", "order_status"),
        BURSTY,
        seed=101,
    ),
    TraceSpec(
        "realtime_jitter",
        "deltas arrive at 1.0-1.1x real time with 15 ms Gaussian jitter",
        ("how_can_i_help", "order_status"),
        REALTIME_JITTER,
        seed=102,
    ),
    TraceSpec(
        "tiny_deltas",
        "20-60 byte deltas (2.5-7.5 ms of audio each), as in the original report",
        ("greeting", "how_can_i_help"),
        TINY,
        seed=103,
    ),
    TraceSpec(
        "tiny_deltas_call",
        "an 8-turn call in the original report's 20-60 byte deltas (enough answers to count "
        "gaps at word starts per answer)",
        ("greeting", "how_can_i_help", "hold_on", "sorry", "transfer", "anything_else",
         "how_can_i_help", "goodbye"),
        TINY,
        seed=109,
    ),
    TraceSpec(
        "stalls",
        "bursty delivery interrupted by 100-600 ms stalls inside utterances",
        ("order_status", "refund_policy"),
        STALLS,
        seed=104,
    ),
    TraceSpec(
        "multi_turn",
        "six turns, each with its own time to first audio (300-1500 ms) after the caller speaks",
        ("greeting", "order_lookup", "hold_on", "order_status", "anything_else", "goodbye"),
        MULTI_TURN,
        seed=105,
    ),
    TraceSpec(
        "barge_in",
        "near real-time delivery; the caller barges in 2.5 s into the second turn's long answer",
        ("how_can_i_help", "refund_policy", "sorry"),
        REALTIME_JITTER,
        seed=106,
        barge_ins=(BargeIn(turn=1, after_ms=2500.0),),
    ),
    TraceSpec(
        "large_deltas",
        "4800 byte deltas (600 ms of audio each)",
        ("order_status", "confirm_address"),
        LARGE,
        seed=107,
    ),
    TraceSpec(
        "long_conversation",
        "a 16-turn call with more than 60 s of agent audio, mixed speeds and rare stalls",
        (
            "greeting",
            "order_lookup",
            "order_number",
            "hold_on",
            "order_status",
            "tracking",
            "confirm_address",
            "phone_number",
            "refund_policy",
            "sorry",
            "payment",
            "appointment",
            "transfer",
            "how_can_i_help",
            "anything_else",
            "goodbye",
        ),
        CONVERSATION,
        seed=108,
    ),
)


def spec_named(name: str) -> TraceSpec:
    """The catalog entry called ``name``, or an error listing the names that exist."""
    for spec in CATALOG:
        if spec.name == name:
            return spec
    known = ", ".join(spec.name for spec in CATALOG)
    raise KeyError(f"no shipped trace named {name!r}; known: {known}")

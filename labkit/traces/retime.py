"""A trace's answers delivered at another generation speed (x real time), the rest kept.

The speed at which the model generates audio sets how much cushion forwarding can build in
Twilio's queue, and no public data says what it is. To see where a verdict depends on it,
``at_generation_speed(trace, speed)`` stretches or squeezes each answer's delivery so that the
answer arrives at ``speed`` x real time on average, keeping the shape of its timing (the
relative spacing of its deltas, bursts and stalls); everything after an answer moves with its
end, so the caller's turns keep their length. The result says what it is: its header is
``synthetic`` with a ``generator`` naming this function, the speed and the source header.
See notebooks/06_which_explanation_survives.ipynb.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from labkit.traces.event import ItemKey, TraceEvent, make_header
from labkit.traces.trace import Trace


@dataclass(frozen=True)
class _Span:
    """One answer's audio: its first and last arrival and the factor its delivery is scaled by."""

    first_ms: float
    last_ms: float
    factor: float


def delivery_speed(trace: Trace, key: ItemKey) -> float:
    """How many times faster than real time answer ``key`` was delivered: the media time of its
    last delta over the time from its first delta to its last (inf if it came in one go)."""
    arrivals, offsets = trace.arrivals_ms(key), trace.offsets_ms(key)
    span_ms = float(arrivals[-1] - arrivals[0])
    return float(offsets[-1]) / span_ms if span_ms > 0 else math.inf


def at_generation_speed(trace: Trace, speed: float) -> Trace:
    """``trace`` with every answer delivered at ``speed`` x real time (see the module)."""
    if not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"at_generation_speed: speed must be a finite number > 0, got {speed!r}")
    spans = _spans(trace, speed)
    events = _retimed_events(trace, spans)
    header = make_header(
        "synthetic",
        f"{trace.description} [retimed: every answer delivered at {speed:g}x real time]",
        generator={
            "name": "labkit.traces.retime.at_generation_speed",
            "parameters": {"speed_x_real_time": speed},
            "from": trace.header,
        },
    )
    return Trace(header, events)


def _spans(trace: Trace, speed: float) -> list[_Span]:
    spans = []
    for key in trace.items:
        arrivals = trace.arrivals_ms(key)
        own = delivery_speed(trace, key)
        factor = own / speed if math.isfinite(own) else 1.0
        spans.append(_Span(float(arrivals[0]), float(arrivals[-1]), factor))
    for before, after in itertools.pairwise(spans):
        if after.first_ms < before.last_ms:
            raise ValueError("at_generation_speed: answers overlap in time (audio of one arrives "
                             "before the previous one's last delta); retiming needs them in turn")
    return spans


def _retimed_events(trace: Trace, spans: list[_Span]) -> list[TraceEvent]:
    """Events inside an answer's span are scaled about its start; the others shift by the
    growth of every answer before them."""
    out, shift_ms, k = [], 0.0, 0
    for event in trace.events:
        t = event.t_ms
        while k < len(spans) and t > spans[k].last_ms:
            span = spans[k]
            shift_ms += (span.last_ms - span.first_ms) * (span.factor - 1.0)
            k += 1
        if k < len(spans) and spans[k].first_ms <= t:
            span = spans[k]
            new_t = span.first_ms + shift_ms + (t - span.first_ms) * span.factor
        else:
            new_t = t + shift_ms
        out.append(TraceEvent(max(new_t, 0.0), event.type, dict(event.fields), event.audio))
    return out


"""A trace prepared for the simulator: the events a strategy is driven with, as plain lists.

Prepared once per trace (a sweep prepares each trace once per process), read by both drivers
(labkit/sim/sender.py, labkit/sim/simulator.py). See notebooks/01_why_tiny_packets_jitter.ipynb.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from labkit.outbound.base import AudioChunk
from labkit.traces import Trace

AUDIO, DONE, INTERRUPTED = 0, 1, 2
TRACE_EVENT_CODES = {"audio": AUDIO, "audio_done": DONE, "audio_interrupted": INTERRUPTED}


@dataclass(frozen=True)
class PreparedTrace:
    """The parts of a trace the loop reads, as plain lists (prepared once per trace in a sweep)."""

    name: str
    times_ms: list[float]
    codes: list[int]
    keys: list[tuple[str, int]]
    payloads: list[bytes]
    origins_ms: dict[tuple[str, int], float]  # when each item's first byte was delivered
    interrupts_ms: list[float]
    audio_bytes: int = 0  # all audio bytes of the trace
    # each event as the chunk a push takes: built once per trace, not once per run
    chunks: list[AudioChunk] = field(default_factory=list)

    @cached_property
    def item_audio(self) -> dict[tuple[str, int], bytes]:
        """Each item's audio as one string, joined once per trace (only rendering needs it)."""
        parts: dict[tuple[str, int], list[bytes]] = {}
        for key, payload in zip(self.keys, self.payloads, strict=True):
            if payload:
                parts.setdefault(key, []).append(payload)
        return {key: b"".join(chunks) for key, chunks in parts.items()}


def prepare(trace: Trace, name: str = "") -> PreparedTrace:
    """Extract the events the simulator drives the strategy with."""
    times, codes, keys, payloads = [], [], [], []
    sizes: dict[tuple[str, int], int] = {}
    origins: dict[tuple[str, int], float] = {}
    for event in trace.events:
        code = TRACE_EVENT_CODES.get(event.type)
        key = event.key
        if code is None or key is None:
            continue
        times.append(float(event.t_ms))
        codes.append(code)
        keys.append(key)
        payloads.append(event.audio)
        if code == AUDIO:
            sizes[key] = sizes.get(key, 0) + len(event.audio)
            origins.setdefault(key, float(event.t_ms))
    interrupts = [t for t, c in zip(times, codes, strict=True) if c == INTERRUPTED]
    chunks = [AudioChunk(item_id, index, payload)
              for (item_id, index), payload in zip(keys, payloads, strict=True)]  # fmt: skip
    return PreparedTrace(name, times, codes, keys, payloads, origins, interrupts,
                         sum(sizes.values()), chunks)  # fmt: skip



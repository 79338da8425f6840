"""Micro-benchmark of the outbound strategies (plain script: prints a table).

For every strategy: nanoseconds per pushed chunk on tiny 20-60 B deltas (the original
report's sizes), next to the original report's list-of-chunks buffer that sums every length on
each push, as a ratio; and messages (media + mark) per second of audio on a 1x stream.
Run: .venv/bin/python benchmarks/bench_outbound.py [--seconds 60]
See notebooks/01_why_tiny_packets_jitter.ipynb.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from labkit.outbound import STRATEGY_NAMES, AudioChunk, Media, make_strategy
from labkit.outbound.base import BYTES_PER_MS

THRESHOLD_MS = 50.0


def deltas(audio_s: float, seed: int = 0) -> list[tuple[float, AudioChunk]]:
    """Deltas of 20-60 B arriving at 1x real time, 1 item per 3 s of audio."""
    rng = random.Random(seed)
    out: list[tuple[float, AudioChunk]] = []
    media_ms, item = 0.0, 0
    while media_ms < audio_s * 1000:
        size = rng.randint(20, 60)
        if media_ms // 3000 != item:
            item = int(media_ms // 3000)
        out.append((media_ms, AudioChunk(f"item{item}", 0, bytes(size))))
        media_ms += size / BYTES_PER_MS
    return out


def drive(strategy: Any, chunks: list[tuple[float, AudioChunk]]) -> tuple[float, int, int]:
    """Push every chunk, polling at deadlines and echoing every mark at once.
    Returns (seconds spent, media messages, mark messages)."""
    media = marks = 0
    last_item = chunks[0][1].item_id
    started = time.perf_counter()
    now = 0.0
    for now, chunk in chunks:
        while (deadline := strategy.next_deadline()) is not None and deadline <= now:
            out = strategy.poll(deadline)
            media, marks = _count(strategy, out, deadline, media, marks)
        if chunk.item_id != last_item:
            out = strategy.end(last_item, 0, now)
            media, marks = _count(strategy, out, now, media, marks)
            last_item = chunk.item_id
        out = strategy.push(chunk, now)
        media, marks = _count(strategy, out, now, media, marks)
    out = strategy.end(last_item, 0, now)
    media, marks = _count(strategy, out, now, media, marks)
    while (deadline := strategy.next_deadline()) is not None:
        now = max(now, deadline)
        media, marks = _count(strategy, strategy.poll(now), now, media, marks)
    return time.perf_counter() - started, media, marks


def _count(strategy: Any, out: list[Any], now: float, media: int, marks: int) -> tuple[int, int]:
    for message in out:
        if isinstance(message, Media):
            media += 1 if message.payload else 0
            marks += len(message.marks)
            for mark in message.marks:
                strategy.echo(mark.name, now)
    return media, marks


class SeedListBuffer:
    """The bare data structure of the original report: a list of chunks, lengths summed on
    every push, joined at 400 B. No marks, no timers: the floor any buffer is compared to."""

    def __init__(self, threshold_bytes: int) -> None:
        self.threshold_bytes = threshold_bytes
        self.chunks: list[bytes] = []
        self.sent: list[bytes] = []

    def push(self, data: bytes) -> None:
        self.chunks.append(data)
        if sum(len(chunk) for chunk in self.chunks) >= self.threshold_bytes:
            self.sent.append(b"".join(self.chunks))
            self.chunks.clear()


def seed_list_ns(chunks: list[tuple[float, AudioChunk]], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        buffer = SeedListBuffer(int(THRESHOLD_MS * BYTES_PER_MS))
        started = time.perf_counter()
        for _, chunk in chunks:
            buffer.push(chunk.data)
        best = min(best, time.perf_counter() - started)
    return best / len(chunks) * 1e9


def best_of(name: str, options: dict[str, Any], chunks: list[tuple[float, AudioChunk]],
            repeats: int) -> tuple[float, int, int]:
    runs = [drive(make_strategy(name, THRESHOLD_MS, **options), chunks) for _ in range(repeats)]
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of audio")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    chunks = deltas(args.seconds)
    audio_s = sum(len(c.data) for _, c in chunks) / BYTES_PER_MS / 1000
    rows: list[tuple[str, dict[str, Any]]] = [
        ("original_report", {"variant": "fixed"}),
        *[(name, {}) for name in STRATEGY_NAMES],
        ("rechunk", {"align_frames": True}),
        ("forward", {"mark_every_ms": None}),
    ]
    baseline_ns = seed_list_ns(chunks, args.repeats)
    print(f"{len(chunks)} deltas of 20-60 B, {audio_s:.1f} s of audio at 1x, "
          f"threshold_ms={THRESHOLD_MS:g}, marks every 100 ms unless noted")
    header = (f"{'strategy':32} {'ns/chunk':>9} {'vs seed':>8} {'media/s':>8} {'marks/s':>8} "
              f"{'msgs/s':>7}")
    print(header)
    print("-" * len(header))
    print(f"{'seed list buffer (bare)':32} {baseline_ns:9.0f} {1.0:8.2f}")
    for name, options in rows:
        seconds, media, marks = best_of(name, options, chunks, args.repeats)
        ns = seconds / len(chunks) * 1e9
        label = " ".join([name, *(f"{k}={v}" for k, v in options.items())])
        print(f"{label:32} {ns:9.0f} {ns / baseline_ns:8.2f} {media / audio_s:8.1f} "
              f"{marks / audio_s:8.1f} {(media + marks) / audio_s:7.1f}")
    print(f"vs seed: ns per chunk / the bare list-of-chunks buffer summing lengths on every push "
          f"({baseline_ns:.0f} ns/chunk, no marks, no timers). Strategy rows include the driver "
          f"loop: next_deadline/poll, end, and echoing every mark at once.")


if __name__ == "__main__":
    main()

"""Cost of what-the-caller-hears: G.711 Appendix I concealment and P.862 scoring of a call.

Run: ``.venv/bin/python benchmarks/bench_quality.py [--rounds 3]``. A call is the shipped phrases
(data/audio) back to back with 0.5 s pauses, cut to 10 s and to 98 s (the longest shipped trace's
agent audio). About 5 % of its duration is then inserted as 20-60 ms gaps at random places (seeded),
as a FIFO underrun inserts them, and the rendered timeline is concealed (``labkit.plc.conceal``)
and scored against the call without gaps, in one P.862 run (``labkit.quality.mos_lqo``) and in
10 s chunks (``mos_lqo_chunks``, what a long call needs). Each figure is the median
over rounds of the best of a few tries (this 2-core machine is shared); ratios compare figures of
the same run. The explorer's budget for work done inline is about 100 ms.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from labkit.audio import SAMPLE_RATE_HZ, ulaw_decode
from labkit.plc import conceal
from labkit.quality import mos_lqo, mos_lqo_chunks

AUDIO_DIR = Path(__file__).resolve().parents[1] / "data" / "audio"
CALL_SECONDS = (10.0, 98.0)
ERASED_FRACTION = 0.05
GAP_MS = (20, 60)
INLINE_BUDGET_MS = 100.0
TRIES = 3
SEED = 15

Pcm = npt.NDArray[np.int16]


def call_audio(seconds: float) -> Pcm:
    """The phrases in name order, 0.5 s apart, repeated as needed and cut to ``seconds``."""
    pause = np.zeros(SAMPLE_RATE_HZ // 2, dtype=np.int16)
    phrases = [ulaw_decode(path.read_bytes()) for path in sorted(AUDIO_DIR.glob("*.ulaw"))]
    wanted = round(seconds * SAMPLE_RATE_HZ)
    parts: list[Pcm] = []
    while sum(len(part) for part in parts) < wanted:
        for phrase in phrases:
            parts += [pause, phrase]
    return np.concatenate(parts)[:wanted]


def with_gaps(reference: Pcm, rng: np.random.Generator) -> tuple[Pcm, list[tuple[int, int]]]:
    """``reference`` with ~5 % of its length inserted as 20-60 ms silent gaps, and the gaps."""
    budget = ERASED_FRACTION * len(reference)
    lengths: list[int] = []
    while sum(lengths) < budget:
        lengths.append(int(rng.integers(GAP_MS[0], GAP_MS[1] + 1)) * SAMPLE_RATE_HZ // 1000)
    places = np.sort(rng.choice(np.arange(1, len(reference)), size=len(lengths), replace=False))
    pieces, gaps, previous, shift = [], [], 0, 0
    for place, length in zip(places, lengths, strict=True):
        pieces += [reference[previous:place], np.zeros(length, dtype=np.int16)]
        gaps.append((int(place) + shift, int(place) + shift + length))
        previous, shift = int(place), shift + length
    return np.concatenate([*pieces, reference[previous:]]), gaps


def chunk_mean(reference: Pcm, degraded: Pcm, gaps: list[tuple[int, int]]) -> float:
    return statistics.mean(score for _, _, score in mos_lqo_chunks(reference, degraded, gaps))


def best_of(work: Callable[[], object]) -> float:
    times = []
    for _ in range(TRIES):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3, help="repeat everything; report each")
    args = parser.parse_args()
    mos_lqo(call_audio(1.0), call_audio(1.0))  # load the C extension outside the timings
    rows: dict[float, dict[str, list[float]]] = {}
    for seconds in CALL_SECONDS:
        reference = call_audio(seconds)
        rendered, gaps = with_gaps(reference, np.random.default_rng(SEED))
        concealed = conceal(rendered, gaps)
        gap_ms = sum(end - start for start, end in gaps) / 8
        print(
            f"{seconds:.0f} s call: {len(gaps)} gaps, {gap_ms:.0f} ms inserted; MOS-LQO in one run:"
            f" silence {mos_lqo(reference, rendered):.2f},"
            f" G.711 PLC {mos_lqo(reference, concealed):.2f}; mean of 10 s chunks:"
            f" silence {chunk_mean(reference, rendered, gaps):.2f},"
            f" G.711 PLC {chunk_mean(reference, concealed, gaps):.2f}"
        )
        rows[seconds] = {"conceal": [], "score": [], "chunks": []}
    for round_no in range(1, args.rounds + 1):
        print(f"round {round_no}")
        for seconds in CALL_SECONDS:
            reference = call_audio(seconds)
            rendered, gaps = with_gaps(reference, np.random.default_rng(SEED))
            concealed = conceal(rendered, gaps)
            conceal_s = best_of(lambda: conceal(rendered, gaps))  # noqa: B023 (used at once)
            score_s = best_of(lambda: mos_lqo(reference, concealed))  # noqa: B023
            chunks_s = best_of(lambda: mos_lqo_chunks(reference, concealed, gaps))  # noqa: B023
            rows[seconds]["conceal"].append(conceal_s)
            rows[seconds]["score"].append(score_s)
            rows[seconds]["chunks"].append(chunks_s)
            print(
                f"  {seconds:3.0f} s: conceal {conceal_s * 1000:7.2f} ms,"
                f" score {score_s * 1000:7.1f} ms, in chunks {chunks_s * 1000:7.1f} ms"
            )
    report(rows)


def report(rows: dict[float, dict[str, list[float]]]) -> None:
    print(f"median of rounds (inline budget {INLINE_BUDGET_MS:.0f} ms)")
    medians = {
        s: {k: statistics.median(v) * 1000 for k, v in row.items()} for s, row in rows.items()
    }
    for seconds, row in medians.items():
        total = row["conceal"] + row["chunks"]
        print(
            f"  {seconds:3.0f} s call: conceal {row['conceal']:7.2f} ms,"
            f" score {row['score']:7.1f} ms (in chunks {row['chunks']:7.1f} ms);"
            f" conceal + chunks {total:7.1f} ms = {total / INLINE_BUDGET_MS:5.2f}x budget,"
            f" {seconds * 1000 / total:5.0f}x real time"
        )
    short, long = medians[CALL_SECONDS[0]], medians[CALL_SECONDS[1]]
    length_ratio = CALL_SECONDS[1] / CALL_SECONDS[0]
    print(
        f"  98 s / 10 s: conceal {long['conceal'] / short['conceal']:.1f}x,"
        f" score {long['score'] / short['score']:.1f}x, in chunks"
        f" {long['chunks'] / short['chunks']:.1f}x (audio {length_ratio:.1f}x);"
        f" scoring is {short['score'] / short['conceal']:.0f}x (10 s)"
        f" and {long['score'] / long['conceal']:.0f}x (98 s) the concealment"
    )


if __name__ == "__main__":
    main()

"""What the caller hears: the played audio on a timeline, its gaps concealed as a phone line does.

When Twilio's queue runs dry it sends the carrier nothing, and the carrier (or the handset)
conceals the missing frames; the standard concealment for G.711 is ITU-T G.711 Appendix I
(labkit/plc.py), which repeats the last pitch period with fading: one reason a gap at a word start
sounds like "h-h-" and not like silence. Silence a playout model inserts itself (``fills``: a
frame padded with silence) reached the carrier as audio and stays silence.

``render_caller(result, conceal="plc" | "silence")`` builds the call's 8 kHz timeline from the
run's played pieces: each answer's bytes in order, a gap wherever one piece starts after the one
before it ended. ``CallerAudio.answers`` pairs each answer's *reference* (its own audio played
without gaps) with its *degraded* rendering and the gap ranges inserted into it, aligned by
construction: the degraded audio is the reference with those ranges inserted, sample for sample
(what ``labkit.quality.mos_lqo_chunks`` needs). ``mos_lqo(result)`` scores a run by P.862.
See notebooks/08_what_the_caller_hears.ipynb.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from labkit.audio import SAMPLE_RATE_HZ, Audio, Int16Array, ulaw_decode
from labkit.plc import conceal as plc_conceal
from labkit.sim.batch_playout import Pieces
from labkit.sim.playout import Fill

SAMPLES_PER_MS = SAMPLE_RATE_HZ // 1000
CONCEAL_MODES = ("plc", "silence")
# What the caller hears is held whole (2 bytes a sample, and its WAV as much again): a call whose
# answers lie days apart in its trace would take gigabytes. Beyond this it is refused.
MAX_RENDER_MS = 4 * 60 * 60 * 1000
ItemKey = tuple[str, int]
Span = tuple[int, int]  # half-open sample range


class PlayedRun(Protocol):
    """What rendering reads of a run (``labkit.sim.simulator.SimResult`` has it)."""

    @property
    def columns(self) -> dict[str, Any]: ...

    @property
    def pieces(self) -> Pieces | None: ...

    @property
    def fills(self) -> list[Fill]: ...

    @property
    def item_audio(self) -> dict[tuple[str, int], bytes]: ...


@dataclass(frozen=True)
class Answer:
    """One answer (or a run of it: its part after a clear or another answer) as heard: its own
    audio (reference), its rendering (degraded, from sample ``start`` of the call) and the gap
    ranges inserted into it (in degraded samples)."""

    key: ItemKey
    start: int
    reference: Int16Array
    degraded: Int16Array
    inserted: list[Span]

    @property
    def inserted_ms(self) -> float:
        return sum(end - begin for begin, end in self.inserted) / SAMPLES_PER_MS


@dataclass(frozen=True)
class CallerAudio:
    """The call as heard from t=0 (session start), at 8 kHz, with what was concealed."""

    samples: Int16Array
    conceal: str
    erasures: list[Span]  # nothing was sent: concealed (plc) or silent
    fills: list[Span]  # silence the playout model inserted
    answers: list[Answer] = field(default_factory=list)

    @property
    def audio(self) -> Audio:
        return Audio(self.samples, SAMPLE_RATE_HZ)

    def play(self) -> object:
        return self.audio.play()


def render_caller(result: PlayedRun, conceal: str = "plc") -> CallerAudio:
    """The caller's audio of one run, gaps concealed (``"plc"``) or left silent."""
    if conceal not in CONCEAL_MODES:
        raise ValueError(f"render: unknown conceal {conceal!r}; choose one of "
                         f"{', '.join(CONCEAL_MODES)}")  # fmt: skip
    layout = _layout(result)
    total = max((start + len(pcm) for _, start, pcm, _ in layout), default=0)
    _check_span(total)
    samples = np.zeros(total, dtype=np.int16)
    gaps: list[Span] = []
    heard: list[Span] = []
    for _, start, pcm, inserted in layout:
        # an answer's audio, not its gaps: another answer may play in them (its item resumed)
        for begin, end in _minus([(0, len(pcm))], inserted):
            samples[start + begin : start + end] = pcm[begin:end]
            heard.append((start + begin, start + end))
        gaps += [(start + begin, start + end) for begin, end in inserted]
    fills = _fill_spans(result, total)
    erasures = _minus(_minus(sorted(gaps), fills), _merged(heard))
    if conceal == "plc" and erasures:
        samples = plc_conceal(samples, erasures)
    answers = [Answer(key, start, _without(pcm, inserted), samples[start : start + len(pcm)],
                      inserted) for key, start, pcm, inserted in layout]  # fmt: skip
    return CallerAudio(samples, conceal, erasures, fills, answers)


def mos_lqo(result: PlayedRun, conceal: str = "plc") -> float:
    """P.862 MOS-LQO of the run: each answer's rendering against its own audio (in 10 s chunks,
    labkit.quality), the mean weighted by reference length; NaN when no answer is long enough
    to score (0.25 s of speech)."""
    from labkit.quality import MIN_SAMPLES, mos_lqo_chunks

    scores, weights = [], []
    for answer in render_caller(result, conceal).answers:
        if len(answer.reference) < MIN_SAMPLES or not np.any(answer.reference):
            continue
        for begin, end, score in mos_lqo_chunks(answer.reference, answer.degraded,
                                                answer.inserted):  # fmt: skip
            scores.append(score)
            weights.append(end - begin)
    if not scores:
        return math.nan
    return float(np.average(scores, weights=weights))


def _layout(result: PlayedRun) -> list[tuple[ItemKey, int, Int16Array, list[Span]]]:
    """Per answer: its key, first sample, rendered PCM (silence in the gaps) and gap ranges.
    Pieces keep their own lengths; a gap is where a piece starts later than the one before it
    ended (in whole samples), so the rendering is the reference with the gaps inserted."""
    layout = []
    for (key, _), pieces in _pieces_by_answer(result).items():
        first = _sample(pieces[0][0])
        _check_span(_sample(pieces[-1][0]) + len(pieces[-1][1]))  # before any silence is made
        parts: list[Int16Array] = []
        inserted: list[Span] = []
        at = 0
        for start_ms, data in pieces:
            gap = _sample(start_ms) - first - at
            if gap > 0 and parts:
                parts.append(np.zeros(gap, dtype=np.int16))
                inserted.append((at, at + gap))
                at += gap
            parts.append(ulaw_decode(data))
            at += len(data)
        layout.append((key, first, np.concatenate(parts), inserted))
    return layout


def _check_span(end_sample: int) -> None:
    """Refuse a rendering that would reach past MAX_RENDER_MS (a delta hours into a trace)."""
    if end_sample > MAX_RENDER_MS * SAMPLES_PER_MS:
        span_h = end_sample / SAMPLE_RATE_HZ / 3600
        raise ValueError(f"render: the caller's audio would span {span_h:.1f} h from the call's "
                         f"start; labkit renders at most {MAX_RENDER_MS / 3_600_000:g} h")


def _pieces_by_answer(
    result: PlayedRun,
) -> dict[tuple[ItemKey, int], list[tuple[float, bytes]]]:
    """Each answer's played pieces, (start ms, mu-law bytes), in the order they played, keyed by
    its item and a run number: an answer's rows that follow one another (in the order they were
    sent, as labkit.sim.metrics counts gaps) are one run. A clear inside an answer, or another
    answer's audio, starts a new run, rendered (and scored) apart: the silence across a clear is
    the barge-in's, and one around another answer's audio is no gap inside this one."""
    columns, audio = result.columns, result.item_audio
    kinds = list(columns["kind"])
    media_rows = [row for row, kind in enumerate(kinds) if kind == "media"]
    clears_before = list(itertools.accumulate(kind == "clear" for kind in kinds))
    by_row: dict[int, list[tuple[float, int]]] = {}
    if result.pieces is not None:
        for row, start, count in zip(result.pieces.rows.tolist(), result.pieces.start_ms.tolist(),
                                     result.pieces.bytes.tolist(), strict=True):  # fmt: skip
            by_row.setdefault(row, []).append((start, count))
    pieces: dict[tuple[ItemKey, int], list[tuple[float, bytes]]] = {}
    runs, last = 0, None
    for row in media_rows:
        played = int(columns["played_bytes"][row])
        if played <= 0:
            continue
        key = (str(columns["item_id"][row]), int(columns["content_index"][row]))
        if (key, clears_before[row]) != last:
            runs, last = runs + 1, (key, clears_before[row])
        offset = int(columns["offset"][row])
        spans = by_row.get(row) or [(float(columns["play_start_ms"][row]), played)]
        answer = pieces.setdefault((key, runs), [])
        for start, count in spans:
            answer.append((start, audio[key][offset : offset + count]))
            offset += count
    for answer in pieces.values():
        answer.sort(key=lambda piece: piece[0])
    return pieces


def _fill_spans(result: PlayedRun, total: int) -> list[Span]:
    spans = [(_sample(start), min(_sample(end), total)) for start, end in result.fills]
    return [(begin, end) for begin, end in spans if end > begin]


def _minus(spans: Sequence[Span], holes: Sequence[Span]) -> list[Span]:
    """``spans`` with every range of ``holes`` taken out (both sorted)."""
    out: list[Span] = []
    for begin, end in spans:
        cursor = begin
        for hole_begin, hole_end in holes:
            if hole_end <= cursor or hole_begin >= end:
                continue
            if hole_begin > cursor:
                out.append((cursor, hole_begin))
            cursor = max(cursor, hole_end)
        if cursor < end:
            out.append((cursor, end))
    return _merged(out)


def _merged(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def _without(pcm: Int16Array, inserted: list[Span]) -> Int16Array:
    keep = np.ones(len(pcm), dtype=bool)
    for begin, end in inserted:
        keep[begin:end] = False
    kept: Int16Array = pcm[keep]
    return kept


def _sample(ms: float) -> int:
    return max(round(ms * SAMPLES_PER_MS), 0)


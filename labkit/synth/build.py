"""Assemble a synthetic trace: turns of phrase audio, cut into deltas that arrive per a model.

Each turn is ``turn_started -> audio deltas (with transcript deltas) -> audio_done -> turn_ended``,
one item per turn whose audio is exactly the phrase's bytes; the caller speaks between turns. A
barge-in stops the item's audio at that instant and emits ``audio_interrupted`` instead of
``audio_done``. Pure: the same spec, audio and seed give the same events.
See notebooks/00_traces.ipynb.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labkit.audio import BYTES_PER_MS
from labkit.synth.arrivals import (
    ArrivalModel,
    FloatArray,
    IntArray,
    arrival_offsets_ms,
    draw_uniform,
    split_into_deltas,
)
from labkit.synth.catalog import BargeIn, TraceSpec
from labkit.traces import Trace, TraceEvent, audio_event, item_event, make_header, turn_event

GENERATOR_NAME = "labkit.synth"
CONTENT_INDEX = 0
TIME_DECIMALS = 3  # t_ms to the microsecond keeps the JSON short and exact across runs


def _ms(value: float) -> float:
    return round(float(value), TIME_DECIMALS)


@dataclass(frozen=True, slots=True)
class _Delivery:
    """One item's deltas as delivered: sizes, arrival times and where (if anywhere) it was cut."""

    sizes: IntArray
    arrivals_ms: FloatArray
    interrupted_at_ms: float | None


def _deliver(
    audio_bytes: int,
    first_ms: float,
    model: ArrivalModel,
    rng: np.random.Generator,
    barge_in: BargeIn | None,
    where: str,
) -> _Delivery:
    sizes = split_into_deltas(audio_bytes, model, rng)
    arrivals = first_ms + arrival_offsets_ms(sizes, model, rng)
    if barge_in is None:
        return _Delivery(sizes, arrivals, None)
    cut_ms = first_ms + barge_in.after_ms
    kept = int(np.searchsorted(arrivals, cut_ms, side="right"))
    if not 0 < kept < len(sizes):
        raise ValueError(
            f"{where}: barge-in {barge_in.after_ms} ms after first audio is not mid-item "
            f"(its audio arrives over {arrivals[-1] - first_ms:.0f} ms)"
        )
    return _Delivery(sizes[:kept], arrivals[:kept], cut_ms)


def _transcript_positions(words: list[str], deltas: int, per_delta: int) -> dict[int, str]:
    """Delta index -> transcript text sent just before it, spreading the words over the item."""
    groups = [" ".join(words[i : i + per_delta]) for i in range(0, len(words), per_delta)]
    positions: dict[int, str] = {}
    for g, text in enumerate(groups):
        index = g * deltas // len(groups)
        positions[index] = f"{positions[index]} {text}" if index in positions else text
    return positions


def _item_events(
    response_id: str, item_id: str, text: str, audio: bytes, delivery: _Delivery, words: int
) -> list[TraceEvent]:
    """The item's audio deltas, each transcript delta just before the audio it belongs to."""
    spoken = _transcript_positions(text.split(), len(delivery.sizes), words)
    events: list[TraceEvent] = []
    offset = 0
    arrivals = delivery.arrivals_ms.tolist()
    for index, (size, t_ms) in enumerate(zip(delivery.sizes.tolist(), arrivals, strict=True)):
        if index in spoken:
            fields = {"response_id": response_id, "item_id": item_id, "delta": spoken[index]}
            events.append(TraceEvent(_ms(t_ms), "transcript_delta", fields))
        chunk = audio[offset : offset + size]
        events.append(audio_event(_ms(t_ms), response_id, item_id, CONTENT_INDEX, chunk))
        offset += size
    return events


def _turn_events(
    turn: int, text: str, audio: bytes, start_ms: float, spec: TraceSpec, rng: np.random.Generator
) -> tuple[list[TraceEvent], float]:
    """The events of one turn, and when the caller may start speaking again.

    The caller answers only once they have heard the agent out: not before the item's audio
    could have finished playing at real time from its first byte (unless they barged in, in
    which case they are already speaking). Otherwise bursty delivery would start the next turn
    while Twilio still plays the previous answer.
    """
    model = spec.model
    response_id, item_id = f"resp_{turn + 1:03d}", f"item_{turn + 1:03d}"
    barge_in = next((b for b in spec.barge_ins if b.turn == turn), None)
    first_ms = start_ms + draw_uniform(model.first_audio_ms, rng)
    where = f"trace {spec.name!r} turn {turn}"
    delivery = _deliver(len(audio), first_ms, model, rng, barge_in, where)
    events = [turn_event("turn_started", _ms(start_ms), response_id)]
    events += _item_events(response_id, item_id, text, audio, delivery, model.words_per_transcript)
    if delivery.interrupted_at_ms is None:
        audio_end_ms, kind = float(delivery.arrivals_ms[-1]), "audio_done"
    else:
        audio_end_ms, kind = delivery.interrupted_at_ms, "audio_interrupted"
    events.append(item_event(kind, _ms(audio_end_ms), item_id, CONTENT_INDEX))
    end_ms = audio_end_ms + draw_uniform(model.turn_end_ms, rng)
    events.append(turn_event("turn_ended", _ms(end_ms), response_id))
    if delivery.interrupted_at_ms is not None:
        return events, end_ms
    heard_out_ms = float(delivery.arrivals_ms[0]) + len(audio) / BYTES_PER_MS
    return events, max(end_ms, heard_out_ms)


def build_events(
    spec: TraceSpec, audio: Mapping[str, bytes], texts: Mapping[str, str]
) -> list[TraceEvent]:
    """Every event of ``spec``'s trace, in arrival order, from the phrase audio and texts."""
    _check_turns(spec, audio, texts)
    rng = np.random.default_rng(spec.seed)
    events: list[TraceEvent] = []
    start_ms = 0.0
    for turn, phrase in enumerate(spec.turns):
        turn_events, end_ms = _turn_events(turn, texts[phrase], audio[phrase], start_ms, spec, rng)
        events.extend(turn_events)
        start_ms = end_ms + draw_uniform(spec.model.caller_speaking_ms, rng)
    return events


def _check_turns(spec: TraceSpec, audio: Mapping[str, bytes], texts: Mapping[str, str]) -> None:
    missing = sorted({p for p in spec.turns if p not in audio or p not in texts})
    if missing:
        raise KeyError(f"trace {spec.name!r} needs phrases with no audio or text: {missing}")
    # TraceSpec itself refuses barge-ins on turns it does not have, or twice on one turn.


def header_for(spec: TraceSpec, espeak_version: str) -> dict[str, Any]:
    """The trace header: says it is synthetic, how it was made, and how to make it again."""
    description = (
        f"Synthetic trace: {spec.summary}. Made by labkit.synth from espeak-ng {espeak_version} "
        f"speech (8 kHz mu-law, data/audio) with the '{spec.model.name}' arrival model, seed "
        f"{spec.seed}; regenerate with `labkit synth traces --only {spec.name}`. Not a recording: "
        "no public recording of real Realtime delta timings exists (record your own with "
        "`labkit serve --record`)."
    )
    generator = {
        "name": GENERATOR_NAME,
        "trace": spec.name,
        "arrival_model": spec.model.name,
        "parameters": spec.model.parameters(),
        "seed": spec.seed,
        "phrases": list(spec.turns),
        "barge_ins": [{"turn": b.turn, "after_ms": b.after_ms} for b in spec.barge_ins],
        "speech": {"engine": "espeak-ng", "version": espeak_version},
    }
    return make_header("synthetic", description, generator=generator)


def build_trace(
    spec: TraceSpec, audio: Mapping[str, bytes], phrases: Mapping[str, Mapping[str, Any]]
) -> Trace:
    """The trace ``spec`` describes; ``phrases`` is phrases.json (name -> {text, ...})."""
    texts = {name: str(meta["text"]) for name, meta in phrases.items()}
    used = [phrases[p] for p in spec.turns if p in phrases]
    versions = sorted({str(meta.get("espeak_ng", "unknown")) for meta in used})
    header = header_for(spec, ", ".join(versions) or "unknown")
    return Trace(header, build_events(spec, audio, texts))


def write_catalog_trace(spec: TraceSpec, audio_dir: Path, out_dir: Path) -> Path:
    """Build ``spec`` from the phrases in ``audio_dir`` and write ``out_dir/<name>.jsonl.gz``."""
    from labkit.synth.speech import NotOursError, load_phrase_audio, load_phrase_texts
    from labkit.traces import write

    phrases = load_phrase_texts(audio_dir)
    audio = load_phrase_audio(audio_dir, sorted(set(spec.turns)))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / spec.file_name
    if path.exists() and not _made_here(path, spec):  # someone's file of the same name
        raise NotOursError(f"{path} exists and is not labkit synth's {spec.name!r} trace; "
                         f"not replacing it (move it away, or write to another --out)")  # fmt: skip
    write(build_trace(spec, audio, phrases), path, overwrite=True)  # regenerates, byte for byte
    return path


def _made_here(path: Path, spec: TraceSpec) -> bool:
    """Whether ``path`` is a trace this generator made for ``spec`` (so may be made again)."""
    from labkit.traces import TraceFormatError, read

    try:
        generator = read(path).header.get("generator")
    except (TraceFormatError, OSError):
        return False
    return (isinstance(generator, dict) and generator.get("name") == GENERATOR_NAME
            and generator.get("trace") == spec.name)  # fmt: skip

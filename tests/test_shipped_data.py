"""The shipped data: each trace shows its regime, holds its phrases, and regenerates exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from labkit.cli import main
from labkit.synth.catalog import CATALOG, TraceSpec, spec_named
from labkit.synth.speech import PHRASES
from labkit.traces import SHIPPED_DIR, Trace, read, shipped

DATA_DIR = SHIPPED_DIR.parent
AUDIO_DIR = DATA_DIR / "audio"
MS_PER_S = 1000.0


def load(name: str) -> Trace:
    return read(shipped(name))


def phrase_audio(name: str) -> bytes:
    return (AUDIO_DIR / f"{name}.ulaw").read_bytes()


def within_item_gaps_ms(trace: Trace) -> np.ndarray:
    return np.concatenate([np.diff(trace.arrivals_ms(key)) for key in trace.items])


def wall_ms_per_audio_s(trace: Trace, key: tuple[str, int]) -> float:
    """Wall-clock ms the model took to deliver one second of the item's audio."""
    arrivals, sizes = trace.arrivals_ms(key), trace.sizes(key)
    audio_after_first_ms = (sizes.sum() - sizes[0]) / 8
    return float((arrivals[-1] - arrivals[0]) / audio_after_first_ms * MS_PER_S)


def test_every_catalog_entry_is_shipped_and_nothing_else() -> None:
    assert {p.name for p in shipped()} == {spec.file_name for spec in CATALOG}
    assert len(CATALOG) >= 8


@pytest.mark.parametrize("spec", CATALOG, ids=lambda s: s.name)
def test_shipped_trace_reads_and_carries_its_phrases(spec: TraceSpec) -> None:
    trace = load(spec.name)
    assert trace.is_synthetic and "synthetic" in trace.description.lower()
    generator = trace.header["generator"]
    assert generator["name"] == "labkit.synth"
    assert (generator["seed"], generator["arrival_model"]) == (spec.seed, spec.model.name)
    assert generator["phrases"] == list(spec.turns)
    all_sizes = np.concatenate([trace.sizes(key) for key in trace.items])
    assert trace.audio_ms == all_sizes.sum() / 8
    assert len(trace.items) == len(spec.turns)
    for key, phrase in zip(trace.items, spec.turns, strict=True):
        expected = phrase_audio(phrase)
        if key in trace.interrupted_items:
            assert expected.startswith(trace.item_audio(key))
        else:
            assert trace.item_audio(key) == expected


def test_tiny_deltas_are_20_to_60_bytes() -> None:
    sizes = np.concatenate([load("tiny_deltas").sizes(k) for k in load("tiny_deltas").items])
    assert sizes.min() >= 20 and sizes.max() <= 60


def test_large_deltas_are_4800_bytes_but_the_tail() -> None:
    trace = load("large_deltas")
    for key in trace.items:
        sizes = trace.sizes(key)
        assert (sizes[:-1] == 4800).all() and 0 < sizes[-1] <= 4800


def test_bursty_delivers_a_second_of_audio_in_100_to_300_ms() -> None:
    trace = load("bursty")
    for key in trace.items:
        assert 100.0 <= wall_ms_per_audio_s(trace, key) <= 300.0


def test_realtime_jitter_delivers_near_real_time_with_jitter() -> None:
    trace = load("realtime_jitter")
    for key in trace.items:
        assert 850.0 <= wall_ms_per_audio_s(trace, key) <= 1050.0
        arrivals = trace.arrivals_ms(key)
        media_end_ms = np.cumsum(trace.sizes(key)) / 8
        slope, intercept = np.polyfit(media_end_ms, arrivals, 1)
        residual_ms = arrivals - (slope * media_end_ms + intercept)
        assert 5.0 < residual_ms.std() < 30.0  # jitter around a steady pace, not a clean clock


def test_stalls_of_100_to_600_ms_inside_utterances() -> None:
    gaps = within_item_gaps_ms(load("stalls"))
    stalls = gaps[gaps >= 100.0]
    assert len(stalls) >= 5
    assert stalls.max() <= 600.0
    assert (within_item_gaps_ms(load("bursty")) < 100.0).all()  # the regime without stalls


def test_multi_turn_has_time_to_first_audio_and_caller_speech_per_turn() -> None:
    trace = load("multi_turn")
    starts = [e.t_ms for e in trace.events if e.type == "turn_started"]
    ends = [e.t_ms for e in trace.events if e.type == "turn_ended"]
    assert len(starts) == len(trace.items) >= 4
    first_audio_ms = [trace.arrivals_ms(k)[0] - s for k, s in zip(trace.items, starts, strict=True)]
    assert min(first_audio_ms) >= 300.0 and max(first_audio_ms) <= 1500.0
    assert max(first_audio_ms) - min(first_audio_ms) > 200.0  # each turn draws its own
    caller_ms = np.array(starts[1:]) - np.array(ends[:-1])
    assert (caller_ms >= 1200.0).all()


def test_barge_in_interrupts_an_item_mid_way() -> None:
    trace = load("barge_in")
    (key,) = trace.interrupted_items
    whole = phrase_audio(spec_named("barge_in").turns[trace.items.index(key)])
    heard = len(trace.item_audio(key))
    assert 0.05 * len(whole) < heard < 0.95 * len(whole)
    cut = next(e for e in trace.events if e.type == "audio_interrupted")
    assert trace.arrivals_ms(key)[-1] <= cut.t_ms
    after = [e for e in trace.events if e.t_ms > cut.t_ms and e.key == key]
    assert after == []


def test_long_conversation_has_a_minute_of_audio() -> None:
    assert load("long_conversation").audio_ms >= 60_000.0


def test_regeneration_is_byte_identical(tmp_path: Path) -> None:
    assert main(["synth", "traces", "--audio", str(AUDIO_DIR), "--out", str(tmp_path)]) == 0
    for path in shipped():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


def test_phrase_index_matches_the_audio_files() -> None:
    index = json.loads((AUDIO_DIR / "phrases.json").read_text(encoding="utf-8"))
    assert set(index) == {p.stem for p in AUDIO_DIR.glob("*.ulaw")} == set(PHRASES)
    assert all(index[name]["text"] == text for name, text in PHRASES.items())


def test_readme_names_every_data_file_and_its_command() -> None:
    readme = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    for path in [*shipped(), *AUDIO_DIR.iterdir()]:
        assert path.name in readme, path.name
    assert "labkit synth traces" in readme and "labkit synth speech" in readme
    assert "labkit serve --record" in readme


def test_shipped_data_stays_small() -> None:
    total = sum(p.stat().st_size for p in DATA_DIR.rglob("*") if p.is_file())
    assert total < 4_000_000


@pytest.mark.parametrize("spec", CATALOG, ids=lambda s: s.name)
def test_the_caller_answers_only_after_hearing_the_agent_out(spec: TraceSpec) -> None:
    """A new turn never starts while the previous answer could still be playing at real time
    (barge-ins excepted): otherwise Twilio's queue would carry one answer into the next."""
    trace = load(spec.name)
    starts = [e.t_ms for e in trace.events if e.type == "turn_started"]
    for key, next_start in zip(trace.items, starts[1:], strict=False):
        if key in trace.interrupted_items:
            continue
        heard_out_ms = trace.arrivals_ms(key)[0] + trace.sizes(key).sum() / 8
        assert next_start >= heard_out_ms, f"{spec.name}: {key} still playing at {next_start} ms"

"""The synthetic trace generator: delta sizes, arrival times, turn structure, barge-in, CLI."""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import shutil
import sys
import wave
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.cli import main
from labkit.cli.refusal import Refusal
from labkit.synth.arrivals import ArrivalModel, arrival_offsets_ms, split_into_deltas
from labkit.synth.build import build_trace
from labkit.synth.catalog import CATALOG, BargeIn, TraceSpec, spec_named
from labkit.synth.speech import EspeakNotFoundError, espeak_binary, read_wav_mono16, speak_ulaw
from labkit.traces import read, shipped, write

PHRASE_AUDIO = {
    "hello": bytes(range(256)) * 40,  # 10240 B = 1280 ms
    "bye": bytes(reversed(range(256))) * 10,  # 2560 B = 320 ms
}
PHRASES = {
    "hello": {"text": "hello there how are you doing today", "espeak_ng": "test"},
    "bye": {"text": "bye now", "espeak_ng": "test"},
}
REALTIME = ArrivalModel("rt", (200, 400), speed=(1.0, 1.0), jitter_ms=0.0)


def spec(model: ArrivalModel = REALTIME, **changes: object) -> TraceSpec:
    base = TraceSpec("test", "a test", ("hello", "bye", "hello"), model, seed=7)
    return replace(base, **changes)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(1, 50_000),
    low=st.integers(1, 500),
    width=st.integers(0, 2000),
    seed=st.integers(0, 2**32 - 1),
)
def test_deltas_cover_the_item_exactly_and_stay_in_range(
    total: int, low: int, width: int, seed: int
) -> None:
    model = ArrivalModel("m", (low, low + width), speed=(1.0, 2.0))
    sizes = split_into_deltas(total, model, np.random.default_rng(seed))
    assert int(sizes.sum()) == total
    assert (sizes >= 1).all()
    assert (sizes[:-1] >= low).all() and (sizes <= low + width).all()
    if low + width >= 2 * low and total >= low:
        assert sizes[-1] >= low  # a wide range absorbs the remainder: no runt final delta


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    jitter=st.floats(0, 50),
    stall_p=st.floats(0, 1),
    speed=st.floats(0.5, 10),
)
def test_arrivals_start_at_zero_and_never_reorder(
    seed: int, jitter: float, stall_p: float, speed: float
) -> None:
    model = ArrivalModel(
        "m", (20, 1200), speed=(speed, speed), jitter_ms=jitter, stall_probability=stall_p
    )
    rng = np.random.default_rng(seed)
    sizes = split_into_deltas(20_000, model, rng)
    arrivals = arrival_offsets_ms(sizes, model, rng)
    assert len(arrivals) == len(sizes)
    assert arrivals[0] == 0.0
    assert (np.diff(arrivals) >= 0).all()


def test_speed_sets_how_fast_audio_arrives() -> None:
    rng = np.random.default_rng(1)
    sizes = np.full(100, 800, dtype=np.int64)  # 100 ms each, 10 s in all
    for speed in (1.0, 5.0):
        model = ArrivalModel("m", (800, 800), speed=(speed, speed))
        arrivals = arrival_offsets_ms(sizes, model, rng)
        # the last delta's end is produced 9.9 s of media after the first delta's end
        assert arrivals[-1] == pytest.approx(9900.0 / speed)


def test_stalls_stretch_single_gaps_to_the_stall_length() -> None:
    model = ArrivalModel(
        "m", (80, 80), speed=(10.0, 10.0), stall_probability=0.2, stall_ms=(100.0, 600.0)
    )
    rng = np.random.default_rng(3)
    gaps = np.diff(arrival_offsets_ms(np.full(500, 80, dtype=np.int64), model, rng))
    stalls = gaps[gaps > 1.0 + 1e-9]  # unstalled gaps are 10 ms of media / speed 10 = 1 ms
    assert 60 < len(stalls) < 140
    assert stalls.min() >= 100.0 and stalls.max() <= 600.0


@pytest.mark.parametrize(
    "changes",
    [
        {"delta_bytes": (0, 10)},
        {"delta_bytes": (50, 10)},
        {"speed": (0.0, 1.0)},
        {"jitter_ms": -1.0},
        {"stall_probability": 1.5},
        {"first_audio_ms": (-5.0, 0.0)},
    ],
)
def test_bad_model_parameters_are_rejected_by_name(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="bad"):
        replace(ArrivalModel("bad", (20, 60), speed=(1.0, 2.0)), **changes)  # type: ignore[arg-type]


def test_each_item_carries_exactly_its_phrase_audio() -> None:
    trace = build_trace(spec(), PHRASE_AUDIO, PHRASES)
    expected = [PHRASE_AUDIO[p] for p in ("hello", "bye", "hello")]
    assert [trace.item_audio(key) for key in trace.items] == expected
    assert trace.audio_ms == sum(len(a) for a in expected) / 8
    assert trace.is_synthetic


def test_turns_follow_the_sdk_event_order() -> None:
    trace = build_trace(spec(), PHRASE_AUDIO, PHRASES)
    kinds = [e.type for e in trace.events if e.type not in ("audio", "transcript_delta")]
    assert kinds == ["turn_started", "audio_done", "turn_ended"] * 3
    times = [e.t_ms for e in trace.events]
    assert times == sorted(times) and times[0] == 0.0
    starts = [e for e in trace.events if e.type == "turn_started"]
    for start, key in zip(starts, trace.items, strict=True):
        first_audio_ms = trace.arrivals_ms(key)[0] - start.t_ms
        assert 300.0 <= first_audio_ms <= 800.0  # the model's default time to first audio


def test_transcript_deltas_spell_out_the_phrase() -> None:
    trace = build_trace(spec(), PHRASE_AUDIO, PHRASES)
    for key, phrase in zip(trace.items, ("hello", "bye", "hello"), strict=True):
        deltas = [
            e.fields["delta"]
            for e in trace.events
            if e.type == "transcript_delta" and e.item_id == key[0]
        ]
        assert " ".join(deltas) == PHRASES[phrase]["text"]


def test_barge_in_cuts_the_item_and_emits_audio_interrupted() -> None:
    trace = build_trace(spec(barge_ins=(BargeIn(turn=0, after_ms=500.0),)), PHRASE_AUDIO, PHRASES)
    cut_key = trace.items[0]
    assert trace.interrupted_items == {cut_key}
    heard = trace.item_audio(cut_key)
    assert 0 < len(heard) < len(PHRASE_AUDIO["hello"])
    assert PHRASE_AUDIO["hello"].startswith(heard)
    cut = next(e for e in trace.events if e.type == "audio_interrupted")
    assert cut.t_ms == pytest.approx(trace.arrivals_ms(cut_key)[0] + 500.0)
    assert trace.arrivals_ms(cut_key)[-1] <= cut.t_ms
    assert not any(e.type == "audio_done" and e.key == cut_key for e in trace.events)
    assert trace.item_audio(trace.items[1]) == PHRASE_AUDIO["bye"]  # later turns are whole


def test_barge_in_after_all_audio_arrived_is_an_error() -> None:
    late = spec(barge_ins=(BargeIn(turn=1, after_ms=60_000.0),))
    with pytest.raises(ValueError, match=r"turn 1.*not mid-item"):
        build_trace(late, PHRASE_AUDIO, PHRASES)


def test_missing_phrase_is_named() -> None:
    with pytest.raises(KeyError, match="nope"):
        build_trace(spec(turns=("hello", "nope")), PHRASE_AUDIO, PHRASES)


def test_same_seed_same_trace_other_seed_other_timing() -> None:
    first = build_trace(spec(), PHRASE_AUDIO, PHRASES)
    again = build_trace(spec(), PHRASE_AUDIO, PHRASES)
    other = build_trace(spec(seed=8), PHRASE_AUDIO, PHRASES)
    assert first.events == again.events
    assert [e.t_ms for e in first.events] != [e.t_ms for e in other.events]


def test_built_trace_round_trips_through_the_file_format(tmp_path: Path) -> None:
    trace = build_trace(spec(barge_ins=(BargeIn(2, 300.0),)), PHRASE_AUDIO, PHRASES)
    path = tmp_path / "t.jsonl.gz"
    write(trace, path)
    back = read(path)
    assert back.events == trace.events
    assert back.header["generator"]["seed"] == 7
    assert back.header["generator"]["phrases"] == ["hello", "bye", "hello"]


def test_catalog_names_are_unique_and_lookup_errors_list_them() -> None:
    names = [s.name for s in CATALOG]
    assert len(names) == len(set(names)) >= 8
    with pytest.raises(KeyError, match="bursty"):
        spec_named("no_such_trace")


def test_cli_only_unknown_name_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "traces", "--only", "no_such_trace"]) == 2
    assert "no_such_trace" in capsys.readouterr().err


def test_cli_missing_audio_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["synth", "traces", "--audio", str(tmp_path), "--out", str(tmp_path / "o")]
    err = refused(args, capsys)  # refused (exit 2): the input is missing, nothing failed
    assert err == (f"labkit synth traces: {tmp_path / 'phrases.json'}: no phrase index; "
                   "run `labkit synth speech` first")  # fmt: skip


def test_cli_speech_without_espeak_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EspeakNotFoundError):
        espeak_binary()
    assert main(["synth", "speech", "--out", str(tmp_path / "audio")]) == 2
    assert "espeak-ng" in capsys.readouterr().err


def test_read_wav_rejects_stereo() -> None:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0" * 40)
    with pytest.raises(ValueError, match="2-channel"):
        read_wav_mono16(buffer.getvalue())


def test_espeak_speech_is_8k_ulaw_of_plausible_length() -> None:
    try:
        espeak_binary()
    except EspeakNotFoundError:
        pytest.skip("espeak-ng not installed (needed only to regenerate data/audio)")
    audio = speak_ulaw("How can I help you today?")
    assert 1000 < len(audio) / 8 < 4000  # about 1.9 s at 160 words per minute
    assert len(set(audio)) > 50  # speech, not silence


def test_trace_plots_draw_on_the_given_axes_with_units() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labkit.plots import plot_delta_sizes, plot_trace_timeline

    trace = build_trace(spec(barge_ins=(BargeIn(0, 500.0),)), PHRASE_AUDIO, PHRASES)
    fig, (left, right) = plt.subplots(1, 2)
    assert plot_trace_timeline(trace, ax=left) is left
    assert plot_delta_sizes(trace, ax=right) is right
    assert "ms" in left.get_xlabel() and "ms" in left.get_ylabel()
    assert "bytes" in right.get_xlabel()
    assert any(text.get_text() == "barge-in" for text in left.texts)
    assert sum(patch.get_height() for patch in right.patches) == sum(
        len(trace.sizes(k)) for k in trace.items
    )
    plt.close(fig)


def test_synth_replaces_its_own_trace_but_never_someone_elses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out`` over a directory holding a file of a catalog trace's name replaced it with only
    "wrote 1 traces" said."""
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "tiny_deltas.jsonl.gz"
    mine.write_bytes(gzip.compress(b"my own notes\n"))
    args = ["synth", "traces", "--only", "tiny_deltas", "--out", str(out)]
    with pytest.raises(Refusal) as refusal:  # refused (exit 2), as synth speech refuses
        main(args)
    assert refusal.value.code == 2
    assert f"{mine} exists and is not labkit synth's 'tiny_deltas' trace" in capsys.readouterr().err
    assert gzip.decompress(mine.read_bytes()) == b"my own notes\n"
    mine.unlink()
    assert main(args) == 0 and main(args) == 0  # made, then made again over itself
    assert mine.read_bytes() == shipped("tiny_deltas").read_bytes()


# --- phrases.json is validated; synth speech replaces only its own files; spec validation ---

SHIPPED_AUDIO_DIR = Path(__file__).resolve().parents[1] / "data" / "audio"


def refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``labkit`` expecting a refusal: exit code 2 and one line on stderr, which is returned."""
    with pytest.raises(Refusal) as refusal:
        main(args)
    assert refusal.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        ("[1, 2]", 'must be a JSON object of phrase name -> {"text": ...}, got [1, 2]'),
        ('{"greeting": {"voice": "en-us"}}', 'phrase "greeting": "text" is missing'),
        ('{"greeting": {"text": 5}}', 'phrase "greeting": "text" must be a string, got 5'),
        ('{"greeting": "hi"}', 'phrase "greeting": must be an object such as {"text": ...}'),
        (
            '{"greeting": {"text": "hi", "espeak_ng": 1.51}}',
            'phrase "greeting": "espeak_ng" must be a string, got 1.51',
        ),
        ("{not json", "not a UTF-8 JSON file"),
    ],
)
def test_cli_traces_refuses_a_malformed_phrase_index_by_file_phrase_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], index: str, expected: str
) -> None:
    """``[1,2]`` gave a traceback, an entry without "text" the bare line ``'text'``, and
    ``{"text": 5}`` was accepted as the transcript "5"."""
    audio, out = tmp_path / "audio", tmp_path / "out"
    audio.mkdir()
    (audio / "phrases.json").write_text(index, encoding="utf-8")
    err = refused(["synth", "traces", "--audio", str(audio), "--out", str(out)], capsys)
    assert err.startswith(f"labkit synth traces: {audio / 'phrases.json'}: {expected}")
    assert not out.exists() or not any(out.iterdir())


def fake_espeak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in espeak-ng first on PATH: ``--version`` as espeak-ng prints it, and ``-w FILE``
    writes 0.1 s of 16-bit mono 22050 Hz WAV there, as the real one writes its speech."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "espeak-ng"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys, wave\n"
        "if '--version' in sys.argv:\n"
        "    print('eSpeak NG text-to-speech: 9.99  Data at: /nowhere')\n"
        "    sys.exit(0)\n"
        "with wave.open(sys.argv[sys.argv.index('-w') + 1], 'wb') as wav:\n"
        "    wav.setnchannels(1)\n"
        "    wav.setsampwidth(2)\n"
        "    wav.setframerate(22050)\n"
        "    wav.writeframes(b'\\x10\\x02' * 2205)\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return script


@pytest.mark.parametrize(
    ("files", "named"),
    [
        ({"phrases.json": b"my notes\n"}, "phrases.json"),
        ({"phrases.json": b'{"greeting": {"text": "hi"}}\n'}, "phrases.json"),  # not our fields
        ({"greeting.ulaw": b"my recording"}, "greeting.ulaw"),  # no index lists it
    ],
)
def test_synth_speech_never_replaces_someone_elses_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, bytes],
    named: str,
) -> None:
    """``synth speech --out DIR`` overwrote any phrases.json and <phrase>.ulaw in DIR unasked."""
    fake_espeak(tmp_path, monkeypatch)
    out = tmp_path / "audio"
    out.mkdir()
    for name, data in files.items():
        (out / name).write_bytes(data)
    err = refused(["synth", "speech", "--out", str(out)], capsys)
    assert err.startswith(f"labkit synth speech: {out / named} exists and is not labkit synth's")
    assert "not replacing it" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files  # nothing written, nothing lost


def test_synth_speech_replaces_its_own_files_but_not_a_phrase_its_index_omits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_espeak(tmp_path, monkeypatch)
    shipped_copy = tmp_path / "shipped"
    shutil.copytree(SHIPPED_AUDIO_DIR, shipped_copy)
    assert main(["synth", "speech", "--out", str(shipped_copy)]) == 0  # data/audio regenerates
    out = tmp_path / "audio"
    assert main(["synth", "speech", "--out", str(out)]) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["synth", "speech", "--out", str(out)]) == 0  # made again over itself
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    index = json.loads((out / "phrases.json").read_text(encoding="utf-8"))
    del index["greeting"]  # labkit's index, but it no longer vouches for greeting.ulaw
    (out / "phrases.json").write_text(json.dumps(index), encoding="utf-8")
    capsys.readouterr()
    err = refused(["synth", "speech", "--out", str(out)], capsys)
    assert f"{out / 'greeting.ulaw'} exists and is not labkit synth's speech" in err


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"jitter_ms": math.nan}, "ArrivalModel('bad').jitter_ms must be finite and >= 0, got nan"),
        ({"jitter_ms": math.inf}, "ArrivalModel('bad').jitter_ms must be finite and >= 0, got inf"),
        ({"speed": (math.inf, math.inf)}, "ArrivalModel('bad').speed must be (low, high), finite"),
        ({"first_audio_ms": (0, math.inf)}, "ArrivalModel('bad').first_audio_ms must be (low"),
        ({"stall_ms": (math.nan, 1.0)}, "ArrivalModel('bad').stall_ms must be (low, high)"),
        ({"delta_bytes": (1.5, 3.0)}, "ArrivalModel('bad').delta_bytes must be (low, high), int"),
        ({"delta_bytes": (20,)}, "ArrivalModel('bad').delta_bytes must be (low, high)"),
        ({"words_per_transcript": 2.5}, "ArrivalModel('bad').words_per_transcript must be an int"),
        ({"words_per_transcript": True}, "ArrivalModel('bad').words_per_transcript must be an int"),
        ({"stall_probability": math.nan}, "ArrivalModel('bad').stall_probability must be in"),
    ],
)
def test_non_finite_or_mistyped_model_parameters_are_rejected_by_class_and_field(
    changes: dict[str, object], message: str
) -> None:
    """nan jitter surfaced as a TraceFormatError about line 5's 't_ms'; infinite ranges as
    numpy's OverflowError; float delta sizes and word counts as TypeErrors naming no field."""
    with pytest.raises(ValueError) as error:
        replace(ArrivalModel("bad", (20, 60), speed=(1.0, 2.0)), **changes)  # type: ignore[arg-type]
    assert str(error.value).startswith(message)
    bad = next(iter(changes.values()))
    assert str(error.value).endswith(f"got {bad!r}")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: BargeIn(0.5, 300.0), "BargeIn.turn must be an integer >= 0, got 0.5"),  # type: ignore[arg-type]
        (lambda: BargeIn(-1, 300.0), "BargeIn.turn must be an integer >= 0, got -1"),
        (lambda: BargeIn(0, math.nan), "BargeIn.after_ms must be finite and >= 0, got nan"),
        (
            lambda: spec(barge_ins=(BargeIn(0, 300.0), BargeIn(0, 600.0))),
            "TraceSpec('test').barge_ins: two barge-ins on turn 0",
        ),
        (
            lambda: spec(barge_ins=(BargeIn(3, 300.0),)),
            "TraceSpec('test').barge_ins: turn 3 is outside the spec's turns 0..2",
        ),
        (lambda: spec(turns=()), "TraceSpec('test').turns must name one phrase or more, got ()"),
        (lambda: spec(seed=-1), "TraceSpec('test').seed must be an integer >= 0, got -1"),
    ],
)
def test_barge_ins_that_could_never_apply_are_rejected_by_class_and_field(
    make: Callable[[], object], message: str
) -> None:
    """``BargeIn(0.5, 300)`` passed the turn check and was never applied; a second barge-in on
    a turn was silently ignored."""
    with pytest.raises(ValueError) as error:
        make()
    assert str(error.value).startswith(message)


def test_cli_traces_names_a_missing_phrase_without_quoting_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A phrase the index lacks printed as ``"trace 'bursty' needs ..."``: str() of a KeyError."""
    audio = tmp_path / "audio"
    audio.mkdir()
    (audio / "phrases.json").write_text('{"greeting": {"text": "hi"}}', encoding="utf-8")
    for name in ("greeting", "order_status"):  # both have audio; the index lacks order_status
        (audio / f"{name}.ulaw").write_bytes(PHRASE_AUDIO["hello"])
    args = ["synth", "traces", "--audio", str(audio), "--out", str(tmp_path / "o"), "--only"]
    assert main([*args, "bursty"]) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("labkit synth traces: trace 'bursty' needs phrases with no audio")

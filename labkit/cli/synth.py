"""``labkit synth``: regenerate the shipped speech (data/audio) and synthetic traces (data/traces).

``labkit synth speech`` needs espeak-ng; ``labkit synth traces`` needs only data/audio and rebuilds
every trace in the catalog byte for byte. See data/README.md and notebooks/00_traces.ipynb.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from labkit.cli import lessons
from labkit.cli.output_paths import output_directory
from labkit.cli.refusal import Refusal

DATA_DIR = Path("data")  # relative: where the shipped audio and traces lie in the repository
AUDIO_SUBDIR = "audio"
TRACES_SUBDIR = "traces"


def data_dir() -> Path:
    """Where the defaults point: the repository's own data/ when labkit runs from a source
    checkout (the root ``labkit lessons`` and ``labkit lab`` use), so ``labkit synth`` means the
    same files from any directory; else data/ under the current one."""
    root = lessons.REPO_DIR
    if (root / "pyproject.toml").is_file() and (root / DATA_DIR).is_dir():
        return root / DATA_DIR
    return DATA_DIR


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("synth", help="regenerate the synthetic speech and traces")
    commands = parser.add_subparsers(dest="synth_command", metavar="WHAT", required=True)
    data = data_dir()

    speech = commands.add_parser(
        "speech", help="speak the phrases with espeak-ng into 8 kHz mu-law"
    )
    speech.add_argument("--out", type=output_directory, default=data / AUDIO_SUBDIR,
                        help="where the phrase audio and its index go "
                             "(default %(default)s)")  # fmt: skip
    speech.set_defaults(func=run_speech)

    traces = commands.add_parser("traces", help="build the catalog's traces from the phrase audio")
    traces.add_argument("--audio", type=Path, default=data / AUDIO_SUBDIR,
                        help="the phrase audio, from synth speech "
                             "(default %(default)s)")  # fmt: skip
    traces.add_argument("--out", type=output_directory, default=data / TRACES_SUBDIR,
                        help="where the traces go (default %(default)s)")  # fmt: skip
    traces.add_argument("--only", metavar="NAME", action="append", help="build only this trace")
    traces.set_defaults(func=run_traces)


def run_speech(args: argparse.Namespace) -> int:
    from labkit.synth.speech import EspeakNotFoundError, NotOursError, write_speech

    try:
        written = write_speech(args.out)
    except EspeakNotFoundError as exc:
        print(f"labkit synth speech: {exc}", file=sys.stderr)
        return 2
    except NotOursError as exc:  # someone's file where a phrase or the index would go
        raise Refusal(f"labkit synth speech: {exc}") from None
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def run_traces(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from labkit.synth.build import write_catalog_trace
    from labkit.synth.catalog import CATALOG, spec_named
    from labkit.synth.speech import NotOursError, PhraseIndexError, load_phrase_texts

    try:
        specs = [spec_named(name) for name in args.only] if args.only else list(CATALOG)
    except KeyError as exc:
        print(f"labkit synth traces: {exc.args[0]}", file=sys.stderr)
        return 2
    try:
        load_phrase_texts(args.audio)  # its own line, before the progress bar starts
    except FileNotFoundError as exc:
        raise Refusal(f"labkit synth traces: {_no_phrase_index(args.audio, exc)}") from None
    except PhraseIndexError as exc:
        raise Refusal(f"labkit synth traces: {exc}") from None
    try:
        for spec in tqdm(specs, desc="traces", unit="trace"):
            write_catalog_trace(spec, args.audio, args.out)
    except (PhraseIndexError, NotOursError) as exc:  # bad input, or someone's file: refused
        raise Refusal(f"labkit synth traces: {exc}") from None
    except (FileNotFoundError, ValueError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) else exc  # str(KeyError) quotes it
        print(f"labkit synth traces: {message}", file=sys.stderr)
        return 1
    print(f"wrote {len(specs)} traces to {args.out}")
    return 0


def _no_phrase_index(audio: Path, missing: FileNotFoundError) -> str:
    """Why ``audio`` holds no phrase index: run elsewhere than the repository root (a relative
    default, not in a source checkout), or no speech made there yet."""
    from labkit.synth.speech import PHRASES_FILE

    if not audio.is_absolute() and audio == DATA_DIR / AUDIO_SUBDIR:
        return (f"{audio / PHRASES_FILE}: no phrase index under {Path.cwd()}; run from the "
                f"repository root or pass --audio/--out")  # fmt: skip
    return str(missing)

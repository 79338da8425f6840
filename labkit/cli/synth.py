"""``labkit synth``: regenerate the shipped speech (data/audio) and synthetic traces (data/traces).

``labkit synth speech`` needs espeak-ng; ``labkit synth traces`` needs only data/audio and rebuilds
every trace in the catalog byte for byte. See data/README.md and notebooks/00_traces.ipynb.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from labkit.cli.output_paths import output_directory
from labkit.cli.refusal import Refusal

DEFAULT_AUDIO_DIR = Path("data/audio")
DEFAULT_TRACES_DIR = Path("data/traces")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("synth", help="regenerate the synthetic speech and traces")
    commands = parser.add_subparsers(dest="synth_command", metavar="WHAT", required=True)

    speech = commands.add_parser(
        "speech", help="speak the phrases with espeak-ng into 8 kHz mu-law"
    )
    speech.add_argument("--out", type=output_directory, default=DEFAULT_AUDIO_DIR,
                        help="default: data/audio")
    speech.set_defaults(func=run_speech)

    traces = commands.add_parser("traces", help="build the catalog's traces from the phrase audio")
    traces.add_argument("--audio", type=Path, default=DEFAULT_AUDIO_DIR, help="default: data/audio")
    traces.add_argument("--out", type=output_directory, default=DEFAULT_TRACES_DIR,
                        help="default: data/traces")
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

"""The phrases a phone agent says, spoken by espeak-ng and stored as 8 kHz mu-law (synthetic).

espeak-ng is needed only to regenerate data/audio (``labkit synth speech``), never at lab run time:
the traces are built from the stored ``<name>.ulaw`` files. See notebooks/00_traces.ipynb.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from labkit.audio import resample_to_8k, ulaw_encode

VOICE = "en-us"
SPEED_WPM = 160
PHRASES_FILE = "phrases.json"
AUDIO_SUFFIX = ".ulaw"
WRITTEN_FIELDS = frozenset({"text", "voice", "speed_wpm", "espeak_ng"})  # one phrases.json entry
SHOWN_VALUE_CHARS = 60  # an error quotes at most this much of a bad value
Samples = npt.NDArray[np.int16]  # mono 16-bit PCM

PHRASES: dict[str, str] = {
    "greeting": "Hi, thanks for calling Acme Supply. This is Ava, your virtual assistant.",
    "how_can_i_help": "How can I help you today?",
    "order_lookup": "Sure, I can check on that. Could you read me your order number, please?",
    "order_number": "I have order number four seven two, nine one eight, three zero five.",
    "order_status": (
        "Your order shipped yesterday afternoon and is on its way. "
        "It should arrive on Thursday, between nine in the morning and one in the afternoon."
    ),
    "tracking": (
        "The tracking number is one Z, nine nine nine, A "
        "A one, zero one, two three four, five six seven eight."
    ),
    "hold_on": "One moment while I pull that up for you.",
    "refund_policy": (
        "Here is how returns work. You have thirty days from delivery to send an item back. "
        "Print the prepaid label from the link in your confirmation email, pack the item in its "
        "original box, and drop it at any carrier location. Once the warehouse scans it, your "
        "refund goes back to the original payment method within five to seven business days. "
        "If the item arrived damaged, you do not need to send it back at all."
    ),
    "confirm_address": (
        "Just to confirm, the delivery address is "
        "twelve Harbor Street, apartment four B, Portland, Oregon."
    ),
    "phone_number": (
        "I can text the details to the number ending in six two one zero. Is that right?"
    ),
    "appointment": (
        "The earliest technician visit is Monday at ten thirty. Would that work for you?"
    ),
    "payment": (
        "Your card ending in four four one two "
        "was charged forty nine dollars and ninety five cents."
    ),
    "sorry": "I'm sorry, I didn't quite catch that. Could you say it again?",
    "transfer": "Let me connect you with a specialist. Please stay on the line.",
    "anything_else": "Is there anything else I can help you with?",
    "goodbye": "Thanks for calling. Have a great day!",
}


class EspeakNotFoundError(RuntimeError):
    """espeak-ng is not installed (it is needed only to regenerate data/audio)."""


class PhraseIndexError(ValueError):
    """``phrases.json`` is not a phrase index; the message names the file, phrase and field."""


class NotOursError(ValueError):
    """Writing speech or a trace would replace a file labkit did not write; the message names
    the file."""


def espeak_binary() -> str:
    """The path of espeak-ng, or a clear error saying how to get it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise EspeakNotFoundError(
            "espeak-ng not found on PATH; it is needed only to regenerate data/audio "
            "(Debian/Ubuntu: apt-get install espeak-ng). The shipped audio works without it."
        )
    return path


def espeak_version() -> str:
    """The version espeak-ng reports, e.g. ``"1.51"``."""
    out = subprocess.run(
        [espeak_binary(), "--version"], check=True, capture_output=True, text=True
    ).stdout
    words = out.split()
    return words[words.index("text-to-speech:") + 1] if "text-to-speech:" in words else out.strip()


def speak(text: str, voice: str = VOICE, speed_wpm: int = SPEED_WPM) -> tuple[Samples, int]:
    """Speak ``text`` with espeak-ng: (int16 mono samples, sample rate in Hz)."""
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = Path(tmp) / "speech.wav"
        subprocess.run(
            [espeak_binary(), "-w", str(wav_path), "-v", voice, "-s", str(speed_wpm), text],
            check=True,
            capture_output=True,
        )
        return read_wav_mono16(wav_path.read_bytes())


def read_wav_mono16(data: bytes) -> tuple[Samples, int]:
    """Decode a 16-bit mono WAV: (int16 samples, sample rate in Hz)."""
    with wave.open(io.BytesIO(data)) as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ValueError(
                f"expected 16-bit mono WAV, got {8 * wav.getsampwidth()}-bit "
                f"{wav.getnchannels()}-channel"
            )
        frames = wav.readframes(wav.getnframes())
        return np.frombuffer(frames, dtype="<i2").astype(np.int16), wav.getframerate()


def speak_ulaw(text: str, voice: str = VOICE, speed_wpm: int = SPEED_WPM) -> bytes:
    """Speak ``text`` and return it as 8 kHz mu-law bytes, the format a Twilio call carries."""
    samples, rate_hz = speak(text, voice, speed_wpm)
    return ulaw_encode(resample_to_8k(samples, rate_hz))


def write_speech(
    out_dir: Path,
    phrases: Mapping[str, str] = PHRASES,
    voice: str = VOICE,
    speed_wpm: int = SPEED_WPM,
) -> list[Path]:
    """Speak every phrase into ``out_dir/<name>.ulaw`` and record the texts in ``phrases.json``.

    Replaces only files this function wrote before (``phrases.json`` in its own format, and the
    ``.ulaw`` files that index lists), as ``labkit synth traces`` replaces only its own traces;
    anything else there is refused before espeak-ng runs (:class:`NotOursError`). Every phrase is
    spoken before the first file is written, so a failing espeak-ng leaves ``out_dir`` as it was.
    """
    check_replaceable(out_dir, list(phrases))
    version = espeak_version()
    spoken = {name: speak_ulaw(text, voice, speed_wpm) for name, text in phrases.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, audio in spoken.items():
        path = out_dir / f"{name}{AUDIO_SUFFIX}"
        path.write_bytes(audio)
        written.append(path)
    meta = {
        name: {"text": text, "voice": voice, "speed_wpm": speed_wpm, "espeak_ng": version}
        for name, text in phrases.items()
    }
    index = out_dir / PHRASES_FILE
    index.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return [*written, index]


def check_replaceable(out_dir: Path, names: list[str]) -> None:
    """Refuse when ``out_dir`` holds a file ``write_speech`` would write over but did not write."""
    index = out_dir / PHRASES_FILE
    ours = _phrases_written_here(index) if _occupied(index) else set()
    for name in names:
        path = out_dir / f"{name}{AUDIO_SUFFIX}"
        if _occupied(path) and (name not in ours or path.is_symlink() or not path.is_file()):
            raise NotOursError(
                f"{path} exists and is not labkit synth's speech (no phrases.json of labkit's "
                f"there lists {name!r}); not replacing it (move it away, or write to another --out)"
            )


def _occupied(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _phrases_written_here(index: Path) -> set[str]:
    """The phrases ``index`` lists, if ``write_speech`` wrote it (each entry holds exactly the
    fields it records); otherwise :class:`NotOursError`."""
    refusal = (f"{index} exists and is not labkit synth's phrase index; not replacing it "
               "(move it away, or write to another --out)")  # fmt: skip
    if index.is_symlink() or not index.is_file():
        raise NotOursError(refusal)
    try:
        meta = read_phrase_index(index)
    except PhraseIndexError:
        raise NotOursError(refusal) from None
    if any(set(entry) != WRITTEN_FIELDS for entry in meta.values()):
        raise NotOursError(refusal)
    return set(meta)


def load_phrase_texts(audio_dir: Path) -> dict[str, dict[str, Any]]:
    """``phrases.json``: phrase name -> {text, voice, speed_wpm, espeak_ng}."""
    index = audio_dir / PHRASES_FILE
    if not index.is_file():
        raise FileNotFoundError(f"{index}: no phrase index; run `labkit synth speech` first")
    return read_phrase_index(index)


def read_phrase_index(index: Path) -> dict[str, dict[str, Any]]:
    """The phrase index at ``index``, or a :class:`PhraseIndexError` naming the file, the phrase
    and the field: a JSON object of phrase name -> {"text": str, "espeak_ng": str (optional)}."""
    try:
        meta: object = json.loads(index.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PhraseIndexError(f"{index}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested beyond parsing
        raise PhraseIndexError(f"{index}: not a UTF-8 JSON file ({exc})") from None
    if not isinstance(meta, dict):
        raise PhraseIndexError(
            f"{index}: must be a JSON object of phrase name -> {{\"text\": ...}}, "
            f"got {_shown(meta)}"
        )
    for name, entry in meta.items():
        _check_phrase_entry(f"{index}: phrase {_shown(name)}", entry)
    return meta


def _check_phrase_entry(where: str, entry: object) -> None:
    """One phrase's entry: an object whose "text" (and "espeak_ng", if there) are strings."""
    if not isinstance(entry, dict):
        raise PhraseIndexError(f'{where}: must be an object such as {{"text": ...}}, '
                               f"got {_shown(entry)}")  # fmt: skip
    if "text" not in entry:
        raise PhraseIndexError(f'{where}: "text" is missing')
    for field in ("text", "espeak_ng"):
        if field in entry and not isinstance(entry[field], str):
            got = _shown(entry[field])
            raise PhraseIndexError(f'{where}: "{field}" must be a string, got {got}')


def _shown(value: object) -> str:
    """``value`` as JSON, cut short: what an error quotes of the file."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN_VALUE_CHARS else text[: SHOWN_VALUE_CHARS - 3] + "..."


def load_phrase_audio(audio_dir: Path, names: list[str] | None = None) -> dict[str, bytes]:
    """The mu-law bytes of each named phrase (all phrases in ``phrases.json`` when None)."""
    wanted = names if names is not None else sorted(load_phrase_texts(audio_dir))
    audio: dict[str, bytes] = {}
    for name in wanted:
        path = audio_dir / f"{name}{AUDIO_SUFFIX}"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: phrase audio missing; run `labkit synth speech`")
        audio[name] = path.read_bytes()
        if not audio[name]:
            raise ValueError(f"{path}: phrase audio is empty")
    return audio

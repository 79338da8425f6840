"""Find the traces shipped with the lab in ``data/traces``. See notebooks/00_traces.ipynb."""

from __future__ import annotations

from pathlib import Path
from typing import overload

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "data" / "traces"
_SUFFIXES = (".jsonl.gz", ".jsonl")


@overload
def shipped(name: None = None) -> list[Path]: ...
@overload
def shipped(name: str) -> Path: ...
def shipped(name: str | None = None) -> Path | list[Path]:
    """The path of the shipped trace ``name`` (with or without ``.jsonl.gz``), or all of them."""
    available = sorted(path for path in SHIPPED_DIR.glob("*.jsonl*") if _is_trace(path))
    if name is None:
        return available
    for candidate in (name, *(name + suffix for suffix in _SUFFIXES)):
        path = SHIPPED_DIR / candidate
        if _is_trace(path) and path.is_file():
            return path
    names = ", ".join(_stem(path) for path in available) or "none"
    raise FileNotFoundError(f"no shipped trace {name!r} in {SHIPPED_DIR}; available: {names}")


def _is_trace(path: Path) -> bool:
    return path.name.endswith(_SUFFIXES)


def _stem(path: Path) -> str:
    for suffix in _SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name

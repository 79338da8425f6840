"""The one error a trace reader raises on bad content. See notebooks/00_traces.ipynb."""

from __future__ import annotations

from pathlib import Path


class TraceFormatError(ValueError):
    """A trace file (or a trace about to be written) breaks format v1.

    The message names the file, the line number (1 = header) and what is wrong.
    """

    def __init__(self, path: str | Path, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")

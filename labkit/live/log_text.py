"""Untrusted text in log lines: escaped, so a caller can neither forge a line nor colour a terminal.

Everything a caller sends (stream sids, custom parameters, mark names, event names) and every
message that may quote it goes through ``shown`` (a value: quoted, like ``!r``) or ``escaped``
(free text: unquoted). Newlines, terminal escape codes, other control characters and lone
surrogates come out as ``\\n``, ``\\x1b``, ``\\ud800``...; long text is cut. README: Bad input.
"""

from __future__ import annotations

SHOWN_CHARS = 80  # a Twilio stream sid is 34 characters
ESCAPED_CHARS = 200
CUT_MARK = "..."


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``value`` as a quoted, escaped string of at most ``limit`` characters (``-`` for None)."""
    if value is None:
        return "-"
    text = str(value)
    return repr(text[:limit]) + (CUT_MARK if len(text) > limit else "")


def escaped(text: str, limit: int = ESCAPED_CHARS) -> str:
    """``text`` cut to ``limit`` characters, each non-printable character written as its escape."""
    cut = text[:limit]
    if not cut.isprintable():
        cut = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in cut)
    return cut + (CUT_MARK if len(text) > limit else "")

"""How much a trace file may hold before the reader refuses it: the one place for these caps.

A ``.jsonl.gz`` of a few MB can decompress to gigabytes (a gzip "bomb": deflate packs ~1000 bytes
of a repeated byte into one), so the reader decompresses line by line and stops as soon as a cap
is passed, naming the file, the line and the cap. The defaults sit above any honest trace: the
shipped 98 s ``long_conversation`` is 1.2 MB decompressed with lines under 7 KB, so a two-hour call
is ~90 MB, and one line of 8 MiB is an audio event of about 12 minutes (more than Twilio will ever
buffer). The size cap also bounds memory: a trace made of the smallest valid events holds ~8 bytes
of Python objects per byte of text (measured: benchmarks/bench_hostile.py), so ~1 GB at the
default. Callers pass their own ``TraceLimits`` to ``labkit.traces.read``; the CLI commands that
read traces take ``--max-trace-mib`` and ``--max-line-mib``.
See notebooks/00_traces.ipynb and docs/TRACE_FORMAT.md.
"""

from __future__ import annotations

from dataclasses import dataclass

BYTES_PER_MIB = 1 << 20
DEFAULT_MAX_TRACE_BYTES = 128 * BYTES_PER_MIB  # the whole file, decompressed
DEFAULT_MAX_LINE_BYTES = 8 * BYTES_PER_MIB  # one line (one event), newline excluded


@dataclass(frozen=True, slots=True)
class TraceLimits:
    """Caps on a trace's decompressed size and on each line's length, in bytes."""

    max_trace_bytes: int = DEFAULT_MAX_TRACE_BYTES
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES

    def __post_init__(self) -> None:
        for name in ("max_trace_bytes", "max_line_bytes"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"TraceLimits.{name} must be a positive integer, got {value!r}")

    @classmethod
    def from_mib(cls, max_trace_mib: float, max_line_mib: float) -> TraceLimits:
        """Limits given in MiB (as the CLI flags take them)."""
        return cls(_mib_to_bytes(max_trace_mib), _mib_to_bytes(max_line_mib))


DEFAULT_LIMITS = TraceLimits()  # what a reader applies when given none


def _mib_to_bytes(mib: float) -> int:
    if not mib > 0:
        raise ValueError(f"a trace limit must be > 0 MiB, got {mib}")
    return max(1, int(mib * BYTES_PER_MIB))

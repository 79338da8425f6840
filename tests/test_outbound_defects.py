"""The three defects of the original report's buffer, each as a check that fails on that
behaviour. Every one of our strategies passes them; OriginalReportBuffer shows they bite.
See notebooks/05_barge_in_and_marks.ipynb."""

from __future__ import annotations

from typing import Any

import pytest
from test_outbound_harness import CONFIGS, build, config_id

from labkit.outbound import STRATEGY_NAMES, AudioChunk, Clear, Media, Outbound, make_strategy

DELTA_BYTES = 30  # the report's tiny deltas (20-60 B)
DELTA_GAP_MS = 9.0


def drive_item(strategy: Any, deltas: int, item: str = "a",
               gap_ms: float = DELTA_GAP_MS) -> tuple[list[Outbound], float]:
    """Push one item's deltas on a virtual clock, polling at deadlines; no end()."""
    out: list[Outbound] = []
    now = 0.0
    for _ in range(deltas):
        while (deadline := strategy.next_deadline()) is not None and deadline <= now:
            out += strategy.poll(deadline)
        out += strategy.push(AudioChunk(item, 0, bytes(DELTA_BYTES)), now)
        now += gap_ms
    return out, now


def drain(strategy: Any, now: float) -> tuple[list[Outbound], float]:
    out: list[Outbound] = []
    while (deadline := strategy.next_deadline()) is not None:
        now = max(now, deadline)
        out += strategy.poll(now)
    return out, now


def leaked_marks(strategy: Any) -> str | None:
    """Defect 1: after an item fully played and Twilio echoed every mark it was sent, the
    credited bytes must equal the bytes sent and no mark may stay pending."""
    out, now = drive_item(strategy, 25)
    out += [m for m in strategy.end("a", 0, now) if not isinstance(m, Clear)]
    more, now = drain(strategy, now)
    out += more
    sent = sum(len(m.payload) for m in out if isinstance(m, Media))
    for mark in [k for m in out if isinstance(m, Media) for k in m.marks]:
        strategy.echo(mark.name, now)
    if strategy.ledger.credited_bytes != sent or strategy.ledger.pending_count:
        return (f"sent {sent} B, echoes credited {strategy.ledger.credited_bytes} B, "
                f"{strategy.ledger.pending_count} marks never sent")
    return None


def clears_at_item_end(strategy: Any) -> str | None:
    """Defect 2: audio_done must not clear: Twilio would drop the tail it still has queued."""
    _, now = drive_item(strategy, 25)
    ended = strategy.end("a", 0, now)
    if any(isinstance(m, Clear) for m in ended):
        return "end() sent clear: the item's queued tail is cut"
    return None


def flushes_before_clear(strategy: Any) -> str | None:
    """Defect 3: on barge-in, buffered audio must be dropped, not sent just to be cleared."""
    _, now = drive_item(strategy, 5)  # 150 B: below every threshold, so buffered if buffering
    out = strategy.interrupt(now)
    if any(isinstance(m, Media) for m in out) or not isinstance(out[-1], Clear):
        return "interrupt() sent buffered audio before clear"
    return None


DEFECT_CHECKS = [leaked_marks, clears_at_item_end, flushes_before_clear]


@pytest.mark.parametrize("check", DEFECT_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_our_strategies_have_none_of_the_original_defects(
    config: tuple[str, float, dict[str, Any]], check: Any
) -> None:
    assert check(build(config)) is None


@pytest.mark.parametrize("check", DEFECT_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_the_checks_hold_with_default_options(name: str, check: Any) -> None:
    assert check(make_strategy(name, 50)) is None


@pytest.mark.parametrize(
    ("variant", "check", "caught"),
    [
        ("first", leaked_marks, True),
        ("final", leaked_marks, False),  # the review's fix did cure the leak
        ("first", clears_at_item_end, False),  # only the PR's description cleared there
        ("final", clears_at_item_end, False),
        ("first", flushes_before_clear, True),
        ("final", flushes_before_clear, True),
    ],
)
def test_the_checks_catch_the_original_report_buffer(variant: str, check: Any,
                                                     caught: bool) -> None:
    problem = check(make_strategy("original_report", 50, variant=variant))
    assert (problem is not None) == caught, problem


def test_the_first_variant_credits_only_the_last_delta_of_each_threshold_flush() -> None:
    strategy = make_strategy("original_report", 50, variant="first")
    out, _ = drive_item(strategy, 14, gap_ms=5.0)  # 14 x 30 B in 70 ms: a flush at 420 B
    (media,) = [m for m in out if isinstance(m, Media)]
    assert len(media.payload) == 420
    assert [(k.start, k.end) for k in media.marks] == [(390, 420)]
    assert strategy.ledger.pending_count == 14  # 13 marks created, never sent: the leak


def test_the_original_buffer_credits_cleared_marks_like_the_sdk_example() -> None:
    strategy = make_strategy("original_report", 50, variant="final")
    out, now = drive_item(strategy, 20)
    out += strategy.interrupt(now)
    marks = [k for m in out if isinstance(m, Media) for k in m.marks]
    credited = [strategy.echo(k.name, now + 1) for k in marks]  # Twilio echoes all on clear
    assert all(c is not None for c in credited)


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_an_infinite_clock_is_refused_and_the_strategy_goes_on(name: str) -> None:
    """now=inf was taken, after which every finite call was refused as "earlier"."""
    strategy = make_strategy(name, 50.0)
    with pytest.raises(ValueError, match=r"now must be a finite time, got inf"):
        strategy.push(AudioChunk("a", 0, b"\xff" * 160), float("inf"))
    strategy.push(AudioChunk("a", 0, b"\xff" * 160), 5.0)  # the clock is where it was


@pytest.mark.parametrize("threshold", ["50", True, b"50", 10**400, 600_000.5, 1e308])
@pytest.mark.parametrize("name", ["forward", "rechunk", "paced"])
def test_a_threshold_that_is_not_a_number_of_ms_is_refused(name: str, threshold: Any) -> None:
    """"50" and True were taken as 50.0 and 1.0; 10**400 raised OverflowError; beyond ten minutes
    (Twilio's own limit) the command line refused what a call or the library took."""
    with pytest.raises(ValueError, match=r"threshold_ms must be a finite number of ms from 0 to"):
        make_strategy(name, threshold)


def test_paced_after_close_starts_a_new_clock() -> None:
    """close() kept the stream clock, so audio after it counted as a re-anchor."""
    strategy = make_strategy("paced", 0.0)
    strategy.push(AudioChunk("a", 0, b"\xff" * 160), 0.0)
    strategy.close()
    strategy.push(AudioChunk("b", 0, b"\xff" * 160), 10_000.0)
    assert strategy.reanchors == 0  # type: ignore[attr-defined]

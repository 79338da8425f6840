"""The mark ledger: cadence, exact byte ranges, crediting once, generations, bounds."""

from __future__ import annotations

import pytest

from labkit.marks import MarkLedger
from labkit.outbound import Clear, Media


def send(ledger: MarkLedger, offset: int, size: int, now: float = 0.0, item: str = "a",
         final: bool = False) -> Media:
    return ledger.media(item, 0, offset, bytes(size), now, final=final)


def test_without_a_cadence_every_message_carries_a_mark_naming_its_bytes() -> None:
    ledger = MarkLedger(mark_every_ms=None)
    first, second = send(ledger, 0, 40), send(ledger, 40, 25)
    assert [(m.start, m.end) for m in first.marks] == [(0, 40)]
    assert [(m.start, m.end) for m in second.marks] == [(40, 65)]


def test_a_cadence_marks_once_per_that_much_audio_and_the_item_end_marks_the_rest() -> None:
    ledger = MarkLedger(mark_every_ms=100)  # 800 bytes
    marks = [m for i in range(25) for m in send(ledger, i * 40, 40).marks]
    assert [(m.start, m.end) for m in marks] == [(0, 800)]
    (tail,) = ledger.finish("a", 0, now=5.0)
    assert isinstance(tail, Media) and tail.is_marks_only
    assert [(m.start, m.end, m.sent_ms) for m in tail.marks] == [(800, 1000, 5.0)]
    assert ledger.finish("a", 0, now=6.0) == []  # nothing left unmarked


def test_a_final_message_always_carries_the_closing_mark() -> None:
    ledger = MarkLedger(mark_every_ms=100)
    send(ledger, 0, 100)
    final = send(ledger, 100, 30, final=True)
    assert [(m.start, m.end) for m in final.marks] == [(0, 130)]
    assert ledger.finish("a", 0, 1.0) == []


def test_an_echo_credits_its_mark_once_and_unknown_names_nothing() -> None:
    ledger = MarkLedger(mark_every_ms=None)
    (mark,) = send(ledger, 0, 160).marks
    assert ledger.pending_count == 1
    assert ledger.echo("no-such-mark", 1.0) is None
    assert ledger.echo(mark.name, 2.0) == mark
    assert ledger.echo(mark.name, 3.0) is None
    assert ledger.credited_bytes == 160
    assert ledger.pending_count == 0


def test_clear_bumps_the_generation_and_cleared_marks_are_never_credited() -> None:
    ledger = MarkLedger(mark_every_ms=None)
    (played,) = send(ledger, 0, 160).marks
    (cleared_mark,) = send(ledger, 160, 160).marks
    assert ledger.echo(played.name, 1.0) == played
    clear = ledger.clear(2.0)
    assert clear == Clear(0) and ledger.generation == 1
    assert ledger.echo(cleared_mark.name, 3.0) is None  # Twilio echoes it on clear: not played
    assert ledger.credited_bytes == 160
    after = send(ledger, 320, 80, now=4.0)
    assert after.generation == 1 and after.marks[0].start == 320  # a new generation's range


def test_not_honoring_generations_reproduces_the_sdk_example_bug() -> None:
    ledger = MarkLedger(mark_every_ms=None, honor_generations=False)
    (mark,) = send(ledger, 0, 160).marks
    ledger.clear(1.0)
    assert ledger.echo(mark.name, 2.0) == mark
    assert ledger.credited_bytes == 160


def test_marks_of_different_items_are_independent() -> None:
    ledger = MarkLedger(mark_every_ms=100)
    send(ledger, 0, 500, item="a")
    send(ledger, 0, 500, item="b")
    (a_tail,) = ledger.finish("a", 0, 1.0)
    assert isinstance(a_tail, Media)
    assert (a_tail.item_id, a_tail.marks[0].start, a_tail.marks[0].end) == ("a", 0, 500)


def test_media_that_skips_or_repeats_bytes_is_rejected_naming_the_item() -> None:
    ledger = MarkLedger()
    send(ledger, 0, 100)
    with pytest.raises(ValueError, match=r"'a'/0 sent from byte 150"):
        send(ledger, 150, 10)
    with pytest.raises(ValueError, match="contiguous"):
        send(ledger, 50, 10)


def test_a_peer_that_never_echoes_is_bounded_by_dropping_the_oldest() -> None:
    ledger = MarkLedger(mark_every_ms=None, max_pending_ms=1_000)  # 8000 bytes
    names = [send(ledger, i * 160, 160).marks[0].name for i in range(200)]
    assert ledger.pending_bytes <= 8_000
    assert ledger.dropped_marks == 200 - ledger.pending_count
    assert ledger.echo(names[0], 1.0) is None  # the oldest were dropped
    assert ledger.echo(names[-1], 1.0) is not None
    ledger.close()
    assert ledger.pending_count == 0 and ledger.pending_bytes == 0


@pytest.mark.parametrize("kwargs", [{"mark_every_ms": 0}, {"mark_every_ms": -5},
                                    {"mark_every_ms": float("nan")}, {"max_pending_ms": 0}])
def test_bad_parameters_are_rejected_by_name(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        MarkLedger(**kwargs)  # type: ignore[arg-type]




def test_pending_marks_are_capped_by_count_as_well_as_by_audio() -> None:
    """A mark per 1-byte message, never echoed: within the 10 minutes of audio the byte cap
    allows, 4.8 million marks (~1 GB of bookkeeping); the count cap drops the oldest."""
    from labkit.marks import MAX_PENDING_MARKS

    ledger = MarkLedger(mark_every_ms=None)
    for offset in range(MAX_PENDING_MARKS + 10):
        ledger.media("a", 0, offset, b"\xff", float(offset))
    assert ledger.pending_bytes == MAX_PENDING_MARKS and ledger.dropped_marks == 10
    assert ledger.echo(f"m{MAX_PENDING_MARKS + 10}.g0", 1e6) is not None  # the newest stays
    assert ledger.echo("m1.g0", 1e6) is None  # the oldest went

"""Which item the caller starts hearing, before its first mark echoes (labkit/live/item_starts.py).

A barge-in before an item's first echo found the SDK's tracker naming nothing or the previous,
finished item, and the SDK then truncated nothing: the model kept the whole answer as heard."""

from __future__ import annotations

from labkit.live.item_starts import ItemStarts
from labkit.outbound.base import Mark, Media


def media(item: str, payload: bytes, *marks: str) -> Media:
    return Media(payload, item, 0, 0, 0, tuple(Mark(name, item, 0, 0, len(payload), 0, 0.0)
                                               for name in marks))  # fmt: skip


def test_the_first_item_starts_when_it_is_sent_with_nothing_ahead() -> None:
    starts = ItemStarts()
    assert starts.sent(media("i1", b"\xff" * 800, "m1")) == ("i1", 0)
    assert starts.sent(media("i1", b"\xff" * 800, "m2")) is None  # the same item goes on


def test_a_later_item_starts_when_the_last_mark_before_it_is_echoed() -> None:
    starts = ItemStarts()
    starts.sent(media("i1", b"\xff" * 800, "m1"))
    starts.sent(media("i1", b"", "m2"))  # i1's final mark, marks only
    assert starts.sent(media("i2", b"\xff" * 1600, "m3")) is None  # i1 still ahead of it
    assert starts.echoed("m1") is None
    assert starts.echoed("m2") == ("i2", 0)  # all of i1 played: i2 plays now
    assert starts.echoed("m3") is None


def test_an_item_sent_after_everything_ahead_was_heard_starts_at_once() -> None:
    starts = ItemStarts()
    starts.sent(media("i1", b"\xff" * 800, "m1"))
    assert starts.echoed("m1") is None
    assert starts.sent(media("i2", b"\xff" * 800, "m2")) == ("i2", 0)


def test_a_clear_forgets_what_was_ahead() -> None:
    starts = ItemStarts()
    starts.sent(media("i1", b"\xff" * 800, "m1"))
    starts.sent(media("i2", b"\xff" * 800, "m2"))  # waits for m1
    starts.cleared()
    assert starts.echoed("m1") is None  # the clear's echo starts nothing
    assert starts.sent(media("i3", b"\xff" * 800, "m3")) == ("i3", 0)
    assert starts.sent(media("i2", b"\xff" * 800)) is None  # after m3, which is pending

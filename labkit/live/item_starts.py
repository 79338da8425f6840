"""When the caller starts hearing each item: what the SDK's playback tracker is told before the
item's first mark comes back.

At a barge-in the SDK truncates the item its ``RealtimePlaybackTracker`` names, at the ms it was
told of. Credits arrive with mark echoes, and an item's first mark rides after its first message
(100 ms of audio by default, a whole pre-roll for ``preroll``), so a barge-in before that echo
found the tracker naming nothing (at the call's start, after a clear) or the previous, finished
item: the SDK sent no truncate at all, and the model kept the whole answer as heard.

An item starts playing once everything sent before it has played: at once when nothing is ahead
of it at Twilio (no mark sent since the last clear still unechoed), else when the last mark sent
before its first byte is echoed (Twilio echoes a mark when the audio before it has played). The
handler then tells the tracker (item, 0 ms), and a barge-in truncates the item at what its marks
credited since: never more than the caller heard. Sans-I/O; ``labkit.live.handler`` drives it.
See notebooks/05_barge_in_and_marks.ipynb.
"""

from __future__ import annotations

from labkit.outbound.base import Media

ItemKey = tuple[str, int]


class ItemStarts:
    """Which item begins playing, from the media sent and the marks echoed (one per call)."""

    def __init__(self) -> None:
        self._sending: ItemKey | None = None  # the item whose bytes went out last
        self._last_mark: str | None = None  # the last mark sent, until it is echoed
        self._starts_after: dict[str, ItemKey] = {}  # mark name -> the item after it

    def sent(self, media: Media) -> ItemKey | None:
        """``media`` goes out now; returns the item that starts playing now (nothing is ahead
        of its first byte), or None."""
        key = (media.item_id, media.content_index)
        started = None
        if media.payload and key != self._sending:
            self._sending = key
            if self._last_mark is None:
                started = key
            else:
                self._starts_after[self._last_mark] = key
        if media.marks:
            self._last_mark = media.marks[-1].name
        return started

    def echoed(self, name: str) -> ItemKey | None:
        """Twilio echoed mark ``name``; returns the item that starts playing now, or None."""
        if name == self._last_mark:
            self._last_mark = None
        return self._starts_after.pop(name, None)

    def cleared(self) -> None:
        """A ``clear`` went out: nothing sent before it will play, or start an item."""
        self._sending = None
        self._last_mark = None
        self._starts_after.clear()

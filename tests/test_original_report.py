"""The original report's buffer, message by message as its code sends them.

Each expectation is read off ``_handle_realtime_event``, ``_flush_outgoing_audio_buffer`` and
``_buffer_flush_loop`` of PR #1926's twilio_handler.py (shared/reference/: commit ecf2c57 for
``final``, commit 7b2f4e0 for ``first``), not off the PR's description.
"""

from __future__ import annotations

import pytest

from labkit.outbound import AudioChunk, Clear, Media, Outbound, make_strategy
from labkit.outbound.original_report import OriginalReportBuffer
from labkit.sim import simulate
from labkit.traces import Trace, audio_event, item_event, make_header


def buffer(variant: str = "final", threshold_ms: float = 50.0) -> OriginalReportBuffer:
    strategy = make_strategy("original_report", threshold_ms, variant=variant)
    assert isinstance(strategy, OriginalReportBuffer)
    return strategy


def wire(out: list[Outbound]) -> list[tuple[str, object]]:
    """What goes on the wire, in order: ("media", bytes) then ("mark", name) ..., ("clear", g)."""
    sent: list[tuple[str, object]] = []
    for message in out:
        if isinstance(message, Media):
            if message.payload:
                sent.append(("media", len(message.payload)))
            sent += [("mark", mark.name) for mark in message.marks]
        else:
            assert isinstance(message, Clear)
            sent.append(("clear", message.generation))
    return sent


def push(strategy: OriginalReportBuffer, size: int, now: float, item: str = "a") -> list[Outbound]:
    return strategy.push(AudioChunk(item, 0, bytes(size)), now)


def test_400_bytes_checked_on_every_delta_flush_all_with_a_mark_per_delta() -> None:
    # `len(self._outgoing_audio_buffer) >= self.BUFFER_SIZE_BYTES` after every append
    strategy = buffer()
    sent = []
    for k in range(13):
        sent += push(strategy, 30, k * 2.0)  # 390 B: under 400
    assert sent == []
    out = push(strategy, 30, 26.0)  # 420 B
    assert wire(out) == [("media", 420)] + [("mark", str(n)) for n in range(1, 15)]
    (media,) = out
    assert isinstance(media, Media)
    assert [(m.start, m.end) for m in media.marks] == [(30 * k, 30 * k + 30) for k in range(14)]


def test_the_first_commit_sends_only_the_triggering_deltas_mark_and_leaks_the_rest() -> None:
    # commit 7b2f4e0: `_flush_outgoing_audio_buffer(mark_id)` sends one mark, for this delta
    strategy = buffer("first")
    for k in range(13):
        push(strategy, 30, k * 2.0)
    assert wire(push(strategy, 30, 26.0)) == [("media", 420), ("mark", "14")]
    assert strategy.ledger.pending_count == 14  # every delta's mark stays in _mark_data
    push(strategy, 100, 30.0)
    assert wire(strategy.end("a", 0, 31.0)) == [("media", 100)]  # flush(None): no mark
    assert strategy.ledger.pending_count == 15


def test_the_loop_sleeps_50_ms_and_flushes_only_after_more_than_100_ms_without_a_send() -> None:
    strategy = buffer()  # built at 0: the last-send clock starts there, the loop's first wake at 50
    assert push(strategy, 40, 10.0) == []
    assert strategy.next_deadline() == 50.0
    assert strategy.poll(50.0) == []  # 50 ms since the last send: not stale
    assert strategy.next_deadline() == 100.0
    assert strategy.poll(100.0) == []  # exactly 100 ms: `>` is strict
    assert wire(strategy.poll(150.0)) == [("media", 40), ("mark", "1")]
    assert strategy.next_deadline() is None  # nothing buffered: nothing to poll for
    push(strategy, 40, 160.0)
    assert strategy.next_deadline() == 200.0  # the loop kept its phase
    assert strategy.poll(200.0) == [] and strategy.poll(250.0) == []  # 50, 100 ms since 150
    assert wire(strategy.poll(300.0)) == [("media", 40), ("mark", "2")]


def test_a_late_wake_delays_the_next_one_as_asyncio_sleep_does() -> None:
    strategy = buffer()
    push(strategy, 40, 10.0)
    assert strategy.poll(57.0) == []  # woke 7 ms late
    assert strategy.next_deadline() == 107.0  # sleep(0.05) from when it woke


def test_audio_end_flushes_and_sends_no_clear() -> None:
    # `elif event.type == "audio_end": await self._flush_outgoing_audio_buffer()`; the `clear`
    # shown there in the PR's description is not in either commit
    strategy = buffer()
    push(strategy, 100, 0.0)
    push(strategy, 100, 5.0)
    assert wire(strategy.end("a", 0, 6.0)) == [("media", 200), ("mark", "1"), ("mark", "2")]
    assert strategy.end("a", 0, 7.0) == []


def test_a_barge_in_flushes_then_clears_and_the_clears_echoes_are_credited() -> None:
    strategy = buffer()
    push(strategy, 100, 0.0)
    out = strategy.interrupt(1.0)
    assert wire(out) == [("media", 100), ("mark", "1"), ("clear", 0)]
    # Twilio echoes the pending mark at once on clear; the code credits any known mark
    mark = strategy.echo("1", 60.0)
    assert mark is not None and mark.size == 100
    assert strategy.ledger.credited_bytes == 100


def test_one_buffer_across_items_becomes_one_message_per_item_at_the_same_instant() -> None:
    # the stated deviation: a Media names one item; the bytes and their order are the code's
    strategy = buffer()
    push(strategy, 300, 0.0, item="a")
    out = push(strategy, 200, 1.0, item="b")
    assert wire(out) == [("media", 300), ("mark", "1"), ("media", 200), ("mark", "2")]
    assert [(m.item_id, m.offset) for m in out if isinstance(m, Media)] == [("a", 0), ("b", 0)]


def test_bad_options_name_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown variant 'second'; choose one of final, first"):
        buffer("second")
    with pytest.raises(ValueError, match="loop_sleep_ms"):
        make_strategy("original_report", 50, loop_sleep_ms=0)


def test_a_simulated_call_without_barge_in_plays_every_byte() -> None:
    # the model that sent clear on audio_done discarded most of such a call; the code does not
    events = []
    for k in range(3):
        t0 = k * 3000.0
        for n in range(100):
            events.append(audio_event(t0 + n * 4.0, f"r{k}", f"i{k}", 0, bytes(40)))
        events.append(item_event("audio_done", t0 + 400.0, f"i{k}", 0))
    trace = Trace(make_header("synthetic", "three answers, 2x real time"), events)
    for variant in ("final", "first"):
        run = simulate(trace, "original_report", 50, link="tcp", variant=variant)
        assert run.metrics.played_bytes == run.metrics.bytes == 3 * 100 * 40
        assert run.metrics.cleared_bytes == 0

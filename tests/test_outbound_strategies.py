"""What each strategy does, on scenarios small enough to reason about by hand."""

from __future__ import annotations

import math
import random
import re
from typing import Any

import pytest
from test_outbound_harness import Run, check_all, check_waits

from labkit.outbound import (
    FRAME_BYTES,
    STRATEGY_NAMES,
    AudioChunk,
    Clear,
    Media,
    Outbound,
    OutboundStrategy,
    make_strategy,
    strategy_options,
    threshold_meaning,
)
from labkit.outbound.adaptive import AdaptiveStrategy, nearest_rank_percentile
from labkit.outbound.paced import PacedStrategy

A = ("a", 0)


def sizes(run: Run) -> list[int]:
    return [len(m.payload) for _, m in run.media]


def times(run: Run) -> list[float]:
    return [t for t, _ in run.media]


# -- make_strategy ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*STRATEGY_NAMES, "original_report"])
def test_every_registered_name_builds_a_strategy(name: str) -> None:
    strategy = make_strategy(name, 50)
    assert isinstance(strategy, OutboundStrategy)
    assert strategy.name == name and strategy.threshold_ms == 50.0
    assert strategy.ledger.pending_count == 0


@pytest.mark.parametrize("name", [*STRATEGY_NAMES, "original_report"])
def test_a_strategy_says_truly_whether_it_ignores_the_threshold(name: str) -> None:
    """Sweeps run a threshold-blind strategy once and copy its row; plots and the explorer
    say it ignores the threshold. All read ``threshold_means``: it must tell the truth."""
    from labkit.sim import simulate
    from labkit.traces import read, shipped

    meaning = threshold_meaning(name)
    assert meaning is None or meaning.endswith(")"), "a meaning names its unit, in brackets"
    trace = read(shipped("multi_turn"))
    sent = {threshold: list(simulate(trace, name, threshold).columns["sent_ms"])
            for threshold in (20.0, 120.0)}  # fmt: skip
    assert (sent[20.0] == sent[120.0]) == (meaning is None)


def test_the_original_report_is_registered_but_not_one_of_ours() -> None:
    assert "original_report" not in STRATEGY_NAMES


def test_unknown_names_options_and_thresholds_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown outbound strategy 'fast'.*'rechunk'"):
        make_strategy("fast", 50)
    with pytest.raises(ValueError, match=r"'forward' does not take option\(s\) frame_ms"):
        make_strategy("forward", 50, frame_ms=20)
    with pytest.raises(ValueError, match=r"'paced': threshold_ms must be .* got -1"):
        make_strategy("paced", -1)
    with pytest.raises(ValueError, match="flush_interval_ms"):
        make_strategy("rechunk", 50, flush_interval_ms=-3)
    with pytest.raises(ValueError, match="cap_ms"):
        make_strategy("adaptive", 50, floor_ms=500, cap_ms=400)


def test_the_shared_options_are_accepted_where_documented() -> None:
    assert "align_frames" in strategy_options("rechunk")
    assert "align_frames" in strategy_options("paced")
    assert "align_frames" in strategy_options("preroll")
    assert {"mark_every_ms", "honor_generations"} <= set(strategy_options("forward"))


def test_a_clock_running_backwards_is_rejected() -> None:
    strategy = make_strategy("rechunk", 50)
    strategy.push(AudioChunk("a", 0, bytes(40)), 10.0)
    with pytest.raises(ValueError, match=r"rechunk.poll: now=5.0 is earlier"):
        strategy.poll(5.0)


# -- forward ----------------------------------------------------------------------------------


def test_forward_sends_each_delta_at_once_as_its_own_message() -> None:
    run = Run(make_strategy("forward", 50))
    for size in (20, 40, 60):
        run.push(A, size, dt=7.0)
    assert sizes(run) == [20, 40, 60] and times(run) == [7.0, 14.0, 21.0]
    assert run.strategy.next_deadline() is None


# -- rechunk ----------------------------------------------------------------------------------


def test_rechunk_sends_everything_buffered_once_it_reaches_the_threshold() -> None:
    run = Run(make_strategy("rechunk", 50))  # 400 B
    for _ in range(12):
        run.push(A, 35, dt=5.0)
    assert sizes(run) == [420]  # the 12th delta took it past 400 B
    assert run.strategy.next_deadline() is None  # nothing left waiting


def test_rechunk_flushes_what_waited_the_flush_interval_from_its_oldest_byte() -> None:
    run = Run(make_strategy("rechunk", 50, flush_interval_ms=100))
    run.push(A, 40, dt=10.0)
    run.push(A, 40, dt=30.0)
    assert run.strategy.next_deadline() == 110.0  # the oldest byte arrived at 10
    run.advance(500.0)
    assert sizes(run) == [80] and times(run) == [110.0]


def test_rechunk_never_mixes_items_and_a_new_item_releases_the_previous_tail() -> None:
    run = Run(make_strategy("rechunk", 50))
    run.push(A, 100, dt=1.0)
    run.push(("b", 0), 100, dt=1.0)
    (only,) = [m for _, m in run.media]
    assert (only.item_id, len(only.payload), [k.end for k in only.marks]) == ("a", 100, [100])


def test_rechunk_with_aligned_frames_sends_whole_frames_and_a_short_tail() -> None:
    run = Run(make_strategy("rechunk", 50, align_frames=True))
    for _ in range(30):
        run.push(A, 45, dt=6.0)
    run.end(A, dt=1.0)
    run.finish()
    *body, tail = sizes(run)
    assert all(size % FRAME_BYTES == 0 for size in body) and sum(body) + tail == 30 * 45
    check_all(run)
    check_waits(run)


def test_rechunk_at_end_flushes_the_tail_with_the_final_mark_and_no_clear() -> None:
    strategy = make_strategy("rechunk", 50)
    strategy.push(AudioChunk("a", 0, bytes(100)), 0.0)
    (tail,) = strategy.end("a", 0, 1.0)
    assert isinstance(tail, Media) and len(tail.payload) == 100
    assert [(k.start, k.end) for k in tail.marks] == [(0, 100)]


# -- preroll ----------------------------------------------------------------------------------


def test_preroll_holds_the_first_threshold_of_each_item_then_forwards() -> None:
    run = Run(make_strategy("preroll", 100))  # 800 B
    for _ in range(30):
        run.push(A, 40, dt=5.0)
    assert sizes(run)[0] == 800 and set(sizes(run)[1:]) == {40}
    assert times(run)[0] == 100.0  # the 20th delta completed the pre-roll


def test_preroll_releases_an_item_shorter_than_the_threshold_at_its_end() -> None:
    run = Run(make_strategy("preroll", 100))
    for _ in range(5):
        run.push(A, 40, dt=5.0)
    assert sizes(run) == []
    run.end(A, dt=2.0)
    assert sizes(run) == [200] and times(run) == [27.0]


# -- paced ------------------------------------------------------------------------------------


def queued_ahead_ms(run: Run) -> list[float]:
    """Audio Twilio holds beyond real time right after each send (a FIFO playing at 1x)."""
    queue, last, ahead = 0.0, -math.inf, []
    for t, message in run.sent:
        if isinstance(message, Clear):
            queue, last = 0.0, t
        elif message.payload:
            queue = max(0.0, queue - (t - last)) + len(message.payload) / 8
            last = t
            ahead.append(queue)
    return ahead


@pytest.mark.parametrize("lead_ms", [0.0, 60.0, 160.0])
def test_paced_never_runs_more_than_its_lead_ahead_even_after_a_2s_stall(lead_ms: float) -> None:
    run = Run(make_strategy("paced", lead_ms))
    for _ in range(25):  # 1 s of audio in 100 ms
        run.push(A, 320, dt=4.0)
    run.advance(run.now + 2000.0)  # the model stalls 2 s: Twilio's queue drains
    sent_before = sum(sizes(run))
    for _ in range(25):  # then 1 s of audio arrives at once
        run.push(A, 320)
    stall_end = run.now
    run.advance(stall_end + 200.0)
    assert max(queued_ahead_ms(run)) <= lead_ms + 20.0 + 1e-9
    burst_ms = (sum(sizes(run)) - sent_before) / 8
    assert burst_ms <= lead_ms + 200.0 + 20.0 + 1e-9  # no catch-up burst after the stall
    assert run.strategy.reanchors == 1
    run.end(A)
    run.finish()
    check_all(run)
    check_waits(run)


def test_paced_deadlines_come_from_the_anchor_so_late_polls_do_not_drift() -> None:
    strategy = make_strategy("paced", 60)
    first = strategy.push(AudioChunk("a", 0, bytes(FRAME_BYTES * 500)), 0.0)  # 10 s at once
    sent_at = [0.0 for m in first if isinstance(m, Media) and m.payload]
    assert len(sent_at) == 4  # the lead: frames 0-3 (media 0-60 ms) are due at once
    while (deadline := strategy.next_deadline()) is not None:
        now = deadline + 3.0  # every poll 3 ms late
        sent_at += [now for m in strategy.poll(now) if isinstance(m, Media) and m.payload]
    # frame k leaves by anchor + 20k - lead + 3 ms, whatever came before it
    assert len(sent_at) == 500
    assert sent_at[-1] == pytest.approx(499 * 20.0 - 60.0 + 3.0)


def test_paced_continues_its_clock_across_items_when_audio_is_continuous() -> None:
    run = Run(make_strategy("paced", 40))
    run.push(A, FRAME_BYTES * 10)
    run.end(A)
    run.push(("b", 0), FRAME_BYTES * 10, dt=50.0)
    run.end(("b", 0))
    run.finish()
    assert run.strategy.reanchors == 0
    gaps = [b - a for a, b in zip(times(run), times(run)[1:], strict=False)]
    assert max(gaps) == pytest.approx(20.0)  # b's first frame follows a's last at 1x
    check_all(run)


def test_paced_waits_for_a_whole_frame_and_sends_an_items_short_tail_at_its_end() -> None:
    run = Run(make_strategy("paced", 0))
    run.push(A, 100, dt=1.0)
    assert sizes(run) == []
    run.push(A, 100, dt=1.0)
    assert sizes(run) == [160]
    run.end(A, dt=1.0)
    run.finish()
    assert sizes(run) == [160, 40]


# -- adaptive ---------------------------------------------------------------------------------


class FifoTwilio:
    """Twilio as documented: plays media in order at 1x; a mark echoes when the audio before it
    finished playing. Fixed one-way delay each way."""

    def __init__(self, one_way_ms: float = 30.0) -> None:
        self.one_way_ms = one_way_ms
        self.tail_ms = -math.inf
        self.echoes: list[tuple[float, str]] = []
        self.gaps_ms: list[float] = []

    def receive(self, sent: list[Outbound], now: float) -> None:
        arrival = now + self.one_way_ms
        for message in sent:
            assert isinstance(message, Media)
            if message.payload:
                start = max(arrival, self.tail_ms)
                if message.offset > 0 and start > self.tail_ms:
                    self.gaps_ms.append(start - self.tail_ms)  # mid-item underrun: heard
                self.tail_ms = start + len(message.payload) / 8
            for mark in message.marks:
                self.echoes.append((max(arrival, self.tail_ms) + self.one_way_ms, mark.name))


def play_item(strategy: Any, twilio: FifoTwilio, item: str, start_ms: float,
              deltas: list[tuple[float, int]]) -> float:
    """Deliver one item's deltas (arrival offset from start, size); deliver echoes in time."""
    events = [(start_ms + t, size) for t, size in deltas]
    now = start_ms

    def run_until(t: float) -> None:
        nonlocal now
        while True:
            deadline = strategy.next_deadline()
            echo_t = min((e[0] for e in twilio.echoes), default=math.inf)
            nxt = min(deadline if deadline is not None else math.inf, echo_t)
            if nxt > t:
                break
            now = max(now, nxt)
            if echo_t <= now:
                twilio.echoes.sort()
                _, name = twilio.echoes.pop(0)
                strategy.echo(name, now)
            else:
                twilio.receive(strategy.poll(now), now)
        now = max(now, t)

    for t, size in events:
        run_until(t)
        twilio.receive(strategy.push(AudioChunk(item, 0, bytes(size)), now), now)
    run_until(now)
    twilio.receive(strategy.end(item, 0, now), now)
    run_until(now + 5_000.0)
    return now


def stalling_item() -> list[tuple[float, int]]:
    """1.2 s of audio: 200 ms delivered at 1x, a 300 ms stall, then 1 s at 2x."""
    first = [(i * 5.0, 40) for i in range(40)]  # 40 B (5 ms) every 5 ms
    rest = [(500.0 + i * 2.5, 40) for i in range(200)]
    return first + rest


def test_adaptive_learns_the_preroll_a_stalling_call_needs_and_then_does_not_starve() -> None:
    strategy = make_strategy("adaptive", 20, floor_ms=0, cap_ms=400)
    assert isinstance(strategy, AdaptiveStrategy)
    twilio = FifoTwilio()
    end = play_item(strategy, twilio, "first", 0.0, stalling_item())
    assert sum(twilio.gaps_ms) > 100.0  # 20 ms was far too little: the caller heard gaps
    learned = strategy.hold_ms
    # upstream alone: byte at media 200 ms arrives at 500 ms -> the item needed 300 ms
    assert learned == pytest.approx(300.0, abs=25.0)
    twilio.gaps_ms.clear()
    play_item(strategy, twilio, "second", end + 1_000.0, stalling_item())
    assert twilio.gaps_ms == []  # the learned pre-roll absorbs the same stall


def test_forward_starves_on_the_same_stall_every_time() -> None:
    strategy = make_strategy("forward", 0)
    twilio = FifoTwilio()
    end = play_item(strategy, twilio, "first", 0.0, stalling_item())
    play_item(strategy, twilio, "second", end + 1_000.0, stalling_item())
    assert sum(twilio.gaps_ms) > 400.0


def test_adaptive_holds_threshold_first_and_stays_within_floor_and_cap() -> None:
    strategy = AdaptiveStrategy(75, floor_ms=40, cap_ms=120)
    assert strategy.hold_ms == 75
    strategy.samples_ms.extend([0.0, 5.0])
    assert strategy.hold_ms == 40
    strategy.samples_ms.extend([900.0] * 10)
    assert strategy.hold_ms == 120


def test_adaptive_sends_whole_frames_after_the_hold() -> None:
    run = Run(make_strategy("adaptive", 100))
    for _ in range(60):
        run.push(A, 50, dt=4.0)
    run.end(A, dt=1.0)
    run.finish()
    *body, tail = sizes(run)
    assert times(run)[0] == pytest.approx(104.0)  # first delta at 4 ms + 100 ms hold
    assert all(size % FRAME_BYTES == 0 for size in body) and tail <= 60 * 50
    check_all(run)
    check_waits(run)


def test_nearest_rank_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert nearest_rank_percentile(values, 95) == 95.0
    assert nearest_rank_percentile([3.0], 95) == 3.0
    assert nearest_rank_percentile([5.0, 1.0, 9.0], 50) == 5.0


def test_paced_frame_size_follows_frame_ms_and_align_rounds_it_to_whole_frames() -> None:
    assert PacedStrategy(0, frame_ms=40).frame_bytes == 320
    assert PacedStrategy(0, frame_ms=25).frame_bytes == 200
    assert PacedStrategy(0, frame_ms=25, align_frames=True).frame_bytes == 320
    with pytest.raises(ValueError, match="frame_ms"):
        make_strategy("paced", 0, frame_ms=0)


def test_the_original_report_buffer_rejects_an_unknown_variant() -> None:
    with pytest.raises(ValueError, match="unknown variant 'second'; choose one of final, first"):
        make_strategy("original_report", 50, variant="second")


class JitteryReturnTwilio(FifoTwilio):
    """FIFO Twilio whose echoes travel back over a jittery path (in order, as over one TCP
    connection): each echo's trip takes 30 ms plus up to 120 ms at random."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.last_echo_ms = -math.inf

    def receive(self, sent: list[Outbound], now: float) -> None:
        before = len(self.echoes)
        super().receive(sent, now)
        for index in range(before, len(self.echoes)):
            played_ms, name = self.echoes[index]
            back = played_ms + self.rng.uniform(0, 120)
            self.last_echo_ms = max(self.last_echo_ms, back)
            self.echoes[index] = (self.last_echo_ms, name)


def bursty_item() -> list[tuple[float, int]]:
    """2 s of audio delivered in 400 ms: nothing upstream ever starves the queue."""
    return [(i * 2.0, 80) for i in range(200)]


def test_adaptive_does_not_mistake_return_path_jitter_for_starvation() -> None:
    strategy = make_strategy("adaptive", 20, floor_ms=0, cap_ms=400)
    assert isinstance(strategy, AdaptiveStrategy)
    twilio = JitteryReturnTwilio(seed=7)
    start = 0.0
    for n in range(6):
        start = play_item(strategy, twilio, f"item{n}", start, bursty_item()) + 3_000.0
    assert twilio.gaps_ms == []  # nothing starved
    assert strategy.hold_ms < 60.0  # so nothing should be learned beyond the echoes' noise


@pytest.mark.parametrize(("name", "options", "said"), [
    ("rechunk", {"align_frames": "no"}, "option align_frames must be True or False, got 'no'"),
    ("forward", {"mark_every_ms": "100"}, "option mark_every_ms must be a number, got '100'"),
    ("adaptive", {"history": 2.5}, "option history must be a whole number, got 2.5"),
    ("adaptive", {"percentile": "95"}, "option percentile must be a number, got '95'"),
    ("paced", {"frame_ms": None}, "option frame_ms may not be None"),
])  # fmt: skip
def test_an_option_of_the_wrong_type_is_named_not_coerced(
    name: str, options: dict[str, Any], said: str
) -> None:
    """``align_frames="no"`` was taken as True (a string is truthy), and the others failed
    inside Python (``must be real number, not str``) without naming the option."""
    with pytest.raises(ValueError, match=f"strategy '{name}': " + re.escape(said)):
        make_strategy(name, 50, **options)
    assert make_strategy("adaptive", 50, history=4.0, mark_every_ms=None).name == "adaptive"


def _adaptive_samples_through_a_fifo(real_time_answer_first: bool) -> list[float]:
    """adaptive before a FIFO Twilio with no network delay, driven every 0.5 ms. The second
    answer (1 s of audio delivered in 250 ms) has its second half reach Twilio 800 ms late, a
    starvation of ~400 ms the strategy must learn; the first (if any) is streamed at real time."""
    strategy = make_strategy("adaptive", 0)
    plays_until, echoes = 0.0, []

    def send(out: list[Any], now: float) -> None:
        nonlocal plays_until
        for message in out:
            if isinstance(message, Media):
                late = message.item_id == "two" and message.offset >= 4000
                plays_until = max(plays_until, now + 800.0 * late) + len(message.payload) / 8
                echoes.extend((plays_until, mark.name) for mark in message.marks)

    deltas = [(20.0 * k, "one") for k in range(25)] if real_time_answer_first else []
    deltas += [(5000.0 + 5 * k, "two") for k in range(50)]
    ends = {"one": 500.0, "two": 5300.0}
    for now in (step / 2 for step in range(18_000)):
        echoes.sort()
        while echoes and echoes[0][0] <= now:
            strategy.echo(echoes.pop(0)[1], now)
        while deltas and deltas[0][0] <= now:
            send(strategy.push(AudioChunk(deltas.pop(0)[1], 0, b"\x01" * 160), now), now)
        for item in [item for item, at in ends.items() if at <= now]:
            send(strategy.end(item, 0, now), now)
            del ends[item]
        deadline = strategy.next_deadline()
        if deadline is not None and deadline <= now:
            send(strategy.poll(now), now)
    assert isinstance(strategy, AdaptiveStrategy)
    return list(strategy.samples_ms)


def test_adaptive_learns_a_starvation_after_an_answer_streamed_at_real_time() -> None:
    """A mark covers ~100 ms sent over time, part of it played before the mark left: a trip
    counted from the mark's send undershot the path's by up to a mark's span (-80 ms here),
    so every later answer looked queued and its starvation was ignored for the rest of the
    call. The call's least trip counts from each mark's first byte."""
    (fresh,) = _adaptive_samples_through_a_fifo(real_time_answer_first=False)
    first, second = _adaptive_samples_through_a_fifo(real_time_answer_first=True)
    assert fresh > 300 and first == 0.0
    assert second == pytest.approx(fresh, abs=25)

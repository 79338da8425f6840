"""The SDK example's inbound path (PR #2033 as merged), held to its code's rules."""

from __future__ import annotations

import pytest

from labkit.sdk_example_inbound import SdkExampleInbound, first_send

FRAME = bytes(160)


def test_a_steady_caller_is_sent_whole_480_byte_buffers_once_warmed_up() -> None:
    handler = SdkExampleInbound(warmup_chunks=0)
    sent = [handler.frame(FRAME, 20.0 * i) for i in range(9)]
    assert [[len(p) for p in s] for s in sent] == [[], [], [480], [], [], [480], [], [], [480]]


def test_the_warm_up_releases_whole_sends_once_it_holds_1200_bytes() -> None:
    handler = SdkExampleInbound(warmup_chunks=3, created_ms=0.0)
    sent = [len(p) for i in range(9) for p in handler.frame(FRAME, 20.0 * i)]
    assert sent == [1440]  # three 480 B sends: the first total >= 3 x 400 B


def test_the_flush_loop_sends_a_partial_buffer_only_when_the_last_send_is_stale() -> None:
    handler = SdkExampleInbound(warmup_chunks=0, created_ms=0.0)
    handler.frame(FRAME, 0.0)
    assert handler.wake(100.0) == []  # exactly 100 ms: not "more than"
    assert [len(p) for p in handler.wake(100.5)] == [160]
    assert handler.wake(300.0) == []  # nothing held


@pytest.mark.parametrize("phase_ms, merged, before", [
    (10.0, (180.0, 1600), (10.0, 160)),  # a 160 B partial first: 160 + 3 x 480
    (30.0, (140.0, 1280), (30.0, 320)),  # a 320 B partial first: 320 + 2 x 480
    (45.0, (160.0, 1440), (40.0, 480)),  # the third frame fills 480 B before the wake
])  # fmt: skip
def test_the_first_send_depends_on_where_the_loop_wakes(
        phase_ms: float, merged: tuple[float, int], before: tuple[float, int]) -> None:  # fmt: skip
    first = first_send(3, phase_ms)
    assert (first.at_ms, first.bytes) == merged
    first = first_send(0, phase_ms)
    assert (first.at_ms, first.bytes) == before


def test_a_handler_made_just_before_the_call_sends_no_partial() -> None:
    assert first_send(3, 10.0, created_ms_before=0.0).bytes == 1440


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="warmup_chunks must be >= 0, got -1"):
        SdkExampleInbound(-1)
    with pytest.raises(ValueError, match=r"wake_phase_ms must be in \[0, 50\), got 50"):
        first_send(3, 50)

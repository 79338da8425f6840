"""Link models: in-order delivery, the promised marginals, correlation, stalls, determinism."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from labkit.sim.links import LINK_NAMES, CorrelatedLink, TcpLink, make_link, make_world


def send_all(name: str, sent: np.ndarray, seed: int = 0, **params: float) -> np.ndarray:
    link = make_link(name, seed, **params)
    return np.array([link.send(float(t)) for t in sent])


@pytest.mark.parametrize("name", LINK_NAMES)
def test_delivery_is_in_order_and_never_early(name: str) -> None:
    sent = np.sort(np.random.default_rng(1).uniform(0, 20_000, 3000))
    arrived = send_all(name, sent, per_message_ms=0.5)
    assert np.all(np.diff(arrived) >= 0)
    assert np.all(arrived >= sent + 0.5 - 1e-9)


@pytest.mark.parametrize("name", LINK_NAMES)
def test_same_seed_same_delays(name: str) -> None:
    sent = np.arange(0, 5000, 7.0)
    np.testing.assert_array_equal(send_all(name, sent, seed=3), send_all(name, sent, seed=3))


def test_jitter_draws_the_promised_mean_and_p99() -> None:
    sent = np.arange(0, 4e7, 400.0)  # far apart, so in-order delivery never holds one back
    delays = send_all("jitter", sent, mean_ms=50, p99_ms=150) - sent
    assert delays.mean() == pytest.approx(50, rel=0.03)
    assert np.percentile(delays, 99) == pytest.approx(150, rel=0.05)


def test_correlated_shares_the_marginal_but_not_the_independence() -> None:
    sent = np.arange(0, 4e7, 400.0)
    delays = send_all("correlated", sent, mean_ms=50, p99_ms=150, tau_ms=200) - sent
    assert delays.mean() == pytest.approx(50, rel=0.05)
    back_to_back = np.repeat(np.arange(0, 1e6, 1000.0), 2) + np.tile([0.0, 1.0], 1000)
    paired = send_all("correlated", back_to_back, mean_ms=50, p99_ms=150) - back_to_back
    independent = send_all("jitter", back_to_back, mean_ms=50, p99_ms=150) - back_to_back
    assert np.abs(np.diff(paired)[::2]).mean() < 0.1 * np.abs(np.diff(independent)[::2]).mean()


def test_stalls_freeze_the_path_for_100_to_600_ms() -> None:
    sent = np.arange(0, 600_000, 5.0)
    delays = send_all("stalls", sent, delay_ms=40, rate_per_s=0.5) - sent
    assert delays.min() == pytest.approx(40)
    assert delays.max() <= 40 + 600 + 1e-6
    assert 0.05 < np.mean(delays > 45) < 0.4  # ~0.5/s x ~350 ms frozen


def test_tcp_path_delay_is_a_function_of_time_shared_by_back_to_back_messages() -> None:
    # the same seed gives the same path whatever the messages: a strategy sending 10 messages
    # and one sending 1000 meet the same delays at the same times
    few = make_link("correlated", 9)
    many = make_link("correlated", 9)
    times = np.arange(0.0, 20_000.0, 37.0)
    dense = np.sort(np.concatenate([times, np.random.default_rng(0).uniform(0, 20_000, 5000)]))
    assert isinstance(few, CorrelatedLink) and isinstance(many, CorrelatedLink)
    many.path.at_many(dense)
    np.testing.assert_array_equal(few.path.at_many(times), many.path.at_many(times))
    assert [few.path.at(float(t)) for t in times[:50]] == few.path.at_many(times[:50]).tolist()


def test_tcp_world_splits_sender_and_path_parameters_and_has_stalls_by_default() -> None:
    world = make_world("tcp", 0, {"mean_ms": 30.0, "p99_ms": 90.0, "stall_rate_per_s": 2.0})
    assert world.sender.stall_rate_per_s == 2.0
    assert world.sender.stall_ms == TcpLink.sender_defaults["stall_ms"]
    assert world.sender.send_cost_ms > 0 and world.fwd.per_message_ms > 0
    assert make_world("jitter", 0).sender.punctual
    with pytest.raises(ValueError, match="stall_ms"):
        make_world("jitter", 0, {"stall_ms": -1.0})


def test_bad_link_input_names_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="unknown link 'wifi'; choose one of tcp, correlated"):
        make_link("wifi")
    with pytest.raises(ValueError, match="mean_ms < p99_ms"):
        make_link("jitter", mean_ms=100, p99_ms=50)
    with pytest.raises(ValueError, match=r"^link 'constant' takes no parameter 'delay'; it takes "
                                         r"delay_ms, per_message_ms"):  # fmt: skip
        make_link("constant", delay=3)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "3", None])
def test_a_seed_that_is_not_a_whole_number_is_named_as_the_seed(seed: object) -> None:
    with pytest.raises(ValueError, match=f"^seed must be a whole number >= 0, got {seed!r}$"):
        make_world("tcp", seed)  # type: ignore[arg-type]
    first_arrivals = [make_world("tcp", seed).fwd.send(0.0) for seed in (np.int64(3), 3)]
    assert first_arrivals[0] == first_arrivals[1]  # a numpy integer is the same seed


@pytest.mark.parametrize("per_message_ms", [0.0, 0.3])
@pytest.mark.parametrize("name", LINK_NAMES)
def test_bulk_arrivals_equal_one_send_at_a_time(name: str, per_message_ms: float) -> None:
    # the simulator's fast path relies on this: same numbers, bit for bit, and the same state
    sent = np.sort(np.random.default_rng(2).uniform(0, 20_000, 1500)).tolist()
    one = make_link(name, 4, per_message_ms=per_message_ms)
    bulk = make_link(name, 4, per_message_ms=per_message_ms)
    expected = [one.send(t) for t in sent[:700]]
    got = bulk.arrivals_ms(sent[:700]).tolist()
    assert got == expected
    assert [one.send(t) for t in sent[700:]] == bulk.arrivals_ms(sent[700:]).tolist()
    assert bulk.arrivals_ms([]).tolist() == []


@pytest.mark.parametrize(("mean_ms", "p99_ms", "gap_ms"), [
    (50.0, 150.0, 30.0),  # bursts: many messages are held back by earlier ones
    (50.0, 50.0 * (1 + 1e-12), 30.0),  # delays equal but for the last bits
    (1000.0, 1000.0001, 1.0),  # each message leads, and its delay shows to the last bit
])  # fmt: skip
def test_bulk_jitter_arrivals_equal_one_send_at_a_time_for_bursts(
    mean_ms: float, p99_ms: float, gap_ms: float
) -> None:
    # which delays matter to in-order delivery is screened with numpy's exp, which differs
    # from math.exp in the last bit now and then
    rng = np.random.default_rng(5)
    sent = np.repeat(np.cumsum(rng.exponential(gap_ms, 300)), rng.integers(1, 12, 300)).tolist()
    one = make_link("jitter", 6, mean_ms=mean_ms, p99_ms=p99_ms)
    bulk = make_link("jitter", 6, mean_ms=mean_ms, p99_ms=p99_ms)
    assert bulk.arrivals_ms(np.array(sent)).tolist() == [one.send(t) for t in sent]
    later = (np.array(sent[:5]) + sent[-1]).tolist()
    assert bulk.arrivals_ms(later).tolist() == [one.send(t) for t in later]


@pytest.mark.parametrize(("name", "params", "said"), [
    ("constant", {"delay_ms": math.nan}, "link 'constant': delay_ms must be a finite number >= 0 "
                                         "and <= 600000, got nan"),
    ("constant", {"delay_ms": math.inf}, "delay_ms must be a finite number >= 0 and <= 600000"),
    ("stalls", {"rate_per_s": math.nan}, "rate_per_s must be a finite number >= 0 and <= 1000"),
    ("stalls", {"rate_per_s": math.inf}, "rate_per_s must be a finite number >= 0 and <= 1000"),
    ("stalls", {"max_stall_ms": math.inf}, "max_stall_ms must be a finite number >= 100 and <= "),
    ("stalls", {"min_stall_ms": True}, "min_stall_ms must be a finite number >= 0 and <= 600000, "
                                       "got True"),
    ("tcp", {"tau_ms": 5e-324}, "tau_ms must be a finite number >= 0.001 and <= 600000, got "),
    ("tcp", {"per_message_ms": "1"}, "per_message_ms must be a finite number >= 0 and <= 600000, "
                                     "got '1'"),
    ("tcp", {"stall_rate_per_s": 1e12}, "stall_rate_per_s must be a finite number >= 0 and <= "),
    ("tcp", {"send_cost_ms": 1e9}, "send_cost_ms must be a finite number >= 0 and <= 600000"),
    ("jitter", {"mean_ms": 1e300, "p99_ms": 1e301}, "mean_ms must be a finite number > 0 and <="),
])  # fmt: skip
def test_a_world_parameter_out_of_its_model_is_refused_by_name(
    name: str, params: dict[str, float], said: str
) -> None:
    """NaN passed "refuse if below 0" (a NaN delay made every metric NaN; a NaN freeze rate meant
    no freezes); inf bounds crashed inside numpy; a vanishing tau_ms broke the grid's index; an
    absurd rate of pauses, or a send cost of days, stepped through them forever."""
    with pytest.raises(ValueError, match=re.escape(said)):
        make_world(name, 0, params)


def test_a_path_grid_beyond_its_cap_is_refused_naming_tau_ms() -> None:
    """The path is held as a grid of 16 points per tau_ms: a tiny tau_ms over a long call, or a
    message sent days into one, took gigabytes before any error."""
    world = make_world("tcp", 0, {"tau_ms": 0.05})
    world.fwd.send(1_000.0)
    said = "tau_ms=0.05 samples the path every 0.003125 ms, so reaching 20 s of the call"
    with pytest.raises(ValueError, match=re.escape(said)):
        world.fwd.send(20_000.0)
    with pytest.raises(ValueError, match="more than 4,000,000 points"):
        world.back.arrivals_ms(np.array([1.0, 20_000.0]))

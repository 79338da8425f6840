"""Link models: when a message sent at ``now`` reaches the other end of one TCP connection.

Delivery is in order, as over one TCP connection: ``arrival_i = max(arrival_{i-1}, sent_i + delay_i)
+ per_message_ms`` (the receiver's per-message cost). The models differ
only in how ``delay_i`` is drawn:

- ``ideal``: 0; ``constant(delay_ms)``.
- ``jitter(mean_ms, p99_ms)``: every message draws its own lognormal delay. With many tiny messages
  in order, the slowest of many decides, so their number matters.
- ``correlated(mean_ms, p99_ms, tau_ms)``: the path's log-delay is an Ornstein-Uhlenbeck process
  sampled at send time, with the same lognormal marginal as ``jitter``; back-to-back messages see
  nearly the same delay, so their number hardly matters.
- ``stalls(delay_ms, rate_per_s, min_stall_ms, max_stall_ms)``: constant delay plus rare path
  freezes (Poisson in time); a message sent during a freeze waits for its end.

Every link also carries the sender's timer lateness: ``lateness_ms`` (mean of an exponential) is how
late a poll fires after its deadline. See notebooks/01_why_tiny_packets_jitter.ipynb.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

LINK_NAMES = ("ideal", "constant", "jitter", "correlated", "stalls")
Z_P99 = 2.3263478740408408  # standard normal 99th percentile
FloatArray = npt.NDArray[np.float64]
SendTimes = list[float] | FloatArray  # send times in order, as a list or an array
DRAW_BLOCK = 512  # random numbers drawn per numpy call: per-message numpy calls dominate otherwise
# np.exp is within a few ulps (~1e-15 relative) of math.exp: a margin a million times wider
EXP_SCREEN_REL_TOL = 1e-9


class Link:
    """Base link: in-order delivery of messages whose delay comes from ``_delay_ms``."""

    name = "ideal"

    def __init__(
        self, rng: np.random.Generator, per_message_ms: float = 0.0, lateness_ms: float = 0.0
    ) -> None:
        if per_message_ms < 0 or lateness_ms < 0:
            raise ValueError(
                f"link {self.name!r}: per_message_ms and lateness_ms must be >= 0, "
                f"got {per_message_ms} and {lateness_ms}"
            )
        self.rng = rng
        self.per_message_ms = per_message_ms
        self.lateness_ms = lateness_ms
        self._last_arrival_ms = -math.inf
        self._normals: list[float] = []
        self._exponentials: list[float] = []

    def send(self, now: float) -> float:
        """Arrival time of a message sent at ``now`` (sends must come in time order)."""
        arrival = max(self._last_arrival_ms, now + self._delay_ms(now)) + self.per_message_ms
        self._last_arrival_ms = arrival
        return arrival

    def arrivals_ms(self, sent_ms: SendTimes) -> FloatArray:
        """Arrival times of messages sent at ``sent_ms`` (in order): the same numbers, and the
        same state afterwards, as calling ``send`` on each (vectorised where delays allow)."""
        return self._in_order(np.asarray(sent_ms, dtype=np.float64))

    def _send_each(self, sent_ms: SendTimes) -> FloatArray:
        times = sent_ms.tolist() if isinstance(sent_ms, np.ndarray) else sent_ms
        return np.array([self.send(now) for now in times], dtype=np.float64)

    def _in_order(self, due_ms: FloatArray) -> FloatArray:
        """``send``'s in-order recursion over ``due_ms = sent + delay``, exactly as it rounds."""
        if len(due_ms) == 0:
            return due_ms
        if self.per_message_ms != 0.0:
            return np.array([self._arrive(due) for due in due_ms.tolist()], dtype=np.float64)
        arrived: FloatArray = np.maximum.accumulate(np.maximum(due_ms, self._last_arrival_ms))
        self._last_arrival_ms = float(arrived[-1])
        return arrived

    def _arrive(self, due_ms: float) -> float:
        arrival = max(self._last_arrival_ms, due_ms) + self.per_message_ms
        self._last_arrival_ms = arrival
        return arrival

    def lateness(self) -> float:
        """How late the sender's next timer fires (ms)."""
        if self.lateness_ms == 0.0:
            return 0.0
        if not self._exponentials:
            self._exponentials = self.rng.exponential(self.lateness_ms, DRAW_BLOCK).tolist()
        return self._exponentials.pop()

    def _delay_ms(self, now: float) -> float:
        return 0.0

    def _normals_in_send_order(self, count: int) -> FloatArray:
        """The next ``count`` values ``_normal`` would return, drawing blocks as it would:
        ``_normal`` pops from the end of a block, so each block is read backwards."""
        held = len(self._normals)
        taken = min(count, held)
        parts = [np.array(self._normals[held - taken :][::-1], dtype=np.float64)]
        del self._normals[held - taken :]
        need = count - taken
        while need > 0:
            block = self.rng.standard_normal(DRAW_BLOCK)
            used = min(need, DRAW_BLOCK)
            parts.append(block[::-1][:used])
            self._normals = block[: DRAW_BLOCK - used].tolist()
            need -= used
        return np.concatenate(parts)

    def _normal(self) -> float:
        if not self._normals:
            self._normals = self.rng.standard_normal(DRAW_BLOCK).tolist()
        return self._normals.pop()


class ConstantLink(Link):
    name = "constant"

    def __init__(self, rng: np.random.Generator, delay_ms: float = 50.0, **base: float) -> None:
        super().__init__(rng, **base)
        if delay_ms < 0:
            raise ValueError(f"link 'constant': delay_ms must be >= 0, got {delay_ms}")
        self.delay_ms = delay_ms

    def _delay_ms(self, now: float) -> float:
        return self.delay_ms

    def arrivals_ms(self, sent_ms: SendTimes) -> FloatArray:
        return self._in_order(np.asarray(sent_ms, dtype=np.float64) + self.delay_ms)


def lognormal_params(mean_ms: float, p99_ms: float) -> tuple[float, float]:
    """(mu, sigma) of the log of a lognormal delay with the given mean and 99th percentile."""
    if not 0 < mean_ms < p99_ms:
        raise ValueError(f"link jitter: need 0 < mean_ms < p99_ms, got {mean_ms} and {p99_ms}")
    log_ratio = math.log(p99_ms / mean_ms)
    discriminant = Z_P99**2 - 2 * log_ratio
    if discriminant < 0:
        raise ValueError(
            f"link jitter: p99_ms/mean_ms = {p99_ms / mean_ms:.1f} is too heavy a tail for a "
            f"lognormal (at most {math.exp(Z_P99**2 / 2):.1f})"
        )
    sigma = Z_P99 - math.sqrt(discriminant)
    return math.log(mean_ms) - sigma**2 / 2, sigma


class JitterLink(Link):
    name = "jitter"

    def __init__(
        self, rng: np.random.Generator, mean_ms: float = 50.0, p99_ms: float = 150.0, **base: float
    ) -> None:
        super().__init__(rng, **base)
        self.mu, self.sigma = lognormal_params(mean_ms, p99_ms)

    def send(self, now: float) -> float:
        # Link.send with the lognormal delay and _normal's draw inline (the same numbers, in
        # the same order): the event loop sends every message and every echo back one at a time
        normals = self._normals
        if not normals:
            normals = self._normals = self.rng.standard_normal(DRAW_BLOCK).tolist()
        due_ms = now + math.exp(self.mu + self.sigma * normals.pop())
        last_ms = self._last_arrival_ms
        arrival = (last_ms if last_ms > due_ms else due_ms) + self.per_message_ms
        self._last_arrival_ms = arrival
        return arrival

    def arrivals_ms(self, sent_ms: SendTimes) -> FloatArray:
        sent = np.asarray(sent_ms, dtype=np.float64)
        log_delays = self.mu + self.sigma * self._normals_in_send_order(len(sent))
        # numpy's exp differs from libm's (math.exp, what ``send`` uses) in the last bit now and
        # then, so it only screens: a message whose due time stays clearly below an earlier one's
        # arrives with that earlier message and its exact delay cannot matter. math.exp (~40 ns
        # a value with the list round trip, numpy's 1 ns) runs on the others only: about half
        # of a sender's messages, as they leave in bursts (saves a fifth of this stage).
        due = sent + np.exp(log_delays)
        rows = _may_lead(due, self._last_arrival_ms)
        exact = np.fromiter(map(math.exp, log_delays[rows].tolist()), np.float64, len(rows))
        due[rows] = sent[rows] + exact
        return self._in_order(due)


def _may_lead(due_ms: FloatArray, last_arrival_ms: float) -> npt.NDArray[np.intp]:
    """Rows whose due time, known to within ``EXP_SCREEN_REL_TOL``, might reach the largest due
    time before them (or ``last_arrival_ms``): in-order delivery holds all others back anyway."""
    before = np.maximum.accumulate(np.concatenate(([last_arrival_ms], due_ms[:-1])))
    slack = EXP_SCREEN_REL_TOL * (np.abs(before) + np.abs(due_ms))
    return np.flatnonzero(due_ms >= before - slack)


class CorrelatedLink(JitterLink):
    name = "correlated"

    def __init__(
        self,
        rng: np.random.Generator,
        mean_ms: float = 50.0,
        p99_ms: float = 150.0,
        tau_ms: float = 2000.0,
        **base: float,
    ) -> None:
        super().__init__(rng, mean_ms, p99_ms, **base)
        if tau_ms <= 0:
            raise ValueError(f"link 'correlated': tau_ms must be > 0, got {tau_ms}")
        self.tau_ms = tau_ms
        self._log_delay = self.mu + self.sigma * self._normal()  # start in the stationary law
        self._sampled_ms = math.nan

    def _delay_ms(self, now: float) -> float:
        if not math.isnan(self._sampled_ms):
            decay = math.exp(-max(now - self._sampled_ms, 0.0) / self.tau_ms)
            spread = self.sigma * math.sqrt(1.0 - decay * decay)
            self._log_delay = (
                self.mu + (self._log_delay - self.mu) * decay + spread * self._normal()
            )
        self._sampled_ms = now
        return math.exp(self._log_delay)

    send = Link.send  # its own _delay_ms, not JitterLink's inline draw
    arrivals_ms = Link._send_each  # path-dependent delays: one message at a time


class StallLink(Link):
    name = "stalls"

    def __init__(
        self,
        rng: np.random.Generator,
        delay_ms: float = 40.0,
        rate_per_s: float = 0.2,
        min_stall_ms: float = 100.0,
        max_stall_ms: float = 600.0,
        **base: float,
    ) -> None:
        super().__init__(rng, **base)
        if delay_ms < 0 or rate_per_s < 0 or not 0 <= min_stall_ms <= max_stall_ms:
            raise ValueError(
                "link 'stalls': need delay_ms >= 0, rate_per_s >= 0, 0 <= min_stall_ms <= "
                f"max_stall_ms; got {delay_ms}, {rate_per_s}, {min_stall_ms}, {max_stall_ms}"
            )
        self.delay_ms = delay_ms
        self.rate_per_s = rate_per_s
        self.min_stall_ms = min_stall_ms
        self.max_stall_ms = max_stall_ms
        self._stall_start_ms = -math.inf
        self._stall_end_ms = -math.inf
        self._draw_next_stall(0.0)

    def _draw_next_stall(self, after_ms: float) -> None:
        if self.rate_per_s == 0:
            self._stall_start_ms = self._stall_end_ms = math.inf
            return
        self._stall_start_ms = after_ms + float(self.rng.exponential(1000.0 / self.rate_per_s))
        length_ms = float(self.rng.uniform(self.min_stall_ms, self.max_stall_ms))
        self._stall_end_ms = self._stall_start_ms + length_ms

    def _delay_ms(self, now: float) -> float:
        while now >= self._stall_end_ms:
            self._draw_next_stall(self._stall_end_ms)
        frozen_ms = self._stall_end_ms - now if now >= self._stall_start_ms else 0.0
        return self.delay_ms + frozen_ms

    arrivals_ms = Link._send_each  # stalls are drawn lazily as time passes


LINK_CLASSES: dict[str, type[Link]] = {
    "ideal": Link,
    "constant": ConstantLink,
    "jitter": JitterLink,
    "correlated": CorrelatedLink,
    "stalls": StallLink,
}


def make_link(name: str, seed: int | np.random.Generator = 0, **params: float) -> Link:
    """A fresh link model by name, drawing from ``seed`` (an int or a numpy Generator)."""
    if name not in LINK_CLASSES:
        raise ValueError(f"unknown link {name!r}; choose one of {', '.join(LINK_NAMES)}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    try:
        return LINK_CLASSES[name](rng, **params)
    except TypeError as exc:
        raise ValueError(f"link {name!r}: bad parameters {params}: {exc}") from None

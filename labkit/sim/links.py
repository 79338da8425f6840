"""Link models: when a message sent at ``now`` reaches the other end of one TCP connection.

Delivery is in order, as over one TCP connection: ``arrival_i = max(arrival_{i-1}, sent_i + delay_i)
+ c`` with ``c = per_message_ms`` (the receiver's per-message cost). Counting messages from 0,
that is ``arrival_i = (i + 1) c + max_{j <= i}(sent_j + delay_j - j c)``: a running maximum, which
both ``send`` (one at a time) and ``arrivals_ms`` (in bulk) compute, with the same float
operations. The models differ in how ``delay_i`` comes:

- ``tcp`` (the default world): one connection. The path's delay is a function of *time*, shared by
  back-to-back messages: a lognormal (``mean_ms``, ``p99_ms``) whose log drifts as an
  Ornstein-Uhlenbeck process with correlation time ``tau_ms``. Each end pays a per-message cost
  (``send_cost_ms`` at the sender, ``per_message_ms`` at Twilio), and the sender's event loop
  stalls now and then (labkit/sim/sender_loop.py). Many tiny messages cost CPU at each end but
  do not each draw a new delay. Every strategy run on one seed meets the same path and stalls.
- ``correlated``: the same path delay alone (no costs, no stalls).
- ``ideal``: 0; ``constant(delay_ms)``.
- ``jitter(mean_ms, p99_ms)``: *a stress model*: every message draws its own lognormal delay, so
  with in-order delivery the slowest of many decides and their number matters. One TCP connection
  does not behave so (its messages share the path); verdicts that hold only here say so.
- ``stalls(delay_ms, rate_per_s, min_stall_ms, max_stall_ms)``: constant delay plus rare path
  freezes (Poisson in time, e.g. a retransmission timeout); a message sent during one waits.

Every link name also sets the sending app's event loop (``SenderLoop``: timer lateness, stalls,
per-message send cost); its parameters are passed with the link's (``SENDER_PARAMS``) and default
to the link's ``sender_defaults`` (all zero except on ``tcp``). See
notebooks/01_why_tiny_packets_jitter.ipynb.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from labkit.sim.params import MAX_EVENTS_PER_S, check_number, reach_problem
from labkit.sim.sender_loop import MS_PER_S, SENDER_PARAMS, SenderLoop

LINK_NAMES = ("tcp", "correlated", "ideal", "constant", "jitter", "stalls")
DEFAULT_LINK = "tcp"
STRESS_LINKS = frozenset({"jitter"})  # independent per-message delay: not one TCP connection
Z_P99 = 2.3263478740408408  # standard normal 99th percentile
FloatArray = npt.NDArray[np.float64]
SendTimes = list[float] | FloatArray  # send times in order, as a list or an array
DRAW_BLOCK = 512  # random numbers drawn per numpy call: per-message numpy calls dominate otherwise
PATH_GRID_PER_TAU = 16  # the path delay is sampled 16 times per correlation time
PATH_BLOCK = 1024  # grid points drawn at a time (at most params.MAX_DRAWN_POINTS in all)
# np.exp is within a few ulps (~1e-15 relative) of math.exp: a margin a million times wider
EXP_SCREEN_REL_TOL = 1e-9
SENDER_SEED_OFFSET = 2_000_003  # the sender loop draws from its own stream
ECHO_SEED_OFFSET = 1_000_003  # the return link draws from its own stream


class Link:
    """Base link: in-order delivery of messages whose delay comes from ``_delay_ms``."""

    name = "ideal"
    sender_defaults: ClassVar[dict[str, float]] = {}

    def __init__(self, rng: np.random.Generator, per_message_ms: float = 0.0) -> None:
        self.rng = rng
        self.per_message_ms = check_number(f"link {self.name!r}", "per_message_ms", per_message_ms)
        self._last_arrival_ms = -math.inf
        self._count = 0  # messages sent so far
        self._lead_ms = -math.inf  # max over messages sent of (due - index * per_message_ms)
        self._normals: list[float] = []

    def reach_problem(self, reach_ms: float) -> str | None:
        """Why this link cannot carry messages sent up to ``reach_ms`` (what it would draw to get
        there: ``params.reach_problem``); None when it can. Asked before a run starts."""
        return None  # its delays are drawn per message, not per time

    def send(self, now: float) -> float:
        """Arrival time of a message sent at ``now`` (sends must come in time order)."""
        return self._arrive(now + self._delay_ms(now))

    def arrivals_ms(self, sent_ms: SendTimes) -> FloatArray:
        """Arrival times of messages sent at ``sent_ms`` (in order): the same numbers, and the
        same state afterwards, as calling ``send`` on each (vectorised where delays allow)."""
        return self._in_order(np.asarray(sent_ms, dtype=np.float64))

    def _send_each(self, sent_ms: SendTimes) -> FloatArray:
        times = sent_ms.tolist() if isinstance(sent_ms, np.ndarray) else sent_ms
        return np.array([self.send(now) for now in times], dtype=np.float64)

    def _in_order(self, due_ms: FloatArray) -> FloatArray:
        """In-order arrivals of messages due at ``due_ms = sent + delay`` (the module's running
        maximum), the same numbers as ``_arrive`` on each."""
        if len(due_ms) == 0:
            return due_ms
        cost = self.per_message_ms
        if cost == 0.0:
            arrived: FloatArray = np.maximum.accumulate(np.maximum(due_ms, self._last_arrival_ms))
        else:
            index = np.arange(self._count, self._count + len(due_ms), dtype=np.float64)
            lead = np.maximum.accumulate(np.maximum(due_ms - index * cost, self._lead_ms))
            arrived = lead + (index + 1.0) * cost
            self._lead_ms = float(lead[-1])
        self._count += len(due_ms)
        self._last_arrival_ms = float(arrived[-1])
        return arrived

    def _arrive(self, due_ms: float) -> float:
        cost = self.per_message_ms
        if cost == 0.0:
            last = self._last_arrival_ms
            arrival = last if last > due_ms else due_ms
        else:
            index = float(self._count)
            lead = due_ms - index * cost
            if lead < self._lead_ms:
                lead = self._lead_ms
            self._lead_ms = lead
            arrival = lead + (index + 1.0) * cost
        self._count += 1
        self._last_arrival_ms = arrival
        return arrival

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
        self.delay_ms = check_number("link 'constant'", "delay_ms", delay_ms)

    def _delay_ms(self, now: float) -> float:
        return self.delay_ms

    def arrivals_ms(self, sent_ms: SendTimes) -> FloatArray:
        return self._in_order(np.asarray(sent_ms, dtype=np.float64) + self.delay_ms)


def lognormal_params(mean_ms: float, p99_ms: float) -> tuple[float, float]:
    """(mu, sigma) of the log of a lognormal delay with the given mean and 99th percentile."""
    mean_ms = check_number("link delay", "mean_ms", mean_ms, above=True)
    p99_ms = check_number("link delay", "p99_ms", p99_ms, above=True)
    if not mean_ms < p99_ms:
        raise ValueError(f"link delay: need 0 < mean_ms < p99_ms, got {mean_ms} and {p99_ms}")
    log_ratio = math.log(p99_ms / mean_ms)
    discriminant = Z_P99**2 - 2 * log_ratio
    if discriminant < 0:
        raise ValueError(
            f"link delay: p99_ms/mean_ms = {p99_ms / mean_ms:.2f} is too heavy a tail for a "
            f"lognormal (at most {math.exp(Z_P99**2 / 2):.2f})"
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
        return self._arrive(now + math.exp(self.mu + self.sigma * normals.pop()))

    def arrivals_ms(self, sent_ms: SendTimes) -> FloatArray:
        sent = np.asarray(sent_ms, dtype=np.float64)
        log_delays = self.mu + self.sigma * self._normals_in_send_order(len(sent))
        # numpy's exp differs from libm's (math.exp, what ``send`` uses) in the last bit now and
        # then, so it only screens: a message whose due time stays clearly below an earlier one's
        # arrives with that earlier message and its exact delay cannot matter. math.exp runs on
        # the others only.
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


class PathDelay:
    """A path's one-way delay as a function of time (ms -> ms), the same for every message sent at
    that time: a lognormal marginal of ``mean_ms`` and ``p99_ms`` whose log is an Ornstein-Uhlenbeck
    process of correlation time ``tau_ms``, sampled 16 times per ``tau_ms`` and interpolated
    linearly between grid points (finer detail of the process would be far below the delays that
    matter: 31 ms apart at the default 500 ms). Drawn lazily, block by block."""

    def __init__(self, rng: np.random.Generator, mean_ms: float, p99_ms: float,
                 tau_ms: float) -> None:  # fmt: skip
        # a microsecond at least: a smaller one underflows the grid step
        tau_ms = check_number("link path delay", "tau_ms", tau_ms, at_least=1e-3)
        self.mu, self.sigma = lognormal_params(mean_ms, p99_ms)
        self.tau_ms = tau_ms
        self.step_ms = tau_ms / PATH_GRID_PER_TAU
        self._decay = math.exp(-self.step_ms / tau_ms)
        self._rng = rng
        self._last_log_delay = math.nan
        self._delays: list[float] = []  # the delay at each grid point
        self._grid = np.zeros(0)  # the same as an array, for bulk lookups (made when needed)
        self._extend_to(1)

    def at(self, now: float) -> float:
        """The delay of a message sent at ``now``."""
        position = max(now, 0.0) / self.step_ms
        if position + 1 >= len(self._delays):
            self._extend_to(self._points_to_reach(position, now))
        k = int(position)
        left = self._delays[k]
        return left + (self._delays[k + 1] - left) * (position - k)

    def at_many(self, times: FloatArray) -> FloatArray:
        """``at`` of each of ``times``, the same numbers."""
        if len(times) == 0:
            return np.zeros(0)
        position = np.maximum(times, 0.0) / self.step_ms
        last = float(np.max(position))
        if last + 1 >= len(self._delays):
            self._extend_to(self._points_to_reach(last, float(np.max(times))))
        k = position.astype(np.int64)
        if len(self._grid) != len(self._delays):
            self._grid = np.array(self._delays)
        grid = self._grid
        left = grid[k]
        delays: FloatArray = left + (grid[k + 1] - left) * (position - k)
        return delays

    def reach_problem(self, reach_ms: float) -> str | None:
        """Why the grid cannot reach ``reach_ms`` within the cap; None when it can."""
        return self._grid_problem(max(reach_ms, 0.0) / self.step_ms, reach_ms)

    def _grid_problem(self, position: float, now: float) -> str | None:
        return reach_problem("link path delay", f"tau_ms={self.tau_ms:g} samples the path every "
                             f"{self.step_ms:g} ms", position + 2, now, "points",
                             "a larger tau_ms")  # fmt: skip

    def _points_to_reach(self, position: float, now: float) -> int:
        """Grid points up to the one after ``position`` (the time ``now``), within the cap."""
        problem = self._grid_problem(position, now)
        if problem is not None:
            raise ValueError(problem)
        return int(position) + 2

    def _extend_to(self, points: int) -> None:
        """Draw grid points up to ``points``, in whole blocks: the same numbers however the
        lookups asked for them."""
        have = len(self._delays)
        if points <= have:
            return
        count = -(-(points - have) // PATH_BLOCK) * PATH_BLOCK
        spread = self.sigma * math.sqrt(1.0 - self._decay**2)
        shocks = self._rng.standard_normal(count)
        if have == 0:  # start in the stationary law
            shocks[0] = shocks[0] * self.sigma / spread if spread > 0 else 0.0
            start = np.zeros(1)
        else:
            start = np.array([self._decay * (self._last_log_delay - self.mu)])
        deviations = lfilter([1.0], [1.0, -self._decay], spread * shocks, zi=start)[0]
        block = self.mu + deviations
        self._last_log_delay = float(block[-1])
        self._delays.extend(np.exp(block).tolist())


class CorrelatedLink(Link):
    name = "correlated"

    def __init__(
        self,
        rng: np.random.Generator,
        mean_ms: float = 50.0,
        p99_ms: float = 150.0,
        tau_ms: float = 500.0,
        **base: float,
    ) -> None:
        super().__init__(rng, **base)
        self.path = PathDelay(rng, mean_ms, p99_ms, tau_ms)

    def reach_problem(self, reach_ms: float) -> str | None:
        return self.path.reach_problem(reach_ms)

    def _delay_ms(self, now: float) -> float:
        return self.path.at(now)

    def arrivals_ms(self, sent_ms: SendTimes) -> FloatArray:
        sent = np.asarray(sent_ms, dtype=np.float64)
        return self._in_order(sent + self.path.at_many(sent))


class TcpLink(CorrelatedLink):
    """One TCP connection: the correlated path, a per-message cost at each end, and the sending
    loop's stalls and timer lateness (the defaults below are assumptions, varied in
    notebooks/06_which_explanation_survives.ipynb)."""

    name = "tcp"
    sender_defaults: ClassVar[dict[str, float]] = {
        "lateness_ms": 0.5,  # an asyncio timer fires a little late
        "stall_rate_per_s": 0.5,  # a pause every 2 s on average...
        "stall_ms": 20.0,  # ...of 20 ms on average (exponential)
        "send_cost_ms": 0.05,  # JSON + base64 + WebSocket frame per message (Python)
    }

    def __init__(self, rng: np.random.Generator, mean_ms: float = 50.0, p99_ms: float = 150.0,
                 tau_ms: float = 500.0, per_message_ms: float = 0.02) -> None:  # fmt: skip
        super().__init__(rng, mean_ms, p99_ms, tau_ms, per_message_ms=per_message_ms)


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
        owner = "link 'stalls'"
        self.delay_ms = check_number(owner, "delay_ms", delay_ms)
        self.rate_per_s = check_number(owner, "rate_per_s", rate_per_s, at_most=MAX_EVENTS_PER_S)
        self.min_stall_ms = check_number(owner, "min_stall_ms", min_stall_ms)
        self.max_stall_ms = check_number(owner, "max_stall_ms", max_stall_ms,
                                         at_least=self.min_stall_ms)  # fmt: skip
        self._stall_start_ms = -math.inf
        self._stall_end_ms = -math.inf
        self._draw_next_stall(0.0)

    def reach_problem(self, reach_ms: float) -> str | None:
        """Freezes are drawn one by one up to each send: too many to reach ``reach_ms``?"""
        if self.rate_per_s == 0:
            return None
        freezes = max(reach_ms, 0.0) * self.rate_per_s / MS_PER_S
        return reach_problem(f"link {self.name!r}", f"rate_per_s={self.rate_per_s:g} freezes the "
                             f"path about every {MS_PER_S / self.rate_per_s:g} ms", freezes,
                             reach_ms, "freezes", "a lower rate_per_s")  # fmt: skip

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
    "tcp": TcpLink,
    "correlated": CorrelatedLink,
    "ideal": Link,
    "constant": ConstantLink,
    "jitter": JitterLink,
    "stalls": StallLink,
}


def check_link_name(name: str) -> type[Link]:
    """The class of link ``name``, or a ValueError listing the choices."""
    if name not in LINK_CLASSES:
        raise ValueError(f"unknown link {name!r}; choose one of {', '.join(LINK_NAMES)}")
    return LINK_CLASSES[name]


def make_link(name: str, seed: int | np.random.Generator = 0, **params: float) -> Link:
    """A fresh link model by name, drawing from ``seed`` (an int or a numpy Generator). Takes
    the path's parameters only; ``make_world`` also takes the sender loop's."""
    cls = check_link_name(name)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    try:
        return cls(rng, **params)
    except TypeError as exc:
        taken = link_parameters(name)  # looked up only now: every simulate makes two links
        unknown = sorted(set(params) - set(taken))
        if unknown:
            raise ValueError(f"link {name!r} takes no parameter "
                             f"{', '.join(map(repr, unknown))}; it takes {', '.join(taken)}"
                             ) from None  # fmt: skip
        raise ValueError(f"link {name!r}: bad parameters {params}: {exc}") from None


@dataclass
class World:
    """What lies between a strategy and Twilio's playout, and back: the sending app's event loop,
    the link to Twilio, and the link carrying mark echoes back (same model, its own draws)."""

    sender: SenderLoop
    fwd: Link
    back: Link

    def reach_problem(self, reach_ms: float) -> str | None:
        """Why a run whose trace lasts ``reach_ms`` cannot be simulated in this world (one of its
        processes would draw too much to get there, ``params.MAX_DRAWN_POINTS``); None when it
        can. Constant time: a run asks it before it handles any event."""
        for part in (self.fwd, self.back, self.sender):
            problem = part.reach_problem(reach_ms)
            if problem is not None:
                return problem
        return None


def make_world(name: str, seed: int, params: dict[str, float] | None = None) -> World:
    """The world of link ``name`` for one run of ``seed``. ``params`` holds the path's parameters
    and the sender loop's (``SENDER_PARAMS``, defaulting to the link's ``sender_defaults``).
    Each part draws from its own random stream, so changing one leaves the others' draws alone."""
    cls = check_link_name(name)
    seed = check_seed(seed)
    path = dict(params or {})
    sender = {**cls.sender_defaults,
              **{key: path.pop(key) for key in SENDER_PARAMS if key in path}}  # fmt: skip
    try:
        loop = SenderLoop(np.random.default_rng(seed + SENDER_SEED_OFFSET), **sender)
    except TypeError as exc:  # pragma: no cover - the keys are SENDER_PARAMS
        raise ValueError(f"link {name!r}: bad sender parameters {sender}: {exc}") from None
    fwd = make_link(name, seed, **path)
    back = make_link(name, np.random.default_rng(seed + ECHO_SEED_OFFSET), **path)
    return World(loop, fwd, back)


def check_seed(seed: object) -> int:
    """``seed`` as an int, or a ValueError: a run's seed is a whole number >= 0."""
    try:
        whole = operator.index(seed)  # type: ignore[arg-type]  # refused below if not an index
    except TypeError:
        whole = -1
    if whole < 0 or isinstance(seed, bool):
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    return whole


def link_parameters(name: str) -> dict[str, Any]:
    """Every parameter of link ``name`` with its default: the path's and the sender loop's."""
    import inspect

    cls = check_link_name(name)
    path = {p.name: p.default for p in inspect.signature(cls).parameters.values()
            if p.name not in ("rng", "base") and p.default is not inspect.Parameter.empty}
    if cls is not Link and "per_message_ms" not in path:
        path["per_message_ms"] = 0.0
    sender = {key: cls.sender_defaults.get(key, 0.0) for key in SENDER_PARAMS}
    return {**path, **sender}

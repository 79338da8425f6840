"""The sending app's event loop: when a strategy call due at ``t`` really runs, when messages leave.

A Python asyncio app is one thread. While it is busy nothing else runs: audio deltas that reach
it wait in the socket, timers fire late, sends leave late. Three things are modelled, each off by
default (then every call runs when it is due and every message leaves at once):

- **timer lateness**: a timer fires ``lateness_ms`` (mean of an exponential) after its deadline;
- **stalls**: the loop pauses (a garbage collection, CPU-bound work, a burst of inbound audio to
  process) as a Poisson process of ``stall_rate_per_s``, each pause lasting an exponential time of
  mean ``stall_ms``. A call due during a pause runs when it ends, so a stall delays *every* send
  (trace events, timers and echoes alike), not only timers. Pauses are a function of time and the
  seed only, so every strategy run on one seed meets the same pauses;
- **per-message cost**: sending a message keeps the loop busy ``send_cost_ms`` (JSON, base64,
  WebSocket framing, TLS). A message leaves once its cost is paid, and later calls wait for it,
  so many tiny messages cost the sender time that a few large ones do not.

Both simulator drivers (the staged sender, labkit/sim/sender.py, and the event loop,
labkit/sim/simulator.py) ask this object when each call runs and when each message leaves.
See notebooks/01_why_tiny_packets_jitter.ipynb and notebooks/06_which_explanation_survives.ipynb.
"""

from __future__ import annotations

import math

import numpy as np

from labkit.sim.params import MAX_EVENTS_PER_S, check_number, reach_problem

MS_PER_S = 1000.0
DRAW_BLOCK = 512  # random numbers drawn per numpy call
SENDER_PARAMS = ("lateness_ms", "stall_rate_per_s", "stall_ms", "send_cost_ms")


class SenderLoop:
    """One call's sending event loop (see the module docstring)."""

    def __init__(
        self,
        rng: np.random.Generator,
        *,
        lateness_ms: float = 0.0,
        stall_rate_per_s: float = 0.0,
        stall_ms: float = 0.0,
        send_cost_ms: float = 0.0,
    ) -> None:
        owner = "sender loop"
        self.lateness_ms = check_number(owner, "lateness_ms", lateness_ms)
        self.stall_rate_per_s = check_number(owner, "stall_rate_per_s", stall_rate_per_s,
                                             at_most=MAX_EVENTS_PER_S)  # fmt: skip
        self.stall_ms = check_number(owner, "stall_ms", stall_ms)
        self.send_cost_ms = check_number(owner, "send_cost_ms", send_cost_ms)
        self._stall_rng, self._late_rng = rng.spawn(2)
        self._stall_state_at_start = self._stall_rng.bit_generator.state
        self._lateness_draws: list[float] = []
        self._stall_draws: list[float] = []  # standard exponentials, scaled per use
        self._busy_until_ms = -math.inf
        self._stall_start_ms = math.inf
        self._stall_end_ms = -math.inf
        if self.stalls:
            self._draw_stall_after(0.0)

    @property
    def stalls(self) -> bool:
        return self.stall_rate_per_s > 0 and self.stall_ms > 0

    @property
    def punctual(self) -> bool:
        """True when every call runs when due and every message leaves at once."""
        return not (self.lateness_ms or self.stalls or self.send_cost_ms)

    def reach_problem(self, reach_ms: float) -> str | None:
        """Pauses are drawn one by one up to each call: too many to reach ``reach_ms``? (The
        expected count: ``params.reach_problem`` says why, or None.)"""
        if not self.stalls:
            return None
        rate = self.stall_rate_per_s
        pauses = max(reach_ms, 0.0) * rate / MS_PER_S
        return reach_problem("sender loop", f"stall_rate_per_s={rate:g} pauses it about every "
                             f"{MS_PER_S / rate:g} ms", pauses, reach_ms, "pauses",
                             "a lower stall_rate_per_s")  # fmt: skip

    def run_at(self, due_ms: float) -> float:
        """When a call due at ``due_ms`` runs: after the loop's current work and any pause.
        Calls must be asked in the order they run (due times non-decreasing)."""
        now = due_ms if due_ms > self._busy_until_ms else self._busy_until_ms
        if self._stall_start_ms <= now or now >= self._stall_end_ms:
            now = self._after_stalls(now)
        return now

    def timer_due(self, deadline_ms: float, not_before_ms: float) -> float:
        """When a timer set for ``deadline_ms`` by a call at ``not_before_ms`` fires: its
        deadline plus the loop's lateness (``run_at`` then says when it runs)."""
        due = deadline_ms
        if self.lateness_ms:
            if not self._lateness_draws:
                draws = self._late_rng.exponential(self.lateness_ms, DRAW_BLOCK)
                self._lateness_draws = draws.tolist()
            due += self._lateness_draws.pop()
        return due if due > not_before_ms else not_before_ms

    def leave(self, now_ms: float) -> float:
        """When a message sent by a call at ``now_ms`` leaves: once the loop has paid for the
        messages before it and for this one (the loop is busy until then)."""
        cost = self.send_cost_ms
        if not cost:
            return now_ms
        busy = self._busy_until_ms
        left = (now_ms if now_ms > busy else busy) + cost
        self._busy_until_ms = left
        return left

    def _after_stalls(self, now: float) -> float:
        while now >= self._stall_end_ms:
            self._draw_stall_after(self._stall_end_ms)
        if now >= self._stall_start_ms:
            now = self._stall_end_ms  # the next pause starts strictly later (exponential gaps)
        return now

    def _draw_stall_after(self, after_ms: float) -> None:
        if not self.stalls:
            self._stall_start_ms, self._stall_end_ms = math.inf, math.inf
            return
        draws = self._stall_draws
        if len(draws) < 2:
            draws = self._stall_draws = self._stall_rng.standard_exponential(DRAW_BLOCK).tolist()
        gap_ms = draws.pop() * MS_PER_S / self.stall_rate_per_s
        length_ms = draws.pop() * self.stall_ms
        start = max(after_ms, 0.0) + gap_ms
        self._stall_start_ms, self._stall_end_ms = start, start + length_ms

    def pauses(self, until_ms: float) -> list[tuple[float, float]]:
        """The pauses starting before ``until_ms``, as (start, end) in ms: the very ones this
        loop meets (drawn again from the same random state, for plots and tests)."""
        replay = SenderLoop(np.random.default_rng(), stall_rate_per_s=self.stall_rate_per_s,
                            stall_ms=self.stall_ms)  # fmt: skip
        replay._stall_rng = np.random.Generator(type(self._stall_rng.bit_generator)())
        replay._stall_rng.bit_generator.state = self._stall_state_at_start
        replay._stall_draws = []
        replay._draw_stall_after(0.0)
        windows = []
        while replay._stall_start_ms < until_ms:
            windows.append((replay._stall_start_ms, replay._stall_end_ms))
            replay._draw_stall_after(replay._stall_end_ms)
        return windows

"""The sender's timer rule, shared by the plans that replay ``send_all`` with plain numbers.

After each call the sender asks the strategy for its next deadline; only when it moved is the
timer re-armed, at the deadline (lateness 0, as the plans require) but never before ``now``.
See labkit/sim/sender.py (``send_all``), labkit/sim/paced_plan.py, labkit/sim/adaptive_plan.py.
"""

from __future__ import annotations

import math


def rearm(
    new_deadline: float | None, deadline: float | None, poll_at: float, now: float
) -> tuple[float | None, float]:
    """(deadline, poll time) after a call at ``now`` that left ``new_deadline``."""
    if new_deadline == deadline:
        return deadline, poll_at
    return new_deadline, (math.inf if new_deadline is None else max(new_deadline + 0.0, now))

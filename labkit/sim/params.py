"""A world model's parameters: each a finite number within the bounds that keep it a model.

One rule for the links and the sending loop (labkit/sim/links.py, labkit/sim/sender_loop.py):
NaN compares false with every bound, so "refuse if below 0" lets it through; an infinite or
absurd rate of events makes a lazily drawn process step forever. See
notebooks/07_where_verdicts_flip.ipynb.
"""

from __future__ import annotations

import contextlib
import math
import numbers

# A pause or freeze more often than once a millisecond is no longer a pause: the loop or path
# would step through millions of them per simulated second.
MAX_EVENTS_PER_S = 1000.0
# No delay, cost or pause of the world lasts longer than Twilio buffers audio (ten minutes):
# beyond it a run steps through days of simulated time, pause by pause.
MAX_MS = 600_000.0
# A process of the world drawn lazily as time passes (the path delay's grid, the sending loop's
# pauses, the path's freezes) draws at most this many points to reach a call's end. The path's
# grid is held whole (~40 bytes a point): 4 M points are 35 h of a call at the default tau_ms
# (500 ms), 4 min at tau_ms = 1 ms. Pauses are drawn one by one in Python: 4 M take seconds, a
# trace whose last event lies 1e12 ms in would take days. Beyond the cap a run is refused before
# it starts (``reach_problem`` of each process), not left to swap or to spin.
MAX_DRAWN_POINTS = 4_000_000


def check_number(owner: str, name: str, value: object, *, at_least: float = 0.0,
                 above: bool = False, at_most: float = MAX_MS) -> float:  # fmt: skip
    """``value`` as a float when it is a finite number >= ``at_least`` (> it if ``above``) and
    <= ``at_most`` (by default MAX_MS: most parameters are durations); else a ValueError naming
    ``owner`` and the parameter."""
    number = math.nan
    if isinstance(value, numbers.Real) and not isinstance(value, bool):  # "1" and True are not
        with contextlib.suppress(OverflowError):  # an int beyond floats stays NaN: refused
            number = float(value)
    low_ok = number > at_least if above else number >= at_least
    if not (math.isfinite(number) and low_ok and number <= at_most):
        bound = f"{'>' if above else '>='} {at_least:g}"
        if at_most < math.inf:
            bound += f" and <= {at_most:g}"
        raise ValueError(f"{owner}: {name} must be a finite number {bound}, got {value!r}")
    return number


def reach_problem(owner: str, setting: str, points: float, reach_ms: float, what: str,
                  cure: str) -> str | None:  # fmt: skip
    """Why a process of ``owner`` cannot reach ``reach_ms`` of a call: it would draw ``points``
    (``what``: grid points, pauses...) beyond MAX_DRAWN_POINTS, ``setting`` says why so many and
    ``cure`` names the parameter to change; None when it can. The one rule for every process."""
    if points <= MAX_DRAWN_POINTS:  # NaN is no count: refused too
        return None
    return (f"{owner}: {setting}, so reaching {reach_ms / 1000:.4g} s of the call takes more "
            f"than {MAX_DRAWN_POINTS:,} {what}; use {cure} or a shorter call")  # fmt: skip

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

"""What counts as a number of something in labkit's arguments.

A real number or an integer, Python's or numpy's, but never a bool (Python's bool is an int, so
``True`` would pass as 1 ms or one seed) and never a string (``float("50")`` would take one).
"""

from __future__ import annotations

import numbers
from typing import TypeGuard


def is_real(value: object) -> TypeGuard[float]:
    """A real number (int, float or numpy's), not a bool; it may be NaN or infinite."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_whole(value: object) -> TypeGuard[int]:
    """An integer (Python's or numpy's), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)

"""Argparse types shared by the commands' flags: numbers within bounds, and flags whose rule lives
in the domain (a call's settings, a replay's speed). Each error is argparse's one line naming the
flag ("argument --threshold-ms: threshold_ms must be >= 0, got '-1'"), raised when the command
line is read, before any server starts or any call runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def positive(unit: str) -> Callable[[str], float]:
    """An argparse type: a finite number of ``unit`` > 0, or an error naming the unit."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of {unit}: {text!r}") from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(
                f"must be a finite number of {unit} > 0, got {text!r}"
            )
        return value

    return parse


def whole_number(minimum: int, maximum: int | None = None,
                 what: str = "a whole number") -> Callable[[str], int]:  # fmt: skip
    """An argparse type: an int of at least ``minimum`` (and at most ``maximum``), or an error
    saying which bound it missed."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if maximum is not None and not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be {minimum}..{maximum}, got {value}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value

    return parse


def checked(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type from a domain parser that raises ValueError: its message, as argparse's
    error for the flag (argparse would print only "invalid <function name> value")."""

    def run(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    run.__name__ = parse.__name__
    return run


def checked_number(check: Callable[[float], float],
                   what: str = "a number") -> Callable[[str], float]:  # fmt: skip
    """An argparse type: the text as a float (else "not ``what``"), then the domain's ``check``,
    which raises ValueError (``checked``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"not {what}: {text!r:.40}") from None
        return check(value)

    parse.__name__ = check.__name__
    return checked(parse)


def _replay_speed(value: float) -> float:
    from labkit.live.settings import check_replay_speed  # live imports the SDK: only when asked

    return check_replay_speed("speed", value)


replay_speed = checked_number(_replay_speed)

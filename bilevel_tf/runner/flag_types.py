"""argparse ``type`` functions for the runners' flags: a bad value fails at parse time, in one line naming
the flag (TensorFlow-free)."""

from __future__ import annotations

import argparse
import math
from typing import Callable, Optional


def int_range(minimum: int, maximum: Optional[int] = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in [minimum, maximum]; anything else is rejected at parse time (before
    the run touches its output folder) with "argument --flag: must be an integer >= minimum, got '...'"."""
    expected = f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]"

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value

    return convert


def float_range(
    minimum: float, maximum: Optional[float] = None, *, include_maximum: bool = True
) -> Callable[[str], float]:
    """An argparse ``type``: a number in [minimum, maximum] (or [minimum, maximum) with
    ``include_maximum=False``; no upper bound when maximum is None), checked at parse time like
    :func:`int_range`."""
    expected = (
        f"a number >= {minimum:g}"
        if maximum is None
        else f"a number in [{minimum:g}, {maximum:g}{']' if include_maximum else ')'}"
    )

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if maximum is None:
            below = value < math.inf
        else:
            below = value <= maximum if include_maximum else value < maximum
        if not (value >= minimum and below):  # also rejects NaN
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value

    return convert


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number > 0 (learning rates, step sizes)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value < math.inf):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


#: an argparse ``type``: a finite number >= 0 (penalty weights, regularizers)
nonnegative_float = float_range(0.0)


def finite_float(text: str) -> float:
    """An argparse ``type``: any finite number."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value

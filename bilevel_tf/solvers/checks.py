"""Checks of solver options: a bad value raises a one-line ValueError naming the argument (TensorFlow-free)."""

from __future__ import annotations

import numbers
from typing import Any, Sequence


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_nonnegative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_decayable(optimizer: Any, name: str) -> None:
    """An optimizer whose learning rate a schedule may scale (a variable, not a Keras schedule)."""
    if not hasattr(optimizer.learning_rate, "assign"):
        raise ValueError(
            f"lr_decay needs {name} to have a constant learning rate (got a schedule); "
            "pass lr_decay=None to keep your schedule"
        )

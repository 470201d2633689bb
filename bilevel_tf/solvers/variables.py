"""The variables a solver owns (its schedule and auxiliary state) and the projection of constrained ones."""
from __future__ import annotations

from typing import Any

import tensorflow as tf

from .. import distribute


def state_variable(value: Any, name: str, dtype=None) -> tf.Variable:
    """A solver-owned, non-trainable variable; under a strategy the first replica's update is kept
    (replicas compute identical values, see ``bilevel_tf.distribute``)."""
    return tf.Variable(value, dtype=dtype, trainable=False, name=name,
                       aggregation=distribute.ONLY_FIRST_REPLICA)


def project(constraint, variables) -> None:
    """Assign ``constraint(values)`` back to the variables."""
    values = constraint([tf.convert_to_tensor(v) for v in variables])
    if len(values) != len(variables):
        raise ValueError(f"constraint returned {len(values)} tensors for {len(variables)} variables")
    for var, value in zip(variables, values):
        distribute.assign(var, tf.cast(value, var.dtype))

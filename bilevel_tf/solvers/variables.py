"""The variables a solver owns (its schedule and auxiliary state), the projection of constrained ones, and the
lower-level copy that value-function methods (V-PBGD, BOME) descend in the lower variables' place."""

from __future__ import annotations

from typing import Any, Iterable, List, Sequence

import keras
import tensorflow as tf

from ..core import autodiff, distribute


def state_variable(value: Any, name: str, dtype=None) -> tf.Variable:
    """A solver-owned, non-trainable variable; under a strategy the first replica's update is kept
    (replicas compute identical values, see ``bilevel_tf.core.distribute``)."""
    return tf.Variable(value, dtype=dtype, trainable=False, name=name, aggregation=distribute.ONLY_FIRST_REPLICA)


def owned_variables(state: Iterable[Any], problem_vars: Sequence) -> List[Any]:
    """The variables in ``state`` entries (variables, optimizers, nested lists), once each, except the
    problem's own: what ``reset_state`` returns to their first values."""
    problem_ids = {id(v) for v in problem_vars}
    owned: List[Any] = []
    for obj in state:
        for var in _variables_of(obj):
            if id(var) not in problem_ids and not any(var is o for o in owned):
                owned.append(var)
    return owned


def _variables_of(obj) -> List[Any]:
    if isinstance(obj, keras.optimizers.Optimizer):
        return list(obj.variables)
    if isinstance(obj, (list, tuple)):
        return [v for item in obj for v in _variables_of(item)]
    if isinstance(obj, tf.Variable) or hasattr(obj, "assign"):
        return [obj]
    return []


def project(constraint, variables) -> None:
    """Assign ``constraint(values)`` back to the variables."""
    values = constraint([tf.convert_to_tensor(v) for v in variables])
    if len(values) != len(variables):
        raise ValueError(f"constraint returned {len(values)} tensors for {len(variables)} variables")
    for var, value in zip(variables, values):
        distribute.assign(var, tf.cast(value, var.dtype))


def descend_copy(solver: Any, copy: Any, lower_batch: Any, optimizer: Any):
    """The solver's ``inner_steps`` steps of ``optimizer`` on g(u, .) from the copy w, run in the lower
    variables' place and stored back in w (an empty ``copy`` starts from v itself); v is left as it was.
    Returns (g(u, w), grad_u g(u, w)): the value-function estimate g(u, w) ~ min_v g(u, v), its u-gradient."""
    problem = solver.problem
    lower = problem.lower_vars
    saved = [tf.convert_to_tensor(v) for v in lower]
    for var, w in zip(lower, copy):
        distribute.assign(var, w)
    solver.descend_lower(lower_batch, optimizer=optimizer)
    g_w, grad_u = autodiff.lower_value_and_grad(problem, lower_batch, wrt=problem.upper_vars)
    for w, var in zip(copy, lower):
        distribute.assign(w, tf.convert_to_tensor(var))
    for var, value in zip(lower, saved):
        distribute.assign(var, value)
    return g_w, grad_u

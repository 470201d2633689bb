"""Iterative solvers of the linear system A x = b of implicit differentiation (A = H_vv g, possibly + sigma I).

Each solver sees A only through ``operator`` (a list of tensors -> A times it: Hessian-vector products, never a
Hessian), starts from the current value of the state variables ``x`` (a warm start; assign zeros first for a
cold one), runs ``steps`` iterations of ``loop`` (the solver's graph loop) and leaves its iterate in ``x``. It
returns the squared residual ||A x - b||^2 of the last iterate it measured.

* ``"gd"``: ``optimizer`` steps along grad_x ||A x - b||^2 = 2 A (A x - b) (two products per step; ApproxGrad's
  solve as in the original code). It works for any symmetric A but squares its condition number.
* ``"cg"``: conjugate gradient (Hestenes & Stiefel 1952; HOAG, Pedregosa ICML 2016, solves its system so), one
  product per step, exact after dim(v) steps in exact arithmetic; A must be symmetric positive definite.
* ``"neumann"``: the Richardson iteration x <- x + eta (b - A x), whose iterates from x = 0 are the partial sums
  eta sum_{q<k} (I - eta A)^q b of the Neumann series of A^{-1} (Lorraine, Vicol & Duvenaud, AISTATS 2020);
  one product per step, converges for 0 < eta < 2 / lambda_max(A).
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, Callable, List, Optional, Sequence, Union

import tensorflow as tf

from ..core import distribute
from ..core import tensor_ops as ops
from .default_steps import SERIES_STEP
from .optimizers import slot_learning_rate

Operator = Callable[[List[tf.Tensor]], List[tf.Tensor]]
LinearSolve = Callable[[Operator, List[tf.Tensor], Sequence[tf.Variable], Any, Callable], tf.Tensor]

#: the ``linear_solver`` names
LINEAR_SOLVERS = ("gd", "cg", "neumann")


def _values(variables: Sequence[tf.Variable]) -> List[tf.Tensor]:
    return [tf.convert_to_tensor(v) for v in variables]


def _store(variables: Sequence[tf.Variable], values: Sequence[tf.Tensor]) -> None:
    for var, value in zip(variables, values):
        distribute.assign(var, value)


def gradient_descent(
    operator: Operator, b: List[tf.Tensor], x: Sequence[tf.Variable], steps: Any, loop: Callable, *, optimizer
) -> tf.Tensor:
    """``optimizer`` steps on ||A x - b||^2; returns the squared residual measured before the last step."""
    residual_sq = tf.constant(0.0, x[0].dtype)
    for _ in loop(steps):
        r = [a - bi for a, bi in zip(operator(_values(x)), b)]
        residual_sq = ops.sq_norm(r)
        grad_x = [2.0 * ri for ri in operator(r)]
        optimizer.apply_gradients(zip(grad_x, x))
    return residual_sq


def conjugate_gradient(
    operator: Operator, b: List[tf.Tensor], x: Sequence[tf.Variable], steps: Any, loop: Callable
) -> tf.Tensor:
    """CG: alpha = r'r / d'Ad, x += alpha d, r -= alpha Ad, d = r + (r_new'r_new / r'r) d."""
    x_now = _values(x)
    r = [bi - a for bi, a in zip(b, operator(x_now))]
    d = list(r)
    rs = ops.sq_norm(r)
    for _ in loop(steps):
        ad = operator(d)
        alpha = tf.math.divide_no_nan(rs, ops.inner(d, ad))  # 0 once the residual is exactly 0
        x_now = [xi + alpha * di for xi, di in zip(x_now, d)]
        r = [ri - alpha * adi for ri, adi in zip(r, ad)]
        rs_new = ops.sq_norm(r)
        beta = tf.math.divide_no_nan(rs_new, rs)
        d = [ri + beta * di for ri, di in zip(r, d)]
        rs = rs_new
    _store(x, x_now)
    return rs


def neumann(
    operator: Operator, b: List[tf.Tensor], x: Sequence[tf.Variable], steps: Any, loop: Callable, *, step_size: float
) -> tf.Tensor:
    """Richardson / Neumann: x <- x + eta (b - A x); returns the squared residual before the last step."""
    x_now = _values(x)
    residual_sq = tf.constant(0.0, x[0].dtype)
    for _ in loop(steps):
        r = [bi - a for bi, a in zip(b, operator(x_now))]
        residual_sq = ops.sq_norm(r)
        x_now = [xi + step_size * ri for xi, ri in zip(x_now, r)]
    _store(x, x_now)
    return residual_sq


def make_linear_solver(name: str, *, optimizer=None, step_size: Any = None) -> LinearSolve:
    """The solve of ``name`` (one of :data:`LINEAR_SOLVERS`): ``gd`` needs ``optimizer``, ``neumann``
    ``step_size`` (a number, or the solver's measured step variable); a ValueError names the argument otherwise."""
    if name not in LINEAR_SOLVERS:
        raise ValueError(f"linear_solver must be one of {list(LINEAR_SOLVERS)}, got {name!r}")
    if name == "gd":
        if optimizer is None:
            raise ValueError("linear_solver 'gd' needs a linear_optimizer")
        return functools.partial(gradient_descent, optimizer=optimizer)
    if name == "neumann":
        step = step_size if isinstance(step_size, tf.Variable) else check_neumann_step(step_size)
        return functools.partial(neumann, step_size=step)
    return conjugate_gradient


def check_neumann_step(eta: Any) -> float:
    """A Neumann / Richardson step size: a positive number (it converges for eta < 2 / lambda_max(A))."""
    if isinstance(eta, bool) or not isinstance(eta, numbers.Real) or not eta > 0:
        raise ValueError(f"neumann_step must be a positive number (eta < 2/L), got {eta!r}")
    return float(eta)


def neumann_step(solver: Any, given: Optional[float], used: bool = True) -> Union[float, tf.Variable, None]:
    """The Neumann step of a solver: ``given``; else, when the lower optimizer's step is measured on the problem,
    a measured step (``default_steps.SERIES_STEP``, a variable in solver state; None if the solver does not
    use it); else the lower optimizer's initial learning rate."""
    if given is not None:
        return check_neumann_step(given)
    if solver.default_steps.rule("lower_optimizer") is not None:
        return solver.default_steps.scalar(solver, "neumann_step", SERIES_STEP) if used else None
    return check_neumann_step(slot_learning_rate(solver))


def recorded_step(step: Union[float, tf.Variable, None]) -> Optional[float]:
    """What ``get_config`` records of a Neumann step: the number given, None for a measured one."""
    return step if isinstance(step, float) else None

"""Second-order products of the lower loss without materializing a Hessian.

Every second-order quantity the solvers need has the form

    d/dx [ e(x) + <grad_v g, w> ]        with w held constant,

which is  grad_x e + (d^2 g / dx dv) w : a Hessian-vector product (x = v) or a Jacobian-vector product of
the mixed derivative (x = u), obtained by differentiating the lower gradient once more (double
backward). One reverse sweep gives the products for u and v together, and the extra term e (usually the
upper loss f) rides along in the same sweep.

Under a distribution strategy every returned value is the mean over replicas (see ``distribute.py``).
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

import tensorflow as tf

from . import tensor_ops as ops
from .distribute import mean_across_replicas, mean_scalar
from .problem import BilevelProblem

ZERO = tf.UnconnectedGradients.ZERO


def lower_value_and_grad(problem: BilevelProblem, lower_batch: Any,
                         wrt: Optional[Sequence] = None) -> Tuple[tf.Tensor, List]:
    """g and its gradient w.r.t. ``wrt`` (default: the lower variables)."""
    wrt = problem.lower_vars if wrt is None else wrt
    with tf.GradientTape() as tape:
        g = problem.g(lower_batch)
    grads = tape.gradient(g, list(wrt), unconnected_gradients=ZERO)
    return mean_scalar(g), mean_across_replicas(grads)


def upper_value_and_grad(problem: BilevelProblem, upper_batch: Any, wrt: Sequence) -> Tuple[tf.Tensor, List]:
    with tf.GradientTape() as tape:
        f = problem.f(upper_batch)
    grads = tape.gradient(f, list(wrt), unconnected_gradients=ZERO)
    return mean_scalar(f), mean_across_replicas(grads)


def second_order(problem: BilevelProblem, lower_batch: Any,
                 weights: Callable[[List], Sequence],
                 wrt: Sequence,
                 extra: Optional[Callable[[], tf.Tensor]] = None) -> Tuple[tf.Tensor, List, Optional[tf.Tensor], List]:
    """Gradient w.r.t. ``wrt`` of ``extra() + <grad_v g, w>`` where ``w = weights(grad_v g)`` is constant.

    Returns ``(g, grad_v g, extra value or None, gradients)``. ``weights`` receives the lower gradient so
    that weights depending on it (the Penalty's ``nu + rho * grad_v g``) cost no extra pass.
    """
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner_tape:
            g = problem.g(lower_batch)
        gv_local = inner_tape.gradient(g, problem.lower_vars, unconnected_gradients=ZERO)
        # The weights come from the replica-averaged gradient; the products are linear in the local
        # gradient, so averaging them afterwards gives the global products.
        gv = mean_across_replicas([tf.stop_gradient(x) if not isinstance(x, tf.IndexedSlices) else x
                                   for x in gv_local])
        w = [None if x is None else tf.stop_gradient(ops.dense(x)) for x in weights(gv)]
        total = ops.inner(gv_local, w)
        e = None
        if extra is not None:
            e = extra()
            total = tf.cast(total, e.dtype) + e
    grads = mean_across_replicas(outer.gradient(total, list(wrt), unconnected_gradients=ZERO))
    return mean_scalar(g), gv, None if e is None else mean_scalar(e), grads


def hvp(problem: BilevelProblem, lower_batch: Any, vector: Sequence, wrt: Optional[Sequence] = None) -> List:
    """(d^2 g / d wrt dv) · vector; with ``wrt`` = lower variables (default) the Hessian-vector product."""
    wrt = problem.lower_vars if wrt is None else wrt
    _, _, _, grads = second_order(problem, lower_batch, lambda _: vector, wrt)
    return grads

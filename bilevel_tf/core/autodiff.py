"""Second-order products of the lower loss without materializing a Hessian.

Every second-order quantity the solvers need has the form

    d/dx [ e(x) + <grad_v g, w> ]        with w held constant,

which is  grad_x e + (d^2 g / dx dv) w : a Hessian-vector product (x = v) or a Jacobian-vector product of
the mixed derivative (x = u). Two ways to compute it (``mode``, the solvers' ``hvp`` option):

- ``"double_backward"`` (reverse-over-reverse, the default): differentiate the lower gradient once more.
  One reverse sweep gives the products for u and v together, and the extra term e (usually the upper loss
  f) rides along in the same sweep.
- ``"forward_over_reverse"``: push w as a tangent of v (``tf.autodiff.ForwardAccumulator``) through the
  reverse computation of grad_x g. It needs w before the pass, so weights that depend on grad_v g (the
  Penalty's nu + rho grad_v g) cost one extra gradient pass. TensorFlow derives most forward-mode rules
  from the backward ones, and this mode measured slower on CPU for every solver
  (``benchmarks/run.py --sections hvp``); it is kept so the choice can be re-measured on other devices.

Under a distribution strategy every returned value is the mean over replicas (see ``distribute.py``).
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import tensorflow as tf

from . import tensor_ops as ops
from .distribute import mean_across_replicas, mean_scalar
from .problem import BilevelProblem

ZERO = tf.UnconnectedGradients.ZERO
DOUBLE_BACKWARD = "double_backward"
FORWARD_OVER_REVERSE = "forward_over_reverse"
HVP_MODES = (DOUBLE_BACKWARD, FORWARD_OVER_REVERSE)

#: the constant vector w (one entry per lower variable), or a function grad_v g -> w
Weights = Union[Sequence, Callable[[List], Sequence]]


def lower_value_and_grad(
    problem: BilevelProblem, lower_batch: Any, wrt: Optional[Sequence] = None
) -> Tuple[tf.Tensor, List]:
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


def second_order(
    problem: BilevelProblem,
    lower_batch: Any,
    weights: Weights,
    wrt: Sequence,
    extra: Optional[Callable[[], tf.Tensor]] = None,
    mode: str = DOUBLE_BACKWARD,
) -> Tuple[tf.Tensor, List, Optional[tf.Tensor], List]:
    """Gradient w.r.t. ``wrt`` of ``extra() + <grad_v g, w>`` where ``w`` is held constant.

    ``weights`` is the vector ``w`` itself or a function ``grad_v g -> w``, so that weights depending on the
    lower gradient (the Penalty's ``nu + rho * grad_v g``) cost no extra pass in the default mode.
    Returns ``(g, grad_v g, extra value or None, gradients)``.
    """
    if mode == FORWARD_OVER_REVERSE:
        return _second_order_forward(problem, lower_batch, weights, wrt, extra)
    if mode != DOUBLE_BACKWARD:
        raise ValueError(f"mode must be one of {list(HVP_MODES)}, got {mode!r}")
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner_tape:
            g = problem.g(lower_batch)
        gv_local = inner_tape.gradient(g, problem.lower_vars, unconnected_gradients=ZERO)
        # The weights come from the replica-averaged gradient; the products are linear in the local
        # gradient, so averaging them afterwards gives the global products.
        gv = mean_across_replicas([tf.stop_gradient(x) if not isinstance(x, tf.IndexedSlices) else x for x in gv_local])
        w = _constant(weights(gv) if callable(weights) else weights)
        total = ops.inner(gv_local, w)
        e = None
        if extra is not None:
            e = extra()
            total = tf.cast(total, e.dtype) + e
    grads = mean_across_replicas(outer.gradient(total, list(wrt), unconnected_gradients=ZERO))
    return mean_scalar(g), gv, None if e is None else mean_scalar(e), grads


def hvp(
    problem: BilevelProblem,
    lower_batch: Any,
    vector: Sequence,
    wrt: Optional[Sequence] = None,
    mode: str = DOUBLE_BACKWARD,
) -> List:
    """(d^2 g / d wrt dv) · vector; with ``wrt`` = lower variables (default) the Hessian-vector product."""
    wrt = problem.lower_vars if wrt is None else wrt
    _, _, _, grads = second_order(problem, lower_batch, vector, wrt, mode=mode)
    return grads


def loss_hvp(loss: Callable[[], tf.Tensor], variables: Sequence, vector: Sequence) -> List[tf.Tensor]:
    """(d^2 loss / d variables^2) · vector by double backward, as dense tensors (replica-averaged)."""
    w = _constant(vector)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner_tape:
            value = loss()
        grads = inner_tape.gradient(value, list(variables), unconnected_gradients=ZERO)
        total = ops.inner(grads, w)
    products = outer.gradient(total, list(variables), unconnected_gradients=ZERO)
    return [ops.dense(x) for x in mean_across_replicas(products)]


def _constant(w: Sequence) -> List:
    return [None if x is None else tf.stop_gradient(ops.dense(x)) for x in w]


def _second_order_forward(
    problem: BilevelProblem, lower_batch: Any, weights: Weights, wrt: Sequence, extra: Optional[Callable[[], tf.Tensor]]
) -> Tuple[tf.Tensor, List, Optional[tf.Tensor], List]:
    """``second_order`` by forward-over-reverse: the JVP of grad_wrt g along w (symmetry of mixed partials)."""
    lower = list(problem.lower_vars)
    gv = None
    if callable(weights):  # w depends on grad_v g: one reverse pass to get it first
        _, gv = lower_value_and_grad(problem, lower_batch)
        weights = weights(gv)
    w = [tf.zeros(v.shape, v.dtype) if x is None else tf.cast(x, v.dtype) for x, v in zip(_constant(weights), lower)]
    lower_ids = {id(v) for v in lower}
    targets = lower + [x for x in wrt if id(x) not in lower_ids]  # grad_v g comes out of the same pass
    with tf.autodiff.ForwardAccumulator([_tf_variable(v) for v in lower], w) as acc:
        with tf.GradientTape() as tape:
            g = problem.g(lower_batch)
        grads_g = tape.gradient(g, targets, unconnected_gradients=ZERO)
    position = {id(x): i for i, x in enumerate(targets)}
    products = [_jvp(acc, grads_g[position[id(x)]]) for x in wrt]
    if gv is None:
        gv = mean_across_replicas(grads_g[: len(lower)])
    e = None
    if extra is not None:
        with tf.GradientTape() as tape:
            e = extra()
        products = ops.add(tape.gradient(e, list(wrt), unconnected_gradients=ZERO), products)
    products = mean_across_replicas(products)
    return mean_scalar(g), gv, None if e is None else mean_scalar(e), products


def _tf_variable(var: Any) -> tf.Variable:
    """The tf.Variable behind a Keras 3 variable: ForwardAccumulator watches TensorFlow variables only."""
    return var if isinstance(var, tf.Variable) else var.value


def _jvp(acc: tf.autodiff.ForwardAccumulator, x: Any) -> Any:
    """Tangent of one gradient entry; a sparse entry keeps its indices (they do not depend on v)."""
    if isinstance(x, tf.IndexedSlices):
        return tf.IndexedSlices(acc.jvp(x.values, unconnected_gradients=ZERO), x.indices, x.dense_shape)
    return acc.jvp(x, unconnected_gradients=ZERO)

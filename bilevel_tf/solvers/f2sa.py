"""F2SA: fully first-order stochastic approximation for bilevel problems (Kwon, Kwon, Wright & Nowak, ICML 2023)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import keras
import tensorflow as tf

from ..core import autodiff, distribute
from ..core import tensor_ops as ops
from ..core.problem import BilevelProblem
from .base import BilevelSolver
from .checks import check_nonnegative
from .default_steps import LOWER_STEP
from .variables import state_variable
from .optimizers import add_slot


class F2SA(BilevelSolver):
    r"""F2SA: the hypergradient from two lower-level copies, gradients only (no second-order products).

    J. Kwon, D. Kwon, S. Wright and R. Nowak, "A fully first-order method for stochastic bilevel
    optimization", ICML 2023.

    With penalty weight lam, the value-function penalty L_lam(u) = min_y [f(u, y) + lam (g(u, y) - min_v g(u, v))]
    has gradient grad_u f(u, y) + lam (grad_u g(u, y) - grad_u g(u, v)) at its minimizers y = y_lam(u),
    v = v*(u), and it tends to the hypergradient as lam grows (error O(1/lam)). v (the problem's lower variables:
    the paper's z) tracks argmin g; the copy y (solver state, the paper's y) tracks argmin f/lam + g. One upper
    iteration::

        repeat T times:  v <- lower_optimizer step along grad_v g(u, v)
        repeat T times:  y <- penalty_optimizer step along grad_y f(u, y) / lam + grad_y g(u, y)
        h = grad_u f(u, y) + lam (grad_u g(u, y) - grad_u g(u, v))
        u <- upper_optimizer step along (lam_0 / lam) h
        lam <- min(lam + lam_growth, lam_max)

    In the paper's notation the y step is alpha_k (grad f + lam_k grad g) and the u step xi alpha_k h_k: both
    steps carry alpha_k ~ 1/lam_k. Here the y direction is divided by lam instead (so the penalty optimizer's
    learning rate is the step on g's scale, stable as lam grows) and the u direction is scaled by lam_0 / lam
    (so the upper learning rate is the step at the first iteration): the same algorithm, with optimizers whose
    learning rates do not have to follow lam. The 1/lam in the u step is what keeps F2SA stable: h multiplies
    the gap between the two copies by lam, so their tracking errors reach u amplified by lam.

    The paper lets lam grow without bound (lam_{k+1} = lam_k + delta_k, with step sizes decreasing in k); this
    implementation grows it linearly (``lam_growth`` per iteration) up to ``lam_max`` (None: no cap), which
    trades the O(1/lam_max) bias against u's step, which shrinks as lam_0 / lam. Defaults: lam_0 = 10, +1 per
    iteration, capped at 300; T = 10 (the benchmark's setting); plain SGD steps of 0.3 for u (at lam_0) and 1 / L
    for v and y, L = g's top curvature in v measured on the problem at the first step (``default_steps``;
    ``penalty_optimizer`` follows the lower optimizer: its learning rate when one is given). They reach the
    solution of the strongly convex quadratics of ``bl.toy`` to about 1% (the O(1/lam_max) bias).

    y starts as a copy of v (at construction) and is swapped into the problem's variables for its steps, so
    the losses need no change. Memory does not grow with T.
    """

    method = "f2sa"
    default_upper_optimizer = keras.optimizers.SGD
    default_lower_optimizer = keras.optimizers.SGD
    default_penalty_optimizer = keras.optimizers.SGD
    default_upper_lr = 0.3
    default_lower_lr = LOWER_STEP
    default_inner_steps = 10

    def __init__(
        self,
        problem: BilevelProblem,
        upper_optimizer: Any = None,
        lower_optimizer: Any = None,
        *,
        inner_steps: Optional[int] = None,
        penalty_optimizer: Any = None,
        lam_init: float = 10.0,
        lam_growth: float = 1.0,
        lam_max: Optional[float] = 300.0,
        jit_compile: bool = False,
        **unknown: Any,
    ):
        super().__init__(
            problem, upper_optimizer, lower_optimizer, inner_steps=inner_steps, jit_compile=jit_compile, **unknown
        )
        self.lam_init = check_nonnegative("lam_init", lam_init)
        if not self.lam_init > 0:
            raise ValueError(f"lam_init must be a positive number, got {lam_init!r}")
        self.lam_growth = check_nonnegative("lam_growth", lam_growth)
        self.lam_max = None if lam_max is None else check_nonnegative("lam_max", lam_max)
        if self.lam_max is not None and self.lam_max < self.lam_init:
            raise ValueError(f"lam_max must be None or >= lam_init ({self.lam_init}), got {lam_max!r}")
        self.lam = self.add_state("lam", state_variable(self.lam_init, "lam", self.dtype), schedule=True)
        self.y = self.add_state(
            "y", [state_variable(tf.convert_to_tensor(v), "y_penalized") for v in problem.lower_vars]
        )
        self.penalty_optimizer = add_slot(
            self, "penalty_optimizer", penalty_optimizer, self.default_penalty_optimizer, problem.lower_vars
        )

    def _config(self) -> Dict[str, Any]:
        return dict(lam_init=self.lam_init, lam_growth=self.lam_growth, lam_max=self.lam_max)

    def _penalized_phase(self, upper_batch, lower_batch):
        """T steps of y on f/lam + g (y swapped into the lower variables); (f, g, grad_u f, grad_u g) at y."""
        problem, lower, upper = self.problem, self.problem.lower_vars, self.problem.upper_vars
        saved = [tf.convert_to_tensor(v) for v in lower]
        for var, y in zip(lower, self.y):
            distribute.assign(var, y)
        inv_lam = 1.0 / self.lam
        for _ in self.loop(self.inner_steps):
            with tf.GradientTape() as tape:
                f = problem.f(upper_batch)
                total = f * tf.cast(inv_lam, f.dtype) + problem.g(lower_batch)
            grads = distribute.mean_across_replicas(
                tape.gradient(total, list(lower), unconnected_gradients=autodiff.ZERO)
            )
            self.apply_lower(grads, optimizer=self.penalty_optimizer)
        with tf.GradientTape(persistent=True) as tape:
            f, g = problem.f(upper_batch), problem.g(lower_batch)
        grad_f = tape.gradient(f, list(upper), unconnected_gradients=autodiff.ZERO)
        grad_g = tape.gradient(g, list(upper), unconnected_gradients=autodiff.ZERO)
        del tape
        for var, y, value in zip(lower, self.y, saved):
            distribute.assign(y, tf.convert_to_tensor(var))
            distribute.assign(var, value)
        return (
            distribute.mean_scalar(f),
            distribute.mean_scalar(g),
            distribute.mean_across_replicas(grad_f),
            distribute.mean_across_replicas(grad_g),
        )

    def _direction(self, upper_batch, lower_batch):
        problem = self.problem
        self.descend_lower(lower_batch)
        g_v, grad_g_v = autodiff.lower_value_and_grad(problem, lower_batch, wrt=problem.upper_vars)
        f_v = distribute.mean_scalar(problem.f(upper_batch))
        _, g_y, grad_f_y, grad_g_y = self._penalized_phase(upper_batch, lower_batch)
        lam = tf.identity(self.lam)
        h = ops.add(grad_f_y, ops.scale(ops.add(grad_g_y, ops.scale(grad_g_v, -1.0)), lam))
        return ops.scale(h, self.lam_init / lam), None, dict(upper_loss=f_v, lower_loss=g_v, penalty_gap=g_y - g_v)

    def _finish(self, aux):
        grown = self.lam + self.lam_growth
        distribute.assign(self.lam, grown if self.lam_max is None else tf.minimum(grown, self.lam_max))
        return dict(aux)

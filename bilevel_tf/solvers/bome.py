"""BOME!: bilevel optimization made easy, a first-order dynamic-barrier method (Liu, Ye, Wright, Stone & Liu,
NeurIPS 2022)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import keras
import tensorflow as tf

from ..core import autodiff, distribute
from ..core import tensor_ops as ops
from ..core.problem import BilevelProblem
from .base import BilevelSolver
from .checks import check_nonnegative, check_positive_int
from .default_steps import JOINT_STEP, LOWER_STEP
from .variables import descend_copy, state_variable
from .optimizers import add_slot


class BOME(BilevelSolver):
    r"""BOME: descend f on the value-gap constraint q(u, v) = g(u, v) - min_w g(u, w) <= 0 with a dynamic barrier.

    B. Liu, M. Ye, S. Wright, P. Stone and Q. Liu, "BOME! Bilevel optimization made easy: a simple first-order
    approach", NeurIPS 2022.

    One upper iteration (gradients only, no second-order products)::

        repeat T times:  w <- inner_optimizer step along grad_w g(u, w)           (w ~ argmin g(u, .))
        grad q = (grad_u g(u, v) - grad_u g(u, w),  grad_v g(u, v))                 (w held fixed)
        phi = eta ||grad q||^2
        lam = max(phi - <grad f, grad q>, 0) / ||grad q||^2                        (0 when grad q = 0)
        (u, v) <- one joint step along s_k (grad f + lam grad q):  upper_optimizer on u, lower_optimizer on v
        with s_k = 1 / (1 + k / decay_steps)

    lam is the smallest multiplier for which the step decreases q at least at rate phi (the dynamic barrier):
    f is descended as far as that allows. The value-gap constraint has no interior and grad q vanishes on it,
    so with a constant step the iterates keep circling the solution at a distance proportional to the step
    (BOME's guarantee is for steps that shrink); ``decay_steps`` (default 100, None for constant steps) makes
    the step shrink as 1/k, which lets the iterates settle. With ``warm_start=True`` (default) the copy w is
    solver state that continues from the previous iteration's w, so the value estimate g(u, w) becomes exact as
    u settles; ``warm_start=False`` restarts w from the current v every iteration, as the paper's algorithm
    writes it (then grad_u q is biased by the inner loop's remaining error, unless T steps solve g(u, .)).
    Defaults: eta = 0.5 and T = 10 (the benchmark's settings); plain SGD steps measured on the problem at
    the first step (``default_steps``): 1 / L_joint for the joint (u, v) step (L_joint: g's top absolute
    curvature in (u, v) together) and 1 / L_g for w (``inner_optimizer`` follows a given lower learning rate).
    Their error falls as the step decays (about as k^-0.8): within 3000 iterations below 3 % on weakly coupled
    instances of ``bl.toy``'s quadratic family, above it on a strongly coupled one (||dv*/du|| = 3) until ~2e4.

    During its steps w is swapped into the problem's variables, so the losses need no change. Memory does not
    grow with T.
    """

    method = "bome"
    default_upper_optimizer = keras.optimizers.SGD
    default_lower_optimizer = keras.optimizers.SGD
    default_inner_optimizer = keras.optimizers.SGD
    default_upper_lr = JOINT_STEP
    default_lower_lr = JOINT_STEP
    default_inner_steps = 10

    def __init__(
        self,
        problem: BilevelProblem,
        upper_optimizer: Any = None,
        lower_optimizer: Any = None,
        *,
        inner_steps: Optional[int] = None,
        inner_optimizer: Any = None,
        eta: float = 0.5,
        decay_steps: Optional[int] = 100,
        warm_start: bool = True,
        jit_compile: bool = False,
        **unknown: Any,
    ):
        super().__init__(
            problem, upper_optimizer, lower_optimizer, inner_steps=inner_steps, jit_compile=jit_compile, **unknown
        )
        self.eta = check_nonnegative("eta", eta)
        self.decay_steps = None if decay_steps is None else check_positive_int("decay_steps", decay_steps)
        self.warm_start = bool(warm_start)
        self.w = (
            self.add_state("w", [state_variable(tf.convert_to_tensor(v), "w_inner") for v in problem.lower_vars])
            if self.warm_start
            else []
        )
        self.inner_optimizer = add_slot(
            self,
            "inner_optimizer",
            inner_optimizer,
            self.default_inner_optimizer,
            problem.lower_vars,
            self._inner_default(),
        )

    def _inner_default(self):
        """w descends g: the measured 1 / L_g when v's joint step is measured, else the lower learning rate."""
        return LOWER_STEP if self.default_steps.rule("lower_optimizer") else None

    def _config(self) -> Dict[str, Any]:
        return dict(eta=self.eta, decay_steps=self.decay_steps, warm_start=self.warm_start)

    def _direction(self, upper_batch, lower_batch):
        problem = self.problem
        upper, lower = list(problem.upper_vars), list(problem.lower_vars)
        g_w, grad_u_g_w = descend_copy(self, self.w, lower_batch, self.inner_optimizer)
        with tf.GradientTape(persistent=True) as tape:
            f, g = problem.f(upper_batch), problem.g(lower_batch)
        grad_f = distribute.mean_across_replicas(tape.gradient(f, upper + lower, unconnected_gradients=autodiff.ZERO))
        grad_g = distribute.mean_across_replicas(tape.gradient(g, upper + lower, unconnected_gradients=autodiff.ZERO))
        del tape
        n = len(upper)
        grad_q = ops.add(grad_g[:n], ops.scale(grad_u_g_w, -1.0)) + list(grad_g[n:])
        q_sq = tf.cast(ops.sq_norm(grad_q), self.dtype)
        dot = tf.cast(ops.inner(grad_f, [ops.dense(x) for x in grad_q]), self.dtype)
        lam = tf.math.divide_no_nan(tf.maximum(self.eta * q_sq - dot, 0.0), q_sq)
        k = tf.cast(self.iterations, self.dtype)
        scale = 1.0 if self.decay_steps is None else 1.0 / (1.0 + k / self.decay_steps)
        direction = ops.scale(ops.add(grad_f, ops.scale(grad_q, lam)), scale)
        g = distribute.mean_scalar(g)
        logs = dict(upper_loss=distribute.mean_scalar(f), lower_loss=g, value_gap=g - g_w, barrier_lam=lam)
        return direction[:n], direction[n:], logs

"""Reverse-mode differentiation through unrolled lower-level SGD (RMD / RHG / ITD, and truncated T-RHG)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import keras
import tensorflow as tf

from ..core import autodiff, distribute
from ..core import tensor_ops as ops
from ..core.problem import BilevelProblem
from .base import BilevelSolver
from .checks import check_positive_int
from .default_steps import LOWER_STEP
from .variables import project


class RMD(BilevelSolver):
    r"""Exact gradient of f(u, v_T(u)) through T unrolled SGD steps v_{t+1} = v_t - eta grad_v g(u, v_t).

    Forward pass: T SGD steps from the current v, storing the iterates v_t the reverse pass needs (a
    ``TensorArray``, so memory grows linearly with T by design). Reverse pass (the paper's Table 1)::

        q <- grad_v f(u, v_T),   p <- grad_u f(u, v_T)
        for t = T-1 down to T-K:   (v set back to v_t)
            p <- p - eta H_uv g(u, v_t) q
            q <- q - eta H_vv g(u, v_t) q          (both from one double-backward sweep)
        restore v_T;  u <- upper_optimizer step along p

    ``truncation=K`` back-propagates through the last K steps only (T-RHG, Shaban et al. 2019); the default
    K = T is full RHG. The lower optimizer must be plain SGD (or a learning rate): the unrolled map is
    differentiated analytically. The original TF1 code reverses only T-1 steps (it never stores v_0); this
    implementation reverses all T, giving the exact gradient of the unrolled map. A ``lower_constraint`` is
    applied in the forward pass but treated as the identity in the reverse pass.

    Defaults: T = 20, SGD 0.1 on u and eta = 1 / L on v, L = g's top curvature in v measured on the problem at
    the first step (``default_steps.LOWER_STEP``). The unrolled map from a warm start differentiates only the
    last T steps: along a curvature h of g its Jacobian misses (1 - eta h)^T of dv*/du, so on an ill-conditioned
    g (L / h above ~10 at T = 20) u settles that far from u*; a larger T removes the bias (memory grows with T).
    """

    method = "rmd"
    #: a learning rate gives plain SGD at both levels (the lower level must be SGD; u: as the original synthetic script)
    default_upper_optimizer = keras.optimizers.SGD
    default_lower_optimizer = keras.optimizers.SGD
    default_upper_lr = 0.1
    default_lower_lr = LOWER_STEP
    default_inner_steps = 20

    def __init__(
        self,
        problem: BilevelProblem,
        upper_optimizer: Any = None,
        lower_optimizer: Any = None,
        *,
        inner_steps: Optional[int] = None,
        truncation: Optional[int] = None,
        jit_compile: bool = False,
        **unknown: Any,
    ):
        super().__init__(
            problem, upper_optimizer, lower_optimizer, inner_steps=inner_steps, jit_compile=jit_compile, **unknown
        )
        opt = self.lower_optimizer
        if not isinstance(opt, keras.optimizers.SGD) or float(opt.momentum) != 0.0 or opt.nesterov:
            raise ValueError(
                "RMD differentiates through plain SGD steps: lower_optimizer must be "
                f"keras.optimizers.SGD without momentum or a learning rate, got {type(opt).__name__}"
            )
        self.truncation = check_positive_int("truncation", self.inner_steps if truncation is None else truncation)
        if self.truncation > self.inner_steps:
            raise ValueError(f"truncation ({self.truncation}) cannot exceed inner_steps ({self.inner_steps})")

    def _config(self) -> Dict[str, Any]:
        return dict(truncation=self.truncation)

    def _sgd_step(self, lower_batch, eta):
        _, grads = autodiff.lower_value_and_grad(self.problem, lower_batch)
        for var, g in zip(self.problem.lower_vars, grads):
            distribute.assign(var, tf.convert_to_tensor(var) - tf.cast(eta, var.dtype) * ops.dense(g))
        if self.problem.lower_constraint is not None:
            project(self.problem.lower_constraint, self.problem.lower_vars)

    def _direction(self, upper_batch, lower_batch):
        problem = self.problem
        lower, upper = problem.lower_vars, problem.upper_vars
        eta = tf.identity(self.lower_optimizer.learning_rate)
        T, K = self.inner_steps, self.truncation
        for _ in self.loop(T - K):  # steps outside the truncation window are not stored
            self._sgd_step(lower_batch, eta)
        history = [tf.TensorArray(v.dtype, size=K, element_shape=v.shape, clear_after_read=False) for v in lower]
        for t in self.loop(K):
            history = [h.write(t, tf.convert_to_tensor(v)) for h, v in zip(history, lower)]
            self._sgd_step(lower_batch, eta)

        f, grads = autodiff.upper_value_and_grad(problem, upper_batch, list(upper) + list(lower))
        p = [ops.dense(g) for g in grads[: len(upper)]]
        q = [ops.dense(g) for g in grads[len(upper) :]]
        final = [tf.convert_to_tensor(v) for v in lower]
        for j in self.loop(K - 1, -1, -1):
            for var, h in zip(lower, history):
                distribute.assign(var, h.read(j))
            _, _, _, jac = autodiff.second_order(problem, lower_batch, q, list(upper) + list(lower), mode=self.hvp)
            p = [pi - tf.cast(eta, pi.dtype) * ops.dense(c) for pi, c in zip(p, jac[: len(upper)])]
            q = [qi - tf.cast(eta, qi.dtype) * ops.dense(c) for qi, c in zip(q, jac[len(upper) :])]
        for var, value in zip(lower, final):
            distribute.assign(var, value)
        g = distribute.mean_scalar(problem.g(lower_batch))
        return p, None, dict(upper_loss=f, lower_loss=g)

"""StocBiO: stochastic bilevel optimizer with a Neumann-series Hessian inverse (Ji, Yang & Liang, ICML 2021)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import keras
import tensorflow as tf

from ..core import autodiff
from ..core import tensor_ops as ops
from ..core.problem import BilevelProblem
from .base import BilevelSolver
from . import linear_solvers
from .checks import check_positive_int
from .default_steps import LOWER_STEP


class StocBiO(BilevelSolver):
    r"""StocBiO: warm-started inner loop on v, then a truncated Neumann series for (H_vv g)^{-1} grad_v f.

    K. Ji, J. Yang and Y. Liang, "Bilevel optimization: convergence analysis and enhanced design", ICML 2021.

    (H_vv g)^{-1} = eta sum_{q >= 0} (I - eta H_vv g)^q  for 0 < eta < 2/L (L: the largest eigenvalue of H_vv g).
    One upper iteration::

        repeat T times:  v <- lower_optimizer step along grad_v g(u, v)                  (from the last v)
        b = grad_v f(u, v);  p_0 = b;  s = b
        repeat Q times:  p <- p - eta H_vv g(u, v) p;   s <- s + p                         (Q HVPs)
        z = -eta s                                                   (~ -(H_vv g)^{-1} grad_v f)
        u <- upper_optimizer step along grad_u f(u, v) + H_uv g(u, v) z

    The inner loop on v is warm-started (it continues from the previous iteration's v, as in the paper); the
    Neumann series is not: it is a fresh truncated sum each iteration (the paper's estimator; continuing it from
    the previous z would turn it into AmIGO's gradient steps on the linear system). Its truncation leaves the
    error (1 - eta mu)^(Q+1) along the eigenvector of H_vv g with the smallest eigenvalue mu, so Q must reach a
    few times 1/(eta mu). ``linear_steps`` is Q (default 100, which reaches 1e-2 of the hypergradient at
    eta mu >= 0.05; 200 with a measured eta); ``neumann_step`` is eta: by default 1.8 / (L + mu) measured on the
    problem at the first step (``default_steps.SERIES_STEP``: 0.9 x the fastest stable step; with Q = 200 the
    truncation keeps below 3 % of z* up to L / mu = 100) when the lower optimizer is left to its default too,
    else the lower optimizer's initial
    learning rate (an SGD step that is stable on g is a convergent Neumann step; pass a number when the lower
    optimizer is adaptive, such as Adam). Defaults: plain SGD, 0.1 on u and 1 / L on v (L measured as above,
    ``default_steps.LOWER_STEP``), T = 10 (the benchmark's setting). Memory does not grow with T or Q.
    """

    method = "stocbio"
    default_upper_optimizer = keras.optimizers.SGD
    default_lower_optimizer = keras.optimizers.SGD
    default_upper_lr = 0.1
    default_lower_lr = LOWER_STEP
    default_inner_steps = 10
    default_linear_steps = 100
    #: Q with the measured step 1.8 / (L + mu): its truncation leaves (1 - 1.8 / (1 + L/mu))^(Q+1) of z*, below
    #: 3 % up to L / mu = 100 (at Q = 100 it left 16 %, and 5.6 % of u* on a quadratic of L / mu = 100)
    measured_linear_steps = 200

    def __init__(
        self,
        problem: BilevelProblem,
        upper_optimizer: Any = None,
        lower_optimizer: Any = None,
        *,
        inner_steps: Optional[int] = None,
        linear_steps: Optional[int] = None,
        neumann_step: Optional[float] = None,
        jit_compile: bool = False,
        **unknown: Any,
    ):
        super().__init__(
            problem, upper_optimizer, lower_optimizer, inner_steps=inner_steps, jit_compile=jit_compile, **unknown
        )
        self.neumann_step = linear_solvers.neumann_step(self, neumann_step)
        default = self.default_linear_steps if isinstance(self.neumann_step, float) else self.measured_linear_steps
        self.linear_steps = check_positive_int("linear_steps", default if linear_steps is None else linear_steps)

    def _config(self) -> Dict[str, Any]:
        return dict(linear_steps=self.linear_steps, neumann_step=linear_solvers.recorded_step(self.neumann_step))

    def _neumann(self, lower_batch, b):
        """eta sum_{q=0}^{Q} (I - eta H)^q b, with Q Hessian-vector products."""
        eta = self.neumann_step if isinstance(self.neumann_step, float) else tf.identity(self.neumann_step)
        p, s = list(b), list(b)
        for _ in self.loop(self.linear_steps):
            hp = autodiff.hvp(self.problem, lower_batch, p, mode=self.hvp)
            p = [pi - eta * ops.dense(h) for pi, h in zip(p, hp)]
            s = [si + pi for si, pi in zip(s, p)]
        return [eta * si for si in s], ops.sq_norm(p) * eta**2

    def _direction(self, upper_batch, lower_batch):
        problem = self.problem
        self.descend_lower(lower_batch)
        _, b = autodiff.upper_value_and_grad(problem, upper_batch, problem.lower_vars)
        inverse_b, tail_sq = self._neumann(lower_batch, [tf.stop_gradient(ops.dense(x)) for x in b])
        # grad_u [f - <grad_v g, H^-1 b>] = grad_u f + H_uv g z with z = -H^-1 b, in one double-backward sweep
        g, _, f, grad_u = autodiff.second_order(
            problem,
            lower_batch,
            [-x for x in inverse_b],
            problem.upper_vars,
            extra=lambda: problem.f(upper_batch),
            mode=self.hvp,
        )
        return grad_u, None, dict(upper_loss=f, lower_loss=g, neumann_tail_sq=tail_sq)

"""Implicit differentiation with a swappable iterative linear solve (conjugate gradient or Neumann series)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import keras
import tensorflow as tf

from ..core import autodiff, distribute
from ..core import tensor_ops as ops
from ..core.problem import BilevelProblem
from .base import BilevelSolver
from .checks import check_choice, check_nonnegative, check_positive_int
from . import linear_solvers
from .default_steps import LOWER_STEP
from .variables import state_variable


class Implicit(BilevelSolver):
    r"""Implicit differentiation: inner steps on v, an iterative solve of the Hessian system, one step on u.

    F. Pedregosa, "Hyperparameter optimization with approximate gradient", ICML 2016 (HOAG, conjugate gradient);
    A. Rajeswaran, C. Finn, S. Kakade and S. Levine, "Meta-learning with implicit gradients", NeurIPS 2019 (CG);
    J. Lorraine, P. Vicol and D. Duvenaud, "Optimizing millions of hyperparameters by implicit differentiation",
    AISTATS 2020 (Neumann series).

    The implicit function theorem gives grad F(u) = grad_u f - H_uv g q with (H_vv g) q = grad_v f. One upper
    iteration::

        repeat T times:  v <- lower_optimizer step along grad_v g(u, v)                 (from the last v)
        b = grad_v f(u, v)
        q <- linear_steps iterations of linear_solver on (H_vv g) q = b                  (from the last q)
             "cg":      alpha = r'r / d'Hd,  q += alpha d,  r -= alpha Hd,  d = r + (r'r)_new / r'r d
             "neumann": q <- q + eta (b - H_vv g q)     (from q = 0: eta sum_k (I - eta H_vv g)^k b)
        u <- upper_optimizer step along grad_u f(u, v) - H_uv g(u, v) q

    Every product with H_vv g or H_uv g is a Hessian-vector product; the loops on v and q and the step on u are
    one compiled graph. ``warm_start=True`` (default) starts q from the previous iteration's solution, False
    from zero. ``linear_steps`` defaults to 10 (CG is exact after dim(v) steps on a quadratic);
    ``neumann_step`` (eta, needs eta < 2 / lambda_max(H_vv g)) defaults to the lower optimizer's initial
    learning rate, or to 1.8 / (L + mu) measured on the problem when the lower optimizer is left to its default
    (``default_steps.SERIES_STEP``). ``sigma`` > 0 solves (H_vv g + sigma I) q = b instead, for a singular H_vv g
    (as ApproxGrad). Defaults: plain SGD, 0.02 on u and 1 / L on v (L: g's top curvature in v measured on the
    problem at the first step, ``default_steps.LOWER_STEP``), T = 10, sigma = 0. H_vv g + sigma I must be positive
    definite (CG), which holds near a strict minimum of g.
    """

    method = "implicit"
    default_upper_optimizer = keras.optimizers.SGD
    default_lower_optimizer = keras.optimizers.SGD
    default_upper_lr = 0.02  # 0.1 diverged with conjugate gradients on mini-batches of 8 (benchopt tiny)
    default_lower_lr = LOWER_STEP
    default_inner_steps = 10
    default_linear_steps = 10

    def __init__(
        self,
        problem: BilevelProblem,
        upper_optimizer: Any = None,
        lower_optimizer: Any = None,
        *,
        inner_steps: Optional[int] = None,
        linear_solver: str = "cg",
        linear_steps: Optional[int] = None,
        neumann_step: Optional[float] = None,
        sigma: float = 0.0,
        warm_start: bool = True,
        jit_compile: bool = False,
        **unknown: Any,
    ):
        super().__init__(
            problem, upper_optimizer, lower_optimizer, inner_steps=inner_steps, jit_compile=jit_compile, **unknown
        )
        # (gradient descent on the residual, with its own optimizer, is ApproxGrad)
        self.linear_solver = check_choice("linear_solver", linear_solver, ("cg", "neumann"))
        self.linear_steps = check_positive_int(
            "linear_steps", self.default_linear_steps if linear_steps is None else linear_steps
        )
        self.neumann_step = linear_solvers.neumann_step(self, neumann_step, used=self.linear_solver == "neumann")
        self._solve = linear_solvers.make_linear_solver(linear_solver, step_size=self.neumann_step)
        self.sigma = check_nonnegative("sigma", sigma)
        self.warm_start = bool(warm_start)
        self.q = self.add_state("q", [state_variable(tf.zeros(v.shape, v.dtype), "q") for v in problem.lower_vars])

    def _config(self) -> Dict[str, Any]:
        return dict(
            linear_solver=self.linear_solver,
            linear_steps=self.linear_steps,
            neumann_step=linear_solvers.recorded_step(self.neumann_step),
            sigma=self.sigma,
            warm_start=self.warm_start,
        )

    def _linear_operator(self, lower_batch, x):
        """(H_vv g + sigma I) x."""
        hx = autodiff.hvp(self.problem, lower_batch, x, mode=self.hvp)
        return [ops.dense(h) + self.sigma * xi for h, xi in zip(hx, x)]

    def _direction(self, upper_batch, lower_batch):
        problem = self.problem
        self.descend_lower(lower_batch)
        if not self.warm_start:
            for q in self.q:
                distribute.assign(q, tf.zeros_like(q))
        _, b = autodiff.upper_value_and_grad(problem, upper_batch, problem.lower_vars)
        b = [tf.stop_gradient(ops.dense(x)) for x in b]
        residual_sq = self._solve(
            lambda x: self._linear_operator(lower_batch, x), b, self.q, self.linear_steps, self.loop
        )
        # grad_u [f - <grad_v g, q>] = grad_u f - H_uv g q, in one double-backward sweep
        minus_q = [-tf.convert_to_tensor(x) for x in self.q]
        g, _, f, grad_u = autodiff.second_order(
            problem, lower_batch, minus_q, problem.upper_vars, extra=lambda: problem.f(upper_batch), mode=self.hvp
        )
        return grad_u, None, dict(upper_loss=f, lower_loss=g, linear_residual_sq=residual_sq)

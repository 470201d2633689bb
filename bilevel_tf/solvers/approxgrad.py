"""ApproxGrad: approximate the implicit hypergradient by solving the Hessian system iteratively."""

from __future__ import annotations

from typing import Any, Dict, Optional

import keras
import tensorflow as tf

from ..core import autodiff, distribute
from ..core import tensor_ops as ops
from ..core.problem import BilevelProblem
from .base import BilevelSolver
from .checks import check_nonnegative, check_positive_int
from .default_steps import LOWER_STEP, RESIDUAL_STEP
from .linear_solvers import make_linear_solver, neumann_step
from .optimizers import add_slot, slot_learning_rate
from .variables import state_variable


class ApproxGrad(BilevelSolver):
    r"""Approximate-inversion hypergradient (the paper's ApproxGrad baseline).

    The implicit function theorem gives the hypergradient  grad_u f - H_uv g (H_vv g)^{-1} grad_v f.
    One upper iteration::

        repeat T times:   v <- lower_optimizer step along grad_v g
        repeat T_p times: p <- linear_optimizer step along grad_p ||(H_vv g + sigma I) p - grad_v f||^2
                             = 2 (H_vv g + sigma I) r,   r = (H_vv g + sigma I) p - grad_v f
                          (two Hessian-vector products per step, no Hessian is formed)
        u <- upper_optimizer step along grad_u f - H_uv g p

    ``sigma`` regularizes the possibly singular Hessian (the original's runners use 1e-3, its synthetic
    script 1e-6). ``warm_start=True`` keeps p from the previous iteration as the original does; False
    restarts it from zero. ``linear_steps`` defaults to ``inner_steps``. A learning rate gives Adam in every slot (the
    original's optimizer); left unset, the slots take what converges on a user's problem (measured at the first
    step, see :mod:`bilevel_tf.solvers.default_steps`): plain SGD at 1 / L on v and at 0.5 / L^2 on p (the
    residual's curvature is 2 L^2; L = g's top curvature in v), Adam 1e-2 on u. ``linear_optimizer`` given a
    lower optimizer defaults to Adam at its initial learning rate. ``linear_solver`` swaps the solve of
    (H_vv g + sigma I) p = grad_v f: ``"gd"`` (the default, the steps above), ``"cg"`` (conjugate gradient) or
    ``"neumann"`` (Richardson steps of the linear optimizer's initial learning rate, or 1.8 / (L + mu) measured),
    see :mod:`bilevel_tf.solvers.linear_solvers`. Memory does not grow with T.
    """

    method = "approxgrad"
    default_inner_steps = 20
    default_upper_lr = 1e-2
    default_lower_lr = LOWER_STEP
    default_linear_optimizer = keras.optimizers.Adam

    def __init__(
        self,
        problem: BilevelProblem,
        upper_optimizer: Any = None,
        lower_optimizer: Any = None,
        *,
        inner_steps: Optional[int] = None,
        linear_steps: Optional[int] = None,
        linear_optimizer: Any = None,
        sigma: float = 1e-3,
        warm_start: bool = True,
        linear_solver: str = "gd",
        jit_compile: bool = False,
        **unknown: Any,
    ):
        super().__init__(
            problem, upper_optimizer, lower_optimizer, inner_steps=inner_steps, jit_compile=jit_compile, **unknown
        )
        self.linear_steps = check_positive_int(
            "linear_steps", self.inner_steps if linear_steps is None else linear_steps
        )
        self.sigma = check_nonnegative("sigma", sigma)
        self.warm_start = bool(warm_start)
        self.p = self.add_state("p", [state_variable(tf.zeros(v.shape, v.dtype), "p") for v in problem.lower_vars])
        measured = self.default_steps.rule("lower_optimizer") is not None
        self.linear_optimizer = add_slot(
            self,
            "linear_optimizer",
            linear_optimizer,
            self.default_linear_optimizer,
            self.p,
            RESIDUAL_STEP if measured else None,
        )
        self.linear_solver = linear_solver
        if linear_solver == "neumann":  # Richardson steps of the linear optimizer's learning rate (or measured)
            step = (
                neumann_step(self, None)
                if self.default_steps.rule("linear_optimizer")
                else slot_learning_rate(self, "linear_optimizer")
            )
        else:
            step = None
        self._solve = make_linear_solver(linear_solver, optimizer=self.linear_optimizer, step_size=step)

    def _config(self) -> Dict[str, Any]:
        return dict(
            linear_steps=self.linear_steps,
            sigma=self.sigma,
            warm_start=self.warm_start,
            linear_solver=self.linear_solver,
        )

    def _linear_operator(self, lower_batch, x):
        """(H_vv g + sigma I) x."""
        hx = autodiff.hvp(self.problem, lower_batch, x, mode=self.hvp)
        return [ops.dense(h) + self.sigma * xi for h, xi in zip(hx, x)]

    def _direction(self, upper_batch, lower_batch):
        problem = self.problem
        lower, upper = problem.lower_vars, problem.upper_vars
        self.descend_lower(lower_batch)

        if not self.warm_start:
            for p in self.p:
                distribute.assign(p, tf.zeros_like(p))
        _, b = autodiff.upper_value_and_grad(problem, upper_batch, lower)
        b = [tf.stop_gradient(ops.dense(x)) for x in b]
        residual_sq = self._solve(
            lambda x: self._linear_operator(lower_batch, x), b, self.p, self.linear_steps, self.loop
        )

        # u direction: grad_u [f - <grad_v g, p>] = grad_u f - H_uv g p, in one double-backward sweep.
        p_final = [-tf.convert_to_tensor(p) for p in self.p]
        g, _, f, grad_u = autodiff.second_order(
            problem, lower_batch, p_final, upper, extra=lambda: problem.f(upper_batch), mode=self.hvp
        )
        return grad_u, None, dict(upper_loss=f, lower_loss=g, linear_residual_sq=residual_sq)

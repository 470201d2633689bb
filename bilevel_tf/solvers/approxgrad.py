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
from .linear_solvers import make_linear_solver
from .optimizers import make_optimizer, optimizer_config
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
    restarts it from zero. ``linear_steps`` defaults to ``inner_steps`` and ``linear_optimizer`` (any form of
    :class:`BilevelSolver`'s optimizer options; a learning rate gives Adam) to Adam with the lower optimizer's
    initial learning rate. ``linear_solver`` swaps the solve of (H_vv g + sigma I) p = grad_v f: ``"gd"`` (the
    default, the steps above), ``"cg"`` (conjugate gradient) or ``"neumann"`` (Richardson steps of the linear
    optimizer's initial learning rate), see :mod:`bilevel_tf.solvers.linear_solvers`. Memory does not grow with T.
    """

    method = "approxgrad"
    default_inner_steps = 20
    default_linear_optimizer = keras.optimizers.Adam

    def __init__(self, problem: BilevelProblem, upper_optimizer: Any = None, lower_optimizer: Any = None, *,
                 inner_steps: Optional[int] = None, linear_steps: Optional[int] = None,
                 linear_optimizer: Any = None, sigma: float = 1e-3, warm_start: bool = True,
                 linear_solver: str = "gd", jit_compile: bool = False, **unknown: Any):
        super().__init__(problem, upper_optimizer, lower_optimizer, inner_steps=inner_steps,
                         jit_compile=jit_compile, **unknown)
        self.linear_steps = check_positive_int(
            "linear_steps", self.inner_steps if linear_steps is None else linear_steps)
        self.sigma = check_nonnegative("sigma", sigma)
        self.warm_start = bool(warm_start)
        default_lr = float(keras.ops.convert_to_numpy(self.lower_optimizer.learning_rate))
        self.linear_optimizer = make_optimizer(linear_optimizer, "linear_optimizer", self.default_linear_optimizer,
                                               default_lr)
        if self.linear_optimizer is self.lower_optimizer or self.linear_optimizer is self.upper_optimizer:
            raise ValueError("linear_optimizer must be a separate optimizer instance")
        self.p = self.add_state("p", [state_variable(tf.zeros(v.shape, v.dtype), "p") for v in problem.lower_vars])
        self._build_optimizer(self.linear_optimizer, self.p, "linear_optimizer")
        self.add_state("linear_optimizer", self.linear_optimizer)
        self._linear_optimizer_config = optimizer_config(self.linear_optimizer)
        self.linear_solver = linear_solver
        linear_lr = float(keras.ops.convert_to_numpy(self.linear_optimizer.learning_rate))
        self._solve = make_linear_solver(linear_solver, optimizer=self.linear_optimizer, step_size=linear_lr)

    def _config(self) -> Dict[str, Any]:
        return dict(linear_steps=self.linear_steps, linear_optimizer=self._linear_optimizer_config,
                    sigma=self.sigma, warm_start=self.warm_start, linear_solver=self.linear_solver)

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
        residual_sq = self._solve(lambda x: self._linear_operator(lower_batch, x), b, self.p, self.linear_steps,
                                  self.loop)

        # u direction: grad_u [f - <grad_v g, p>] = grad_u f - H_uv g p, in one double-backward sweep.
        p_final = [-tf.convert_to_tensor(p) for p in self.p]
        g, _, f, grad_u = autodiff.second_order(problem, lower_batch, p_final, upper,
                                                extra=lambda: problem.f(upper_batch), mode=self.hvp)
        return grad_u, None, dict(upper_loss=f, lower_loss=g, linear_residual_sq=residual_sq)

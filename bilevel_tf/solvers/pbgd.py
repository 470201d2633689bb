"""Penalty-based bilevel gradient descent (Shen & Chen, 2023): V-PBGD and G-PBGD."""

from __future__ import annotations

from typing import Any, Dict, Optional

import keras
import tensorflow as tf

from ..core import autodiff, distribute
from ..core import tensor_ops as ops
from ..core.problem import BilevelProblem
from .base import BilevelSolver
from .checks import check_nonnegative, check_positive_int
from .default_steps import JOINT_SQUARED_STEP, JOINT_STEP, LOWER_STEP
from .optimizers import add_slot
from .variables import descend_copy, state_variable


class _GammaSchedule(BilevelSolver):
    """gamma_k = gamma_init + (gamma_max - gamma_init) * min(k / gamma_argmax_step, 1); joint steps are
    scaled by min(1/gamma, 1) as in the PBGD code, so a growing penalty does not blow up the step."""

    default_upper_optimizer = keras.optimizers.SGD
    default_lower_optimizer = keras.optimizers.SGD

    def _init_gamma(self, gamma_init, gamma_max, gamma_argmax_step):
        check_nonnegative("gamma_init", gamma_init)
        check_nonnegative("gamma_max", gamma_max)
        self.gamma_init, self.gamma_max = float(gamma_init), float(gamma_max)
        self.gamma_argmax_step = check_positive_int("gamma_argmax_step", gamma_argmax_step)
        self.gamma = self.add_state("gamma", state_variable(gamma_init, "gamma", self.dtype), schedule=True)

    def _update_gamma(self):
        frac = tf.minimum(tf.cast(self.iterations, self.gamma.dtype) / float(self.gamma_argmax_step), 1.0)
        distribute.assign(self.gamma, self.gamma_init + (self.gamma_max - self.gamma_init) * frac)
        return tf.where(self.gamma > 1.0, 1.0 / tf.maximum(self.gamma, 1e-12), 1.0)

    def _config(self) -> Dict[str, Any]:
        return dict(gamma_init=self.gamma_init, gamma_max=self.gamma_max, gamma_argmax_step=self.gamma_argmax_step)


class VPBGD(_GammaSchedule):
    r"""V-PBGD: penalize the lower-level value gap g(u, v) - min_w g(u, w).

    One upper iteration (PBGD's Algorithm with a warm-started inner copy w)::

        repeat T times:  w <- inner_optimizer step along grad_w g(u, w)          (u held fixed)
        F(u, v) = f(u, v) + gamma (g(u, v) - g(u, w))                             (w held fixed)
        (u, v) <- one joint step along min(1/gamma, 1) grad_{u,v} F

    grad_u F includes -gamma grad_u g(u, w) (Danskin's theorem for the value function). The copy w lives in
    its own variables; during the inner steps it is swapped into the model's variables, so the losses need
    no change. Defaults follow the PBGD code's data hyper-cleaning script (gamma, T; ``inner_optimizer``:
    SGD(0.01) next to given optimizers, SGD for a learning rate), except that unset optimizers take plain SGD
    steps measured on the problem at the first step (``default_steps``): 1 / L_joint for the joint step (g's top
    absolute curvature in (u, v)) and 1 / L_g for w. A small ``gamma_max`` leaves the penalty's bias.
    """

    method = "vpbgd"
    default_upper_lr = JOINT_STEP
    default_lower_lr = JOINT_STEP
    default_inner_steps = 1
    default_inner_optimizer = keras.optimizers.SGD
    default_inner_lr = 0.01

    def __init__(
        self,
        problem: BilevelProblem,
        upper_optimizer: Any = None,
        lower_optimizer: Any = None,
        *,
        inner_steps: Optional[int] = None,
        inner_optimizer: Any = None,
        gamma_init: float = 0.0,
        gamma_max: float = 0.2,
        gamma_argmax_step: int = 30000,
        jit_compile: bool = False,
        **unknown: Any,
    ):
        super().__init__(
            problem, upper_optimizer, lower_optimizer, inner_steps=inner_steps, jit_compile=jit_compile, **unknown
        )
        self._init_gamma(gamma_init, gamma_max, gamma_argmax_step)
        # w descends g: the measured 1 / L_g when the joint steps are measured, else PBGD's SGD(0.01)
        inner_default = LOWER_STEP if self.default_steps.rule("lower_optimizer") else self.default_inner_lr
        self.w = self.add_state("w", [state_variable(tf.convert_to_tensor(v), "w_inner") for v in problem.lower_vars])
        self.inner_optimizer = add_slot(
            self, "inner_optimizer", inner_optimizer, self.default_inner_optimizer, problem.lower_vars, inner_default
        )

    def _direction(self, upper_batch, lower_batch):
        problem = self.problem
        lower, upper = problem.lower_vars, problem.upper_vars
        step_scale = self._update_gamma()
        g_inner, grad_u_inner = descend_copy(self, self.w, lower_batch, self.inner_optimizer)

        with tf.GradientTape() as tape:
            f = problem.f(upper_batch)
            g = problem.g(lower_batch)
            total = f + self.gamma * g
        grads = distribute.mean_across_replicas(
            tape.gradient(total, list(upper) + list(lower), unconnected_gradients=autodiff.ZERO)
        )
        f, g = distribute.mean_scalar(f), distribute.mean_scalar(g)
        grad_u = ops.add(grads[: len(upper)], ops.scale(grad_u_inner, -self.gamma))
        grad_u = ops.scale(grad_u, step_scale)
        grad_v = ops.scale(grads[len(upper) :], step_scale)
        logs = dict(upper_loss=f, lower_loss=g, value_gap=g - g_inner)
        return grad_u, grad_v, logs


class GPBGD(_GammaSchedule):
    r"""G-PBGD: penalize the lower-level gradient norm.

    F(u, v) = f(u, v) + (gamma / 2) ||grad_v g(u, v)||^2   (the 1/2 as in the PBGD code)::

        repeat T-1 times:  v <- lower_optimizer step along min(1/gamma, 1) grad_v F
        (u, v) <- one joint step along min(1/gamma, 1) grad_{u,v} F

    With the default T = 1 this is PBGD's G-PBGD exactly (one joint step per iteration, no inner loop).
    Unset optimizers take plain SGD at 1 / L_joint^2 measured on the problem at the first step (the penalty's
    curvature is g's squared; ``default_steps.JOINT_SQUARED_STEP``).
    Each step costs one Hessian-vector product (the same double backward as the Penalty method).
    """

    method = "gpbgd"
    default_upper_lr = JOINT_SQUARED_STEP
    default_lower_lr = JOINT_SQUARED_STEP
    default_inner_steps = 1

    def __init__(
        self,
        problem: BilevelProblem,
        upper_optimizer: Any = None,
        lower_optimizer: Any = None,
        *,
        inner_steps: Optional[int] = None,
        gamma_init: float = 0.0,
        gamma_max: float = 37.0,
        gamma_argmax_step: int = 5000,
        jit_compile: bool = False,
        **unknown: Any,
    ):
        super().__init__(
            problem, upper_optimizer, lower_optimizer, inner_steps=inner_steps, jit_compile=jit_compile, **unknown
        )
        self._init_gamma(gamma_init, gamma_max, gamma_argmax_step)

    def _penalized(self, upper_batch, lower_batch, wrt):
        return autodiff.second_order(
            self.problem,
            lower_batch,
            lambda gv: ops.scale(gv, self.gamma),
            wrt,
            extra=lambda: self.problem.f(upper_batch),
            mode=self.hvp,
        )

    def _direction(self, upper_batch, lower_batch):
        lower, upper = self.problem.lower_vars, self.problem.upper_vars
        step_scale = self._update_gamma()
        for _ in self.loop(self.inner_steps - 1):
            _, _, _, grads = self._penalized(upper_batch, lower_batch, lower)
            self.apply_lower(ops.scale(grads, step_scale))
        g, gv, f, grads = self._penalized(upper_batch, lower_batch, list(upper) + list(lower))
        grad_u = ops.scale(grads[: len(upper)], step_scale)
        grad_v = ops.scale(grads[len(upper) :], step_scale)
        return grad_u, grad_v, dict(upper_loss=f, lower_loss=g, lower_grad_norm_sq=ops.sq_norm(gv))

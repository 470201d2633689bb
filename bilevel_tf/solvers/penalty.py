"""The Penalty method of Mehra & Hamm (ACML 2021), Algorithm 2 with the augmented-Lagrangian terms."""
from __future__ import annotations

from typing import Any, Dict, Optional

import tensorflow as tf

from .. import autodiff, distribute
from .. import tensor_ops as ops
from ..problem import BilevelProblem
from .base import BilevelSolver, check_choice, check_nonnegative, scalar_variable, state_variable


class Penalty(BilevelSolver):
    r"""Penalty method: replace the lower problem by its stationarity condition grad_v g = 0.

    With penalty weight rho (the paper's gamma), multiplier nu and regularizer weight lam::

        h_u(u, v) = f + <grad_v g, nu> + (rho / 2) ||grad_v g||^2              (paper's f~_1)
        h_l(u, v) = h_u + lam * g                                                (paper's f~_2)

    One upper iteration (one call of :meth:`step`)::

        repeat T times:  v <- lower_optimizer step along grad_v h_l
                         = grad_v f + H_vv g (nu + rho grad_v g) + lam grad_v g   (one Hessian-vector product)
        u <- upper_optimizer step along grad_u h_u = grad_u f + H_uv g (nu + rho grad_v g)
        if tolerance(||grad_u h_u||^2, ||grad_v h_l||^2) < eps^2:
            rho <- c_rho rho;  lam <- c_lam lam;  eps <- c_eps eps
            nu <- nu + rho grad_v g                      (if use_nu; rho after or before the increase)
            learning rates <- lr_decay * learning rates  (if lr_decay)

    By Lemma 3 of the paper, at the minimizer of h over v, grad_u h_u is the exact hypergradient.

    Options beyond the paper, defaulting to what the original code (hammlab/bilevel-penalty,
    ``bilevel_penalty_aug_lag.py``, which produced the paper's tables) does:

    - ``tolerance="original"`` tests ``(||grad_u h_u||^2)^2 + (||grad_v h_l||^2)^2 < eps^2`` (the original
      squares the already-squared norms); ``"paper"`` tests ``||grad_u h_u||^2 + ||grad_v h_l||^2 < eps^2``.
    - ``nu_rho="new"`` updates nu with the increased rho (original); ``"old"`` uses rho_k (paper).
    - ``lr_decay=0.9`` multiplies both learning rates when the schedule fires (original; the few-shot
      code uses 0.99 and the synthetic code 1/c_rho); ``None`` keeps them (paper).
    - ``nu`` is the initial multiplier value, broadcast to every entry (original: nu_0 * ones).

    The gradient norms of the tolerance test are measured at the point where the u step is taken (the
    original re-evaluates them after the u step, which costs one more second-order pass per iteration).

    Memory does not grow with T: the inner loop is a graph loop and nothing is kept across its steps.
    """

    method = "penalty"
    default_inner_steps = 20

    def __init__(self, problem: BilevelProblem, upper_optimizer: Any = None, lower_optimizer: Any = None, *,
                 inner_steps: Optional[int] = None, rho: float = 1.0, lam: float = 10.0, eps: float = 1.0,
                 nu: float = 0.0, c_rho: float = 1.1, c_lam: float = 0.9, c_eps: float = 0.9,
                 use_nu: bool = True, lr_decay: Optional[float] = 0.9, tolerance: str = "original",
                 nu_rho: str = "new", jit_compile: bool = False, **unknown: Any):
        for name, value in dict(rho=rho, lam=lam, eps=eps, c_rho=c_rho, c_lam=c_lam, c_eps=c_eps).items():
            check_nonnegative(name, value)
        if lr_decay is not None and not 0 < lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1] or None, got {lr_decay!r}")
        self.tolerance = check_choice("tolerance", tolerance, ("original", "paper"))
        self.nu_rho = check_choice("nu_rho", nu_rho, ("new", "old"))
        self.use_nu = bool(use_nu)
        self.lr_decay = lr_decay
        self.c_rho, self.c_lam, self.c_eps = float(c_rho), float(c_lam), float(c_eps)
        super().__init__(problem, upper_optimizer, lower_optimizer, inner_steps=inner_steps,
                         jit_compile=jit_compile, **unknown)
        if lr_decay is not None:
            self.check_decayable(self.upper_optimizer, "upper_optimizer")
            self.check_decayable(self.lower_optimizer, "lower_optimizer")
        self.rho = scalar_variable(rho, "rho", self.dtype)
        self.lam = scalar_variable(lam, "lam", self.dtype)
        self.eps = scalar_variable(eps, "eps", self.dtype)
        self.nu = [state_variable(tf.fill(v.shape, tf.cast(nu, v.dtype)), "nu")
                   for v in problem.lower_vars] if self.use_nu else []
        self.schedule_updates = state_variable(0, "schedule_updates", tf.int64)

    def _schedule_vars(self) -> Dict[str, tf.Variable]:
        return {"rho": self.rho, "lam": self.lam, "eps": self.eps}

    def _extra_state(self) -> Dict[str, Any]:
        return dict(rho=self.rho, lam=self.lam, eps=self.eps, nu=list(self.nu),
                    schedule_updates=self.schedule_updates)

    def _penalty_weights(self, gv):
        """w = nu + rho * grad_v g, so that d<grad_v g, w>/dx = d/dx [<grad_v g, nu> + rho/2 ||grad_v g||^2]."""
        w = ops.scale(gv, self.rho)
        return ops.add(self.nu, w) if self.use_nu else w

    def _penalty_grads(self, upper_batch, lower_batch, wrt):
        """(g, grad_v g, f, grad_wrt h_u) in one forward and one double-backward sweep."""
        return autodiff.second_order(self.problem, lower_batch, self._penalty_weights, wrt,
                                     extra=lambda: self.problem.f(upper_batch), mode=self.hvp)

    def _direction(self, upper_batch, lower_batch):
        lower = self.problem.lower_vars
        for _ in self.loop(self.inner_steps):
            _, gv, _, grad_hu = self._penalty_grads(upper_batch, lower_batch, lower)
            # grad_v h_l = grad_v h_u + lam * grad_v g: the lam term reuses grad_v g, no extra pass.
            self.apply_lower(ops.add(grad_hu, ops.scale(gv, self.lam)))
        upper = self.problem.upper_vars
        g, gv, f, grads = self._penalty_grads(upper_batch, lower_batch, list(upper) + list(lower))
        grad_u, grad_hl = grads[:len(upper)], ops.add(grads[len(upper):], ops.scale(gv, self.lam))
        gv_sq = ops.sq_norm(gv)
        aux = dict(upper_loss=f, lower_loss=g, gv=gv, lower_grad_norm_sq=gv_sq,
                   hu_sq=ops.sq_norm(grad_u), hl_sq=ops.sq_norm(grad_hl))
        return grad_u, None, aux

    def _finish(self, aux):
        hu_sq, hl_sq = aux["hu_sq"], aux["hl_sq"]
        measure = hu_sq ** 2 + hl_sq ** 2 if self.tolerance == "original" else hu_sq + hl_sq
        fired = measure < tf.square(self.eps)
        penalty = 0.5 * self.rho * aux["lower_grad_norm_sq"]
        # Branch-free update (tf.where): no synchronization inside a conditional under a strategy, and
        # one straight-line graph for XLA.
        rho_old = tf.identity(self.rho)
        rho_new = tf.where(fired, rho_old * self.c_rho, rho_old)
        distribute.assign(self.rho, rho_new)
        distribute.assign(self.lam, tf.where(fired, self.lam * self.c_lam, self.lam))
        distribute.assign(self.eps, tf.where(fired, self.eps * self.c_eps, self.eps))
        rho_nu = rho_new if self.nu_rho == "new" else rho_old
        for nu, g in zip(self.nu, aux["gv"]):
            distribute.assign(nu, tf.convert_to_tensor(nu) + ops.dense(g) * tf.where(fired, rho_nu, 0.0))
        if self.lr_decay is not None:
            factor = tf.where(fired, self.lr_decay, 1.0)
            for optimizer in (self.upper_optimizer, self.lower_optimizer):
                lr = optimizer.learning_rate
                distribute.assign(lr, lr * tf.cast(factor, lr.dtype))
        distribute.assign(self.schedule_updates, self.schedule_updates + tf.cast(fired, tf.int64))
        return dict(upper_loss=aux["upper_loss"], lower_loss=aux["lower_loss"], penalty=penalty,
                    lower_grad_norm_sq=aux["lower_grad_norm_sq"], upper_grad_norm_sq=hu_sq,
                    lower_objective_grad_norm_sq=hl_sq, schedule_fired=tf.cast(fired, tf.float32))


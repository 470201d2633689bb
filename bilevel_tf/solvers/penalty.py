"""The Penalty method of Mehra & Hamm (ACML 2021), Algorithm 2 with the augmented-Lagrangian terms."""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

import tensorflow as tf

from ..core import autodiff, distribute
from ..core import tensor_ops as ops
from ..core.problem import BilevelProblem
from . import penalty_schedules
from .base import BilevelSolver
from .penalty_schedule import PenaltySchedule
from .penalty_schedules import DEFAULT_SCHEDULE


class _FromSchedule:
    """Default of the schedule constants: take the preset's value (None is a real value for lr_decay)."""

    def __repr__(self) -> str:
        return "<from schedule>"


_UNSET: Any = _FromSchedule()


class Penalty(BilevelSolver):
    r"""Penalty method: replace the lower problem by its stationarity condition grad_v g = 0.

    With penalty weight rho (the paper's gamma), multiplier nu and regularizer weight lam::

        h_u(u, v) = f + <grad_v g, nu> + (rho / 2) ||grad_v g||^2              (paper's f~_1)
        h_l(u, v) = h_u + lam * g                                                (paper's f~_2)

    One upper iteration (one call of :meth:`step`)::

        repeat T times:  v <- lower_optimizer step along  c grad_v h_l
                         = c [grad_v f + H_vv g (nu + rho grad_v g) + lam grad_v g]  (one Hessian-vector product)
        u <- upper_optimizer step along grad_u h_u = grad_u f + H_uv g (nu + rho grad_v g)
        then the schedule:  nu <- nu + beta rho grad_v g  (and, in the tolerance presets, rho, lam, eps)

    (c = 1 unless ``lower_scale``.) By Lemma 3 of the paper, at the minimizer of h over v, grad_u h_u is the
    exact hypergradient; where the multiplier's update stops (grad_v g = 0 and grad_v h_l = 0), nu =
    -(H_vv g)^-1 grad_v f and grad_u h_u is the exact hypergradient whatever rho and lam are.

    **Schedule** (``schedule=``): when and how rho, lam, eps, nu and the learning rates move, a
    :class:`~bilevel_tf.PenaltySchedule` (its :meth:`~bilevel_tf.PenaltySchedule.update` runs after each u step)
    or the name of a preset of ``bl.penalty_schedules``: ``"balanced"`` (the default: a damped multiplier step
    every iteration, rho, lam and the lower step's scale measured from the problem's curvature), ``"auglag"``
    (the previous default), ``"original"`` (what the code behind the paper's tables does) or ``"paper"``
    (Algorithm 2 as printed). Every constant of the schedule (``rho``, ``lam``, ``eps``, ``nu``, ``c_rho``,
    ``c_lam``, ``c_eps``, ``use_nu``, ``lr_decay``, ``tolerance``, ``nu_rho``, ``nu_update``, ``calibration``,
    ``dual_step``, ``lower_scale``, ``average_lower``; see :class:`~bilevel_tf.PenaltySchedule`) is also an
    argument that overrides it: ``bl.Penalty(problem, schedule="original", c_rho=1.2)`` runs
    ``bl.penalty_schedules.original(c_rho=1.2)``.

    The gradient norms of the tolerance test are measured at the point where the u step is taken (the
    original re-evaluates them after the u step, which costs one more second-order pass per iteration).
    Memory does not grow with T: the inner loop is a graph loop and nothing is kept across its steps.
    """

    method = "penalty"
    default_inner_steps = 20

    def __init__(
        self,
        problem: BilevelProblem,
        upper_optimizer: Any = None,
        lower_optimizer: Any = None,
        *,
        inner_steps: Optional[int] = None,
        schedule: Union[str, PenaltySchedule] = DEFAULT_SCHEDULE,
        rho: float = _UNSET,
        lam: float = _UNSET,
        eps: float = _UNSET,
        nu: float = _UNSET,
        c_rho: float = _UNSET,
        c_lam: float = _UNSET,
        c_eps: float = _UNSET,
        use_nu: bool = _UNSET,
        lr_decay: Optional[float] = _UNSET,
        tolerance: str = _UNSET,
        nu_rho: str = _UNSET,
        nu_update: str = _UNSET,
        calibration: str = _UNSET,
        dual_step: float = _UNSET,
        lower_scale: bool = _UNSET,
        average_lower: bool = _UNSET,
        jit_compile: bool = False,
        **unknown: Any,
    ):
        # the schedule constants given (each parameter above named as a PenaltySchedule field)
        given = {k: v for k, v in locals().items() if k in PenaltySchedule.constant_names() and v is not _UNSET}
        #: the schedule (a :class:`~bilevel_tf.PenaltySchedule`): the preset or object with the constants given
        self.penalty_schedule = penalty_schedules.get(schedule, **given)
        super().__init__(
            problem, upper_optimizer, lower_optimizer, inner_steps=inner_steps, jit_compile=jit_compile, **unknown
        )
        state = self.schedule_state = self.penalty_schedule.init(self)
        # the schedule's variables under the names users and the hooks below read
        self.rho, self.lam, self.eps, self.nu = state.rho, state.lam, state.eps, state.nu
        self.schedule_updates, self.lower_step_scale, self.calibrated = (
            state.schedule_updates,
            state.lower_scale,
            state.calibrated,
        )

    def _config(self) -> Dict[str, Any]:
        return self.penalty_schedule.get_config()

    def _prepare(self, upper_batch, lower_batch) -> None:
        self.schedule_state.calibrate_once(upper_batch, lower_batch)

    def _calibration_pending(self) -> bool:
        return self.schedule_state.calibrated is not None and self.schedule_state.pending

    def _calibrate_on(self, upper_batches, lower_batches) -> None:
        self.schedule_state.calibrate_on(upper_batches, lower_batches)

    def _after_reset(self) -> None:
        """After :meth:`reset_state`: an ``"auto"`` rho or lam is calibrated again at the next step (over a value
        given to ``reset_state``)."""
        super()._after_reset()
        self.schedule_state.recalibrate()

    def _penalty_weights(self, gv):
        """w = nu + rho * grad_v g, so that d<grad_v g, w>/dx = d/dx [<grad_v g, nu> + rho/2 ||grad_v g||^2]."""
        w = ops.scale(gv, self.rho)
        return ops.add(self.nu, w) if self.penalty_schedule.use_nu else w

    def _penalty_grads(self, upper_batch, lower_batch, wrt):
        """(g, grad_v g, f, grad_wrt h_u) in one forward and one double-backward sweep."""
        return autodiff.second_order(
            self.problem,
            lower_batch,
            self._penalty_weights,
            wrt,
            extra=lambda: self.problem.f(upper_batch),
            mode=self.hvp,
        )

    def _direction(self, upper_batch, lower_batch):
        lower = self.problem.lower_vars
        average = self.penalty_schedule.average_lower and self.inner_steps > 1
        total = [tf.zeros(v.shape, v.dtype) for v in lower] if average else []
        for _ in self.loop(self.inner_steps):
            _, gv, _, grad_hu = self._penalty_grads(upper_batch, lower_batch, lower)
            # grad_v h_l = grad_v h_u + lam * grad_v g: the lam term reuses grad_v g, no extra pass.
            grad_hl = ops.add(grad_hu, ops.scale(gv, self.lam))
            if self.lower_step_scale is not None:
                grad_hl = ops.scale(grad_hl, self.lower_step_scale)
            self.apply_lower(grad_hl)
            if average:
                total = [t + tf.convert_to_tensor(v) for t, v in zip(total, lower)]
        if average:  # the u step and the multiplier see the mean inner iterate; v itself goes on from v_T
            last = [tf.convert_to_tensor(v) for v in lower]
            for var, t in zip(lower, total):
                distribute.assign(var, t / self.inner_steps)
        upper = self.problem.upper_vars
        g, gv, f, grads = self._penalty_grads(upper_batch, lower_batch, list(upper) + list(lower))
        if average:
            for var, x in zip(lower, last):
                distribute.assign(var, x)
        grad_u, grad_hl = grads[: len(upper)], ops.add(grads[len(upper) :], ops.scale(gv, self.lam))
        gv_sq = ops.sq_norm(gv)
        aux = dict(
            upper_loss=f,
            lower_loss=g,
            gv=gv,
            lower_grad_norm_sq=gv_sq,
            hu_sq=ops.sq_norm(grad_u),
            hl_sq=ops.sq_norm(grad_hl),
        )
        return grad_u, None, aux

    def _finish(self, aux):
        penalty = 0.5 * self.rho * aux["lower_grad_norm_sq"]
        fired = self.penalty_schedule.update(self.schedule_state, aux)
        return dict(
            upper_loss=aux["upper_loss"],
            lower_loss=aux["lower_loss"],
            penalty=penalty,
            lower_grad_norm_sq=aux["lower_grad_norm_sq"],
            upper_grad_norm_sq=aux["hu_sq"],
            lower_objective_grad_norm_sq=aux["hl_sq"],
            schedule_fired=tf.cast(fired, tf.float32),
        )

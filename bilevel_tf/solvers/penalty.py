"""The Penalty method of Mehra & Hamm (ACML 2021), Algorithm 2 with the augmented-Lagrangian terms."""
from __future__ import annotations

from typing import Any, Dict, Optional

import tensorflow as tf

from ..core import autodiff, distribute
from ..core import tensor_ops as ops
from ..core.problem import BilevelProblem
from .base import BilevelSolver
from .checks import check_choice, check_decayable
from .variables import state_variable

from ..core.options import DEFAULT_SCHEDULE, PENALTY_SCHEDULES
from . import penalty_calibration as calibrate
from . import penalty_options
from .penalty_options import AUTO


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

    **Schedules** (``schedule=``; each constant below is also an argument that overrides the preset):

    ``"balanced"`` (default): the method of multipliers with a damped multiplier step (``dual_step`` beta =
    0.1) every iteration, and rho, lam and the lower step's scale set once, at the first iteration, from
    curvature probes (``calibration="spectral"``, bilevel_tf.solvers.penalty_calibration): g's curvature
    range [h_lo, h_hi] as seen from grad_v f (20 Lanczos steps of Hessian-vector products) and f's top
    curvature s in v (10 steps)::

        rho = 0.3 s / (h_lo h_hi),   lam = s / h_hi,   c = h_hi / (s + lam h_hi + rho h_hi^2)

    Why: along an eigenvector of H_vv g with curvature h, the multiplier error shrinks by a factor
    1 - beta rho h^2 / (s + lam h + rho h^2) per iteration (v at its minimizer), and h_l's curvature there is
    s + lam h + rho h^2. This rho makes the multiplier converge at about 0.3 beta h / h_hi per iteration
    while h_l stays as well conditioned as g; c gives h_l g's top curvature, so a learning rate chosen for g
    (plain SGD included) suits the lower steps; the damped step beta keeps the multiplier slower than v
    (whose optimizer may carry momentum over ~10 steps) and u; and the u step and the multiplier read v at
    the mean of the T inner iterates (``average_lower``: an optimizer that circles v's minimizer, such as
    RMSprop or Adam at a large learning rate, would otherwise feed its circling into both; v itself goes on
    from its last iterate, so the lower optimizer's trajectory is untouched). rho, lam and beta are measured on the
    generated problem families of ``benchmarks/robustness.py`` (all optimizer pairs a user types, T = 1-20);
    learning rates are never touched.

    ``"auglag"``: the previous default: beta = 1, no lower scale or averaging, rho and lam from three products along
    w = grad_v f (``calibration="curvature"``): rho = ||H_f w|| / ||H_g H_g w||, lam = 0.1 ||H_f w|| / ||H_g w||.

    ``"original"``: what hammlab/bilevel-penalty (``bilevel_penalty_aug_lag.py``, the code behind the
    paper's tables) does: when ``(||grad_u h_u||^2)^2 + (||grad_v h_l||^2)^2 < eps^2`` (the original
    squares the already-squared norms) rho <- 1.1 rho, lam <- 0.9 lam, eps <- 0.9 eps, nu <- nu + rho
    grad_v g with the *new* rho, and both learning rates x0.9. rho, lam, eps start at 1, 10, 1.

    ``"paper"``: Algorithm 2 as printed: the test is ``||grad_u h_u||^2 + ||grad_v h_l||^2 < eps^2``,
    nu moves with the old rho, no learning-rate decay.

    Knobs: ``rho``/``lam`` (numbers, or ``"auto"`` for the calibration), ``calibration`` ("spectral" |
    "curvature"), ``dual_step`` (beta), ``lower_scale`` (scale the lower step by c; needs the spectral
    probe), ``average_lower`` (read v at the mean inner iterate), ``tolerance`` ("original" | "paper", the
    test's form), ``nu_rho`` ("new" | "old"),
    ``nu_update`` ("every_step" | "on_tolerance"), ``lr_decay`` (factor on both learning rates when the
    test fires, None for none), ``c_rho``/``c_lam``/``c_eps`` (factors when the test fires), ``nu`` (the
    initial multiplier, broadcast to every entry), ``use_nu`` (False drops the multiplier: a pure penalty).
    The tolerance test runs in every schedule; with eps = 0 it never fires.

    The gradient norms of the tolerance test are measured at the point where the u step is taken (the
    original re-evaluates them after the u step, which costs one more second-order pass per iteration).
    Memory does not grow with T: the inner loop is a graph loop and nothing is kept across its steps.
    """

    method = "penalty"
    default_inner_steps = 20

    def __init__(self, problem: BilevelProblem, upper_optimizer: Any = None, lower_optimizer: Any = None, *,
                 inner_steps: Optional[int] = None, schedule: str = DEFAULT_SCHEDULE, rho: float = _UNSET,
                 lam: float = _UNSET, eps: float = _UNSET, nu: float = _UNSET, c_rho: float = _UNSET,
                 c_lam: float = _UNSET, c_eps: float = _UNSET, use_nu: bool = _UNSET,
                 lr_decay: Optional[float] = _UNSET, tolerance: str = _UNSET, nu_rho: str = _UNSET,
                 nu_update: str = _UNSET, calibration: str = _UNSET, dual_step: float = _UNSET,
                 lower_scale: bool = _UNSET, average_lower: bool = _UNSET, jit_compile: bool = False,
                 **unknown: Any):
        self.schedule_name = check_choice("schedule", schedule, tuple(PENALTY_SCHEDULES))
        given = dict(rho=rho, lam=lam, eps=eps, nu=nu, c_rho=c_rho, c_lam=c_lam, c_eps=c_eps, use_nu=use_nu,
                     lr_decay=lr_decay, tolerance=tolerance, nu_rho=nu_rho, nu_update=nu_update,
                     calibration=calibration, dual_step=dual_step, lower_scale=lower_scale,
                     average_lower=average_lower)
        options = penalty_options.resolve(self.schedule_name, given, unset=_UNSET)
        self.auto = penalty_options.auto_names(options)
        self.tolerance, self.nu_rho, self.nu_update = options["tolerance"], options["nu_rho"], options["nu_update"]
        self.use_nu, self.calibration = bool(options["use_nu"]), options["calibration"]
        self.dual_step, self.scales_lower = options["dual_step"], options["lower_scale"]
        self.average_lower = options["average_lower"]
        self.lr_decay = None if options["lr_decay"] is None else float(options["lr_decay"])
        self.c_rho, self.c_lam, self.c_eps = options["c_rho"], options["c_lam"], options["c_eps"]
        self.options = options
        super().__init__(problem, upper_optimizer, lower_optimizer, inner_steps=inner_steps,
                         jit_compile=jit_compile, **unknown)
        if self.lr_decay is not None:
            check_decayable(self.upper_optimizer, "upper_optimizer")
            check_decayable(self.lower_optimizer, "lower_optimizer")
        initial = {k: 1.0 if options[k] == AUTO else options[k] for k in ("rho", "lam")}  # until calibrated
        self.rho = self.add_state("rho", state_variable(initial["rho"], "rho", self.dtype), schedule=True)
        self.lam = self.add_state("lam", state_variable(initial["lam"], "lam", self.dtype), schedule=True)
        self.eps = self.add_state("eps", state_variable(options["eps"], "eps", self.dtype), schedule=True)
        self.nu = self.add_state("nu", [state_variable(tf.fill(v.shape, tf.cast(options["nu"], v.dtype)), "nu")
                                        for v in problem.lower_vars] if self.use_nu else [])
        self.schedule_updates = self.add_state("schedule_updates", state_variable(0, "schedule_updates", tf.int64))
        # Only calibrated schedules carry these, so checkpoints of explicit schedules keep their old keys.
        self.lower_step_scale = (self.add_state("lower_scale", state_variable(1.0, "lower_scale", self.dtype))
                                 if self.scales_lower else None)
        self.needs_probe = bool(self.auto) or self.scales_lower
        self.calibrated = (self.add_state("calibrated", state_variable(False, "calibrated", tf.bool))
                           if self.needs_probe else None)
        self._known_calibrated = not self.needs_probe  # Python-side cache: no variable read once calibrated
        self._calibrate_fn = tf.function(self._calibrate)
        self._distributed_calibrate_fn = tf.function(
            lambda ub, lb: self.strategy.run(self._calibrate, args=(ub, lb)))

    def _config(self) -> Dict[str, Any]:
        return dict(schedule=self.schedule_name, **self.options)

    # ------------------------------------------------------------------ calibration of rho = lam = "auto"
    def _prepare(self, upper_batch, lower_batch) -> None:
        if self._known_calibrated:
            return
        if not bool(self.calibrated.numpy()):  # a restored checkpoint may already be calibrated
            if self.strategy is not None:
                self._distributed_calibrate_fn(upper_batch, lower_batch)
            else:
                self._calibrate_fn(upper_batch, lower_batch)
        self._known_calibrated = True

    def reset_state(self, **schedule: float) -> None:
        """See :meth:`BilevelSolver.reset_state`; an ``"auto"`` rho or lam is calibrated again at the next
        step (over a value given here)."""
        super().reset_state(**schedule)
        self._known_calibrated = not self.needs_probe

    def _calibrate(self, upper_batch, lower_batch):
        """Set the "auto" entries of rho and lam (and the lower step's scale) from the calibration's probe."""
        probe = calibrate.PROBES[self.calibration](self.problem, upper_batch, lower_batch, self.dtype)
        for name in self.auto:
            distribute.assign(getattr(self, name), probe[name])
        if self.scales_lower:
            distribute.assign(self.lower_step_scale, calibrate.lower_scale(probe, tf.identity(self.rho),
                                                                           tf.identity(self.lam)))
        distribute.assign(self.calibrated, tf.constant(True))

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
        average = self.average_lower and self.inner_steps > 1
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
        if self.dual_step != 1.0:
            rho_nu = rho_nu * self.dual_step
        if self.nu_update == "on_tolerance":
            rho_nu = tf.where(fired, rho_nu, tf.zeros_like(rho_nu))
        for nu, g in zip(self.nu, aux["gv"]):
            distribute.assign(nu, tf.convert_to_tensor(nu) + ops.dense(g) * rho_nu)
        if self.lr_decay is not None:
            factor = tf.where(fired, self.lr_decay, 1.0)
            for optimizer in (self.upper_optimizer, self.lower_optimizer):
                lr = optimizer.learning_rate
                distribute.assign(lr, lr * tf.cast(factor, lr.dtype))
        distribute.assign(self.schedule_updates, self.schedule_updates + tf.cast(fired, tf.int64))
        return dict(upper_loss=aux["upper_loss"], lower_loss=aux["lower_loss"], penalty=penalty,
                    lower_grad_norm_sq=aux["lower_grad_norm_sq"], upper_grad_norm_sq=hu_sq,
                    lower_objective_grad_norm_sq=hl_sq, schedule_fired=tf.cast(fired, tf.float32))

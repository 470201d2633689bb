"""The Penalty method of Mehra & Hamm (ACML 2021), Algorithm 2 with the augmented-Lagrangian terms."""
from __future__ import annotations

from typing import Any, Dict, Optional

import tensorflow as tf

from .. import autodiff, distribute
from .. import tensor_ops as ops
from ..problem import BilevelProblem
from .base import BilevelSolver, check_choice, check_nonnegative, state_variable

from ..options import DEFAULT_SCHEDULE, PENALTY_SCHEDULES as SCHEDULES  # noqa: F401  (re-exported)
AUTO = "auto"
#: lam_0 = LAM_FRACTION x f's curvature / g's curvature along grad_v f (see ``Penalty``)
LAM_FRACTION = 0.1
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

        repeat T times:  v <- lower_optimizer step along grad_v h_l
                         = grad_v f + H_vv g (nu + rho grad_v g) + lam grad_v g   (one Hessian-vector product)
        u <- upper_optimizer step along grad_u h_u = grad_u f + H_uv g (nu + rho grad_v g)
        then the schedule (below).

    By Lemma 3 of the paper, at the minimizer of h over v, grad_u h_u is the exact hypergradient.

    **Schedules** (``schedule=``; each constant below is also an argument that overrides the preset):

    ``"auglag"`` (default): the method of multipliers on the constraint grad_v g = 0, with one multiplier
    step per upper iteration and a penalty scaled to the problem once, at the first iteration::

        first iteration:  w = grad_v f,   rho = ||H_f w|| / ||H_g H_g w||,   lam = 0.1 ||H_f w|| / ||H_g w||
        every iteration:  nu <- nu + rho grad_v g;   rho, lam fixed;   learning rates untouched

    (H_f, H_g: Hessians in v of f and g, applied by Hessian-vector products; three products, once.)

    Why it converges: nu + rho grad_v g estimates the Lagrange multiplier of grad_v g = 0. The update stops
    only where grad_v g = 0, and there the lam term vanishes and grad_v h_l = 0 reads
    grad_v f + H_g nu = 0, i.e. nu = -(H_g)^-1 grad_v f, so grad_u h_u is the exact hypergradient whatever
    rho and lam are: no schedule has to fire, and nothing (lr decay, a tolerance that noise keeps out of
    reach) freezes u before it gets there. With v at the minimizer of h_l, the multiplier error along an
    eigenvector of H_g with eigenvalue h (f's curvature s there) shrinks by (lam h + s) / (rho h^2 + lam h + s)
    per iteration. rho trades this rate against the conditioning of the v problem (whose curvature is
    rho H_g^2 + lam H_g + H_f): the calibration makes the penalty's curvature equal f's along grad_v f,
    and lam a tenth of it, which keeps rho's units ([f][v]^2/[g]^2) right whatever the scale of the losses
    and of v. Pass ``rho=``/``lam=`` numbers to fix them yourself. ``benchmarks/robustness.py`` measures it
    against the presets below and the other solvers.

    ``"original"``: what hammlab/bilevel-penalty (``bilevel_penalty_aug_lag.py``, the code behind the
    paper's tables) does: when ``(||grad_u h_u||^2)^2 + (||grad_v h_l||^2)^2 < eps^2`` (the original
    squares the already-squared norms) rho <- 1.1 rho, lam <- 0.9 lam, eps <- 0.9 eps, nu <- nu + rho
    grad_v g with the *new* rho, and both learning rates x0.9. rho, lam, eps start at 1, 10, 1.

    ``"paper"``: Algorithm 2 as printed: the test is ``||grad_u h_u||^2 + ||grad_v h_l||^2 < eps^2``,
    nu moves with the old rho, no learning-rate decay.

    Knobs: ``tolerance`` ("original" | "paper", the test's form), ``nu_rho`` ("new" | "old"),
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
                 nu_update: str = _UNSET, jit_compile: bool = False, **unknown: Any):
        self.schedule_name = check_choice("schedule", schedule, tuple(SCHEDULES))
        given = dict(rho=rho, lam=lam, eps=eps, nu=nu, c_rho=c_rho, c_lam=c_lam, c_eps=c_eps, use_nu=use_nu,
                     lr_decay=lr_decay, tolerance=tolerance, nu_rho=nu_rho, nu_update=nu_update)
        options = {k: (SCHEDULES[self.schedule_name][k] if v is _UNSET else v) for k, v in given.items()}
        self.auto = tuple(name for name in ("rho", "lam") if isinstance(options[name], str) and options[name] == AUTO)
        for name in ("rho", "lam"):
            if isinstance(options[name], str) and name not in self.auto:
                raise ValueError(f"{name} must be a non-negative number or {AUTO!r}, got {options[name]!r}")
        for name in ("rho", "lam", "eps", "c_rho", "c_lam", "c_eps"):
            if name not in self.auto:
                options[name] = check_nonnegative(name, options[name])
        options["nu"] = float(options["nu"])
        decay = options["lr_decay"]
        if decay is not None and not (isinstance(decay, (int, float)) and 0 < decay <= 1):
            raise ValueError(f"lr_decay must be in (0, 1] or None, got {decay!r}")
        self.tolerance = check_choice("tolerance", options["tolerance"], ("original", "paper"))
        self.nu_rho = check_choice("nu_rho", options["nu_rho"], ("new", "old"))
        self.nu_update = check_choice("nu_update", options["nu_update"], ("every_step", "on_tolerance"))
        self.use_nu = bool(options["use_nu"])
        self.lr_decay = None if decay is None else float(decay)
        self.c_rho, self.c_lam, self.c_eps = options["c_rho"], options["c_lam"], options["c_eps"]
        self.options = options
        super().__init__(problem, upper_optimizer, lower_optimizer, inner_steps=inner_steps,
                         jit_compile=jit_compile, **unknown)
        if self.lr_decay is not None:
            self.check_decayable(self.upper_optimizer, "upper_optimizer")
            self.check_decayable(self.lower_optimizer, "lower_optimizer")
        initial = {k: 1.0 if options[k] == AUTO else options[k] for k in ("rho", "lam")}  # until calibrated
        self.rho = self.add_state("rho", state_variable(initial["rho"], "rho", self.dtype), schedule=True)
        self.lam = self.add_state("lam", state_variable(initial["lam"], "lam", self.dtype), schedule=True)
        self.eps = self.add_state("eps", state_variable(options["eps"], "eps", self.dtype), schedule=True)
        self.nu = self.add_state("nu", [state_variable(tf.fill(v.shape, tf.cast(options["nu"], v.dtype)), "nu")
                                        for v in problem.lower_vars] if self.use_nu else [])
        self.schedule_updates = self.add_state("schedule_updates", state_variable(0, "schedule_updates", tf.int64))
        # Only auto schedules carry this flag, so checkpoints of explicit schedules keep their old keys.
        self.calibrated = (self.add_state("calibrated", state_variable(False, "calibrated", tf.bool))
                           if self.auto else None)
        self._known_calibrated = not self.auto  # Python-side cache: no variable read once calibrated
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
        self._known_calibrated = not self.auto

    def _calibrate(self, upper_batch, lower_batch):
        """rho_0 = ||H_f w|| / ||H_g H_g w||, lam_0 = LAM_FRACTION ||H_f w|| / ||H_g w||, w = grad_v f."""
        problem, lower = self.problem, self.problem.lower_vars
        _, w = autodiff.upper_value_and_grad(problem, upper_batch, lower)
        w = [ops.dense(x) for x in w]
        hf = autodiff.loss_hvp(lambda: problem.f(upper_batch), lower, w)
        hg = autodiff.loss_hvp(lambda: problem.g(lower_batch), lower, w)
        hgg = autodiff.loss_hvp(lambda: problem.g(lower_batch), lower, hg)
        curv_f, curv_g, curv_gg = (tf.cast(tf.sqrt(ops.sq_norm(x)), self.dtype) for x in (hf, hg, hgg))
        values = {"rho": (self.rho, curv_f / curv_gg), "lam": (self.lam, LAM_FRACTION * curv_f / curv_g)}
        for name in self.auto:
            var, value = values[name]
            # w = 0 (v minimizes f), f flat along w, or g flat: nothing to balance, keep 1.
            ok = tf.math.is_finite(value) & (value > 0)
            distribute.assign(var, tf.where(ok, value, tf.ones_like(value)))
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

"""The Penalty method's schedule as a small object in the optax manner: constants checked once, :meth:`init`
creating the schedule's state as solver state, :meth:`update` one in-graph step after each u step, and
:meth:`calibrate` measuring rho / lam / the lower step's scale at the first iteration. The named presets are the
factories of :mod:`bilevel_tf.solvers.penalty_schedules`."""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from ..core import distribute
from ..core import tensor_ops as ops
from . import penalty_calibration
from .checks import check_choice, check_decayable, check_nonnegative
from .variables import state_variable

#: rho / lam given as this string are measured by the schedule's calibration at the first iteration
AUTO = "auto"


@dataclass(frozen=True)
class PenaltySchedule:
    r"""When and how :class:`~bilevel_tf.Penalty` moves its penalty weight rho, regularizer weight lam,
    tolerance eps, multiplier nu and the learning rates. The defaults are the library default, ``balanced``;
    ``bl.penalty_schedules`` builds the named presets (each taking these fields as overrides).

    After each u step (:meth:`update`), with the squared gradient norms of h_u (in u) and h_l (in v) at the point
    of the u step::

        fired = ||grad_u h_u||^2 + ||grad_v h_l||^2 < eps^2     (tolerance="paper"; "original": each norm^2 squared)
        if fired:  rho <- c_rho rho,  lam <- c_lam lam,  eps <- c_eps eps,  learning rates <- lr_decay x them
        nu <- nu + dual_step * rho' * grad_v g      (rho' = the new rho if nu_rho="new", else the old one;
                                                      every step, or only when fired if nu_update="on_tolerance")

    Fields: ``rho`` / ``lam`` (starting values: non-negative numbers, or ``"auto"`` for the calibration),
    ``eps`` (the starting tolerance; 0 never fires), ``nu`` (the starting multiplier, broadcast to every entry),
    ``c_rho`` / ``c_lam`` / ``c_eps`` (factors when the test fires), ``use_nu`` (False drops the multiplier: a
    pure penalty), ``lr_decay`` (factor on both learning rates when the test fires, in (0, 1], or None),
    ``tolerance`` ("original" | "paper", the test's form), ``nu_rho`` ("new" | "old"), ``nu_update``
    ("every_step" | "on_tolerance"), ``calibration`` ("spectral" | "curvature": the probe of
    :mod:`bilevel_tf.solvers.penalty_calibration` measuring the "auto" weights), ``dual_step`` (beta, in (0, 1]),
    ``lower_scale`` (scale the lower step so h_l has g's top curvature; needs the spectral probe),
    ``average_lower`` (the u step and the multiplier read v at the mean inner iterate), ``name`` (the preset these
    constants come from, recorded by ``get_config`` as ``schedule``).

    A schedule of your own is an instance with other constants, or a subclass overriding :meth:`update` (or
    :meth:`init` / :meth:`calibrate`); pass it as ``bl.Penalty(problem, schedule=...)``. ``get_config`` records
    the constants, not a subclass's code.
    """

    rho: Union[float, str] = AUTO
    lam: Union[float, str] = AUTO
    eps: float = 0.0
    nu: float = 0.0
    c_rho: float = 1.0
    c_lam: float = 1.0
    c_eps: float = 1.0
    use_nu: bool = True
    lr_decay: Optional[float] = None
    tolerance: str = "paper"
    nu_rho: str = "old"
    nu_update: str = "every_step"
    calibration: str = "spectral"
    dual_step: float = 0.1
    lower_scale: bool = True
    average_lower: bool = True
    name: str = "balanced"  # the preset whose constants are the defaults above

    def __post_init__(self) -> None:
        for key, value in _checked(self).items():
            object.__setattr__(self, key, value)

    # ------------------------------------------------------------------ constants
    @classmethod
    def constant_names(cls) -> Tuple[str, ...]:
        """The schedule's constants (every field but ``name``), in order: ``bl.Penalty``'s keyword options."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "name")

    def replace(self, **overrides: Any) -> "PenaltySchedule":
        """A copy (of the same class) with ``overrides`` applied and checked; ValueError for an unknown name."""
        unknown = sorted(set(overrides) - set(self.constant_names()))
        if unknown:
            raise ValueError(
                f"schedule {self.name!r} got unknown option(s) {unknown}; its options are {list(self.constant_names())}"
            )
        return dataclasses.replace(self, **overrides) if overrides else self

    def get_config(self) -> Dict[str, Any]:
        """``schedule`` (the preset's name) and every constant: the Penalty's ``get_config`` entries."""
        return dict(schedule=self.name, **{k: getattr(self, k) for k in self.constant_names()})

    @property
    def auto(self) -> Tuple[str, ...]:
        """The penalty weights left to the calibration."""
        return tuple(k for k in ("rho", "lam") if isinstance(getattr(self, k), str))

    @property
    def needs_calibration(self) -> bool:
        """Whether :meth:`calibrate` runs at the first iteration (an "auto" weight, or the lower step's scale)."""
        return bool(self.auto) or self.lower_scale

    # ------------------------------------------------------------------ state and its updates
    def init(self, solver: Any) -> "PenaltyState":
        """The schedule's variables, registered as ``solver``'s state (``solver.add_state``) under their checkpoint
        keys: rho, lam, eps (reported in the logs, settable by ``reset_state``), nu, schedule_updates, and only
        where used lower_scale and calibrated (so checkpoints of explicit schedules keep their keys)."""
        if self.lr_decay is not None:
            check_decayable(solver.upper_optimizer, "upper_optimizer")
            check_decayable(solver.lower_optimizer, "lower_optimizer")
        add, dtype = solver.add_state, solver.dtype
        start = {k: 1.0 if k in self.auto else getattr(self, k) for k in ("rho", "lam")}  # until calibrated
        rho = add("rho", state_variable(start["rho"], "rho", dtype), schedule=True)
        lam = add("lam", state_variable(start["lam"], "lam", dtype), schedule=True)
        eps = add("eps", state_variable(self.eps, "eps", dtype), schedule=True)
        nu = add(
            "nu",
            [state_variable(tf.fill(v.shape, tf.cast(self.nu, v.dtype)), "nu") for v in solver.problem.lower_vars]
            if self.use_nu
            else [],
        )
        updates = add("schedule_updates", state_variable(0, "schedule_updates", tf.int64))
        scale = add("lower_scale", state_variable(1.0, "lower_scale", dtype)) if self.lower_scale else None
        calibrated = add("calibrated", state_variable(False, "calibrated", tf.bool)) if self.needs_calibration else None
        state = PenaltyState(
            rho, lam, eps, nu, updates, scale, calibrated, optimizers=(solver.upper_optimizer, solver.lower_optimizer)
        )
        if self.needs_calibration:
            state.compile_calibration(self, solver)
        return state

    def calibrate(
        self, state: "PenaltyState", problem: Any, upper_batches: Sequence[Any], lower_batches: Sequence[Any]
    ) -> None:
        """In the graph, once: set the "auto" weights (and the lower step's scale) from the calibration's probe of
        the mean losses over ``upper_batches`` / ``lower_batches`` (the first iteration's batches, or the batches
        given to ``Penalty.calibrate``)."""
        probe = penalty_calibration.PROBES[self.calibration](problem, upper_batches, lower_batches, state.rho.dtype)
        for name in self.auto:
            distribute.assign(getattr(state, name), probe[name])
        if self.lower_scale:
            distribute.assign(
                state.lower_scale,
                penalty_calibration.lower_scale(probe, tf.identity(state.rho), tf.identity(state.lam)),
            )
        distribute.assign(state.calibrated, tf.constant(True))

    def update(self, state: "PenaltyState", aux: Dict[str, Any]) -> tf.Tensor:
        """One schedule step after the u step (the equations above), in the graph; returns whether the tolerance
        test fired. ``aux`` holds ``hu_sq`` = ||grad_u h_u||^2, ``hl_sq`` = ||grad_v h_l||^2 and ``gv`` = grad_v g,
        all at the point of the u step. Branch-free (tf.where): no synchronization inside a conditional under a
        strategy, and one straight-line graph for XLA."""
        hu_sq, hl_sq = aux["hu_sq"], aux["hl_sq"]
        measure = hu_sq**2 + hl_sq**2 if self.tolerance == "original" else hu_sq + hl_sq
        fired = measure < tf.square(state.eps)
        rho_old = tf.identity(state.rho)
        rho_new = tf.where(fired, rho_old * self.c_rho, rho_old)
        distribute.assign(state.rho, rho_new)
        distribute.assign(state.lam, tf.where(fired, state.lam * self.c_lam, state.lam))
        distribute.assign(state.eps, tf.where(fired, state.eps * self.c_eps, state.eps))
        rho_nu = rho_new if self.nu_rho == "new" else rho_old
        if self.dual_step != 1.0:
            rho_nu = rho_nu * self.dual_step
        if self.nu_update == "on_tolerance":
            rho_nu = tf.where(fired, rho_nu, tf.zeros_like(rho_nu))
        for nu, g in zip(state.nu, aux["gv"]):
            distribute.assign(nu, tf.convert_to_tensor(nu) + ops.dense(g) * rho_nu)
        if self.lr_decay is not None:
            factor = tf.where(fired, self.lr_decay, 1.0)
            for optimizer in state.optimizers:
                lr = optimizer.learning_rate
                distribute.assign(lr, lr * tf.cast(factor, lr.dtype))
        distribute.assign(state.schedule_updates, state.schedule_updates + tf.cast(fired, tf.int64))
        return fired


@dataclass(eq=False)
class PenaltyState:
    """A Penalty solver's schedule state: its variables (registered as solver state by
    :meth:`PenaltySchedule.init`), the optimizers whose learning rates it decays, and the compiled calibration."""

    rho: tf.Variable
    lam: tf.Variable
    eps: tf.Variable
    nu: List[tf.Variable]
    schedule_updates: tf.Variable
    lower_scale: Optional[tf.Variable]
    calibrated: Optional[tf.Variable]
    optimizers: Sequence[Any] = ()
    _calibrate_fn: Any = field(default=None, init=False, repr=False)
    _pending: bool = field(default=False, init=False)  # Python-side cache: no variable read once calibrated

    def compile_calibration(self, schedule: PenaltySchedule, solver: Any) -> None:
        """Prepare :meth:`PenaltySchedule.calibrate` as its own compiled call (under the solver's strategy), taking
        lists of batches."""

        def calibrate(upper_batches, lower_batches):
            schedule.calibrate(self, solver.problem, upper_batches, lower_batches)

        if solver.strategy is None:
            self._calibrate_fn = tf.function(calibrate)
        else:
            self._calibrate_fn = tf.function(lambda ub, lb: solver.strategy.run(calibrate, args=(ub, lb)))
        self._pending = True

    def calibrate_once(self, upper_batch: Any, lower_batch: Any) -> None:
        """Before a compiled call: calibrate unless done (a restored checkpoint may already be calibrated)."""
        if not self._pending:
            return
        if not bool(self.calibrated.numpy()):
            self._calibrate_fn([upper_batch], [lower_batch])
        self._pending = False

    @property
    def pending(self) -> bool:
        """Whether the calibration has yet to run (False once done, also when restored from a checkpoint)."""
        if self._pending and bool(self.calibrated.numpy()):
            self._pending = False
        return self._pending

    def calibrate_on(self, upper_batches: Sequence[Any], lower_batches: Sequence[Any]) -> None:
        """Calibrate now on these batches (lists, one entry per batch) instead of at the first iteration."""
        self._calibrate_fn(list(upper_batches), list(lower_batches))
        self._pending = False

    def recalibrate(self) -> None:
        """Calibrate again at the next call (after ``reset_state``)."""
        self._pending = self._calibrate_fn is not None


def _real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)) and not (isinstance(value, numbers.Integral) and value in (0, 1)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _checked(s: PenaltySchedule) -> Dict[str, Any]:
    """Every field of ``s`` checked (a ValueError naming the field) and normalized."""
    out: Dict[str, Any] = {}
    for name in ("rho", "lam"):
        value = getattr(s, name)
        if not (isinstance(value, str) and value == AUTO) and not (_real(value) and value >= 0):
            raise ValueError(f"{name} must be a non-negative number or {AUTO!r}, got {value!r}")
        out[name] = value if isinstance(value, str) else float(value)
    for name in ("eps", "c_rho", "c_lam", "c_eps"):
        out[name] = check_nonnegative(name, getattr(s, name))
    if not _real(s.nu) or not np.isfinite(s.nu):
        raise ValueError(f"nu must be a finite number, got {s.nu!r}")
    out["nu"] = float(s.nu)
    if s.lr_decay is not None and not (_real(s.lr_decay) and 0 < s.lr_decay <= 1):
        raise ValueError(f"lr_decay must be in (0, 1] or None, got {s.lr_decay!r}")
    out["lr_decay"] = None if s.lr_decay is None else float(s.lr_decay)
    check_choice("tolerance", s.tolerance, ("original", "paper"))
    check_choice("nu_rho", s.nu_rho, ("new", "old"))
    check_choice("nu_update", s.nu_update, ("every_step", "on_tolerance"))
    check_choice("calibration", s.calibration, tuple(penalty_calibration.PROBES))
    if not (_real(s.dual_step) and 0 < s.dual_step <= 1):
        raise ValueError(f"dual_step must be in (0, 1], got {s.dual_step!r}")
    out["dual_step"] = float(s.dual_step)
    for name in ("use_nu", "lower_scale", "average_lower"):
        out[name] = _flag(name, getattr(s, name))
    if out["lower_scale"] and s.calibration != "spectral":
        raise ValueError("lower_scale needs calibration='spectral' (it scales h_l by g's measured curvature)")
    if not isinstance(s.name, str) or not s.name:
        raise ValueError(f"name must be a non-empty string, got {s.name!r}")
    return out

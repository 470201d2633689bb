"""Default steps scaled to the problem: an optimizer slot left unset (None) whose solver declares a
:class:`CurvatureStep` becomes plain SGD at a step measured at the first upper iteration from g's curvature.

Why: a fixed default step suits one scale of problem only (SGD at 0.1 diverges once g's top curvature passes
20), while c / L with L measured on the user's own problem converges on every scale. The measurement is a
Lanczos probe (:func:`~.curvature.lanczos_bounds`, ``PROBE_STEPS`` Hessian-vector products of g on the first
lower batch), run once in its own compiled call before the first step; the measured steps live in the
optimizers' learning-rate variables (and solver state for a Neumann step), so a checkpoint keeps them and a
resumed run does not measure again, and :meth:`BilevelSolver.reset_state` measures anew. A learning rate or
optimizer the user gives is never changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import keras
import tensorflow as tf

from ..core import autodiff, distribute
from .curvature import lanczos_bounds
from .optimizers import check_learning_rate, make_optimizer, optimizer_config

#: Lanczos steps of the probe (exact for up to this many distinct curvatures)
PROBE_STEPS = 20
#: the learning rate of a measured slot until the probe sets it: a step of 0 moves nothing
UNMEASURED = 0.0
_SEED = (2024, 25)


@dataclass(frozen=True)
class CurvatureStep:
    """The default step ``scale / L**power`` of a slot (``scale / (L + mu)`` with ``plus_lowest``).

    L is g's top curvature over ``over``: ``"lower"``, the Hessian of g in v (the lower problem, a linear system
    in H_vv g); ``"joint"``, the Hessian of g in (u, v) together (joint steps on both levels; its largest
    absolute eigenvalue). mu is the lowest curvature the probe sees (floored at 0). ``fallback`` is the step
    when the probe finds no positive curvature."""

    scale: float = 1.0
    power: int = 1
    over: str = "lower"
    plus_lowest: bool = False
    fallback: float = 0.1

    def describe(self) -> str:
        top = "L_g" if self.over == "lower" else "L_joint"
        scale = top if self.power == 1 else f"{top}^{self.power}"
        scale = f"({top} + mu_g)" if self.plus_lowest else scale
        where = "g's top curvature in v" if self.over == "lower" else "g's top |curvature| in (u, v)"
        lowest = " (mu_g: its lowest)" if self.plus_lowest else ""
        return f"{self.scale:g} / {scale}, {top} = {where}{lowest} at the first step"

    def step(self, lowest: tf.Tensor, highest: tf.Tensor) -> tf.Tensor:
        top = highest if self.over == "lower" else tf.maximum(highest, -lowest)
        scale = top + tf.maximum(lowest, 0.0) if self.plus_lowest else top**self.power
        ok = tf.math.is_finite(scale) & (top > 0)
        return tf.where(ok, self.scale / tf.where(ok, scale, 1.0), self.fallback)


#: descent on g and on linear systems in H_vv g (SGD's safe step on a quadratic of top curvature L)
LOWER_STEP = CurvatureStep()
#: a fixed-length series in H_vv g (a truncated Neumann series): 0.9 x the fastest stable step 2 / (L + mu),
#: since its truncation error shrinks as (1 - step mu) per term
SERIES_STEP = CurvatureStep(1.8, plus_lowest=True)
#: descent on the residual ||H_vv g p - b||^2, whose curvature is 2 L^2
RESIDUAL_STEP = CurvatureStep(0.5, power=2)
#: joint steps on (u, v) along a value-gap penalty or barrier (curvature ~ g's in (u, v))
JOINT_STEP = CurvatureStep(over="joint")
#: joint steps on (u, v) along the gradient penalty 1/2 ||grad_v g||^2 (curvature ~ g's squared)
JOINT_SQUARED_STEP = CurvatureStep(power=2, over="joint")


def curvature_extremes(problem: Any, lower_batch: Any, over: str) -> Tuple[tf.Tensor, tf.Tensor]:
    """(lowest, highest) curvature of g over the lower variables or (u, v), from a fixed pseudo-random start."""
    variables = list(problem.lower_vars) if over == "lower" else list(problem.upper_vars) + list(problem.lower_vars)
    start = [tf.random.stateless_normal(v.shape, _SEED, dtype=v.dtype) for v in variables]

    def products(x):
        return autodiff.loss_hvp(lambda: problem.g(lower_batch), variables, x)

    return lanczos_bounds(products, start, PROBE_STEPS)


def _variable(target: Any) -> Any:
    return target.learning_rate if isinstance(target, keras.optimizers.Optimizer) else target


class DefaultSteps:
    """One solver's measured defaults: the variable each rule sets (a slot's learning rate, a Neumann step),
    the probe that sets them once, and what ``get_config`` records of them."""

    def __init__(self) -> None:
        self.rules: Dict[str, CurvatureStep] = {}
        self._targets: Dict[str, Any] = {}  # name -> the optimizer whose learning rate, or the variable, it sets
        self._known = True  # Python-side: nothing (more) to measure
        self._fn: Any = None  # the compiled measurement, made at the first step

    def slot(
        self, solver: Any, name: str, spec: Any, default_cls: Any, default_lr: Any, variables: Any
    ) -> keras.optimizers.Optimizer:
        """The optimizer of slot ``name`` from ``spec`` (any form of ``make_optimizer``); None with a
        :class:`CurvatureStep` default gives plain SGD at the measured step. Checked, built on ``variables``,
        checkpointed under ``name`` and recorded for ``get_config``."""
        if spec is None and isinstance(default_lr, CurvatureStep):
            optimizer = keras.optimizers.SGD(learning_rate=UNMEASURED)
            self._add(name, optimizer, default_lr)
            solver._optimizer_configs[name] = None  # rebuilt as the default: measured again
        else:
            optimizer = make_optimizer(spec, name, default_cls, default_lr)
            check_learning_rate(optimizer, name)
            solver._optimizer_configs[name] = optimizer_config(optimizer)
        for other, value in solver._state.items():
            if optimizer is value:
                raise ValueError(
                    f"{name} must be a separate optimizer instance: it is the same object as {other} "
                    "(each slot keeps its own state, per variable)"
                )
        solver._build_optimizer(optimizer, variables, name)
        solver.add_state(name, optimizer)
        return optimizer

    def scalar(self, solver: Any, name: str, rule: CurvatureStep) -> tf.Variable:
        """A measured scalar of the solver (e.g. a Neumann step), in solver state under ``name``."""
        variable = tf.Variable(
            UNMEASURED, dtype=solver.dtype, trainable=False, name=name, aggregation=distribute.ONLY_FIRST_REPLICA
        )
        self._add(name, solver.add_state(name, variable), rule)
        return variable

    def rule(self, name: str) -> Optional[CurvatureStep]:
        return self.rules.get(name)

    def _add(self, name: str, target: Any, rule: CurvatureStep) -> None:
        self.rules[name], self._targets[name] = rule, target
        self._known = False

    def values(self) -> Dict[str, float]:
        """The current value of every measured step (``UNMEASURED`` before the first step)."""
        return {name: float(keras.ops.convert_to_numpy(_variable(t))) for name, t in self._targets.items()}

    def config(self) -> Dict[str, str]:
        """What each measured default is (the rule; the values are in :meth:`values`)."""
        return {
            name: ("plain SGD at " if isinstance(self._targets[name], keras.optimizers.Optimizer) else "")
            + rule.describe()
            for name, rule in self.rules.items()
        }

    def forget(self) -> None:
        """After ``reset_state`` (which puts the steps back to ``UNMEASURED``): measure at the next step."""
        self._known = not self.rules

    def prepare(self, solver: Any, upper_batch: Any, lower_batch: Any) -> None:
        """Measure the steps before the first step unless they hold values (e.g. restored from a checkpoint)."""
        if self.pending:
            self.measure_on(solver, [lower_batch])
        self._known = True

    @property
    def pending(self) -> bool:
        """Whether a step is still to be measured (False once measured, also in a restored checkpoint)."""
        if not self._known and all(value != UNMEASURED for value in self.values().values()):
            self._known = True
        return not self._known

    def measure_on(self, solver: Any, lower_batches: List[Any]) -> None:
        """Measure now on ``lower_batches``, each step for the highest curvature among them (and the lowest):
        a step measured on one mini-batch can be unstable on the next, whose curvature is higher."""
        if self._fn is None:
            self._fn = self._compile(solver)
        self._fn(list(lower_batches))
        self._known = True

    def _compile(self, solver: Any):
        def measure(lower_batches):
            overs = sorted({rule.over for rule in self.rules.values()})
            extremes = {
                over: _widest([curvature_extremes(solver.problem, b, over) for b in lower_batches]) for over in overs
            }
            for name, rule in self.rules.items():
                variable = _variable(self._targets[name])
                distribute.assign(variable, tf.cast(rule.step(*extremes[rule.over]), variable.dtype))

        if solver.strategy is not None:
            return tf.function(lambda lbs: solver.strategy.run(measure, args=(lbs,)))
        return tf.function(measure)


def _widest(extremes: List[Tuple[tf.Tensor, tf.Tensor]]) -> Tuple[tf.Tensor, tf.Tensor]:
    """The lowest and the highest curvature over several probes (one batch: that probe)."""
    if len(extremes) == 1:
        return extremes[0]
    return tf.reduce_min(tf.stack([lo for lo, _ in extremes])), tf.reduce_max(tf.stack([hi for _, hi in extremes]))

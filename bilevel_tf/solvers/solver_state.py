"""A solver's own state (schedule variables, optimizers, auxiliary variables): registered once under its
checkpoint key, reached by one ``tf.train.Checkpoint``, reset to its first values between trials."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import tensorflow as tf

from ..core.problem import BilevelProblem
from .variables import owned_variables


class SolverState:
    """The state half of :class:`~bilevel_tf.solvers.base.BilevelSolver` (which sets ``problem``)."""

    problem: BilevelProblem

    def _init_state(self) -> None:
        self._checkpoint: Optional[tf.train.Checkpoint] = None
        #: solver-owned state by checkpoint key (see :meth:`add_state`); names are checkpoint keys, keep them
        self._state: Dict[str, Any] = {}
        self._schedule_keys: List[str] = []
        self._initial_values: Optional[List[Tuple[Any, tf.Tensor]]] = None

    def _after_reset(self) -> None:
        """Called at the end of :meth:`reset_state` (e.g. measure default steps again)."""

    def add_state(self, name: str, value: Any, schedule: bool = False) -> Any:
        """Register solver-owned state (a variable, a list of variables or a trackable such as an optimizer)
        under checkpoint key ``name``: :attr:`checkpoint` saves it, :meth:`reset_state` restores its initial
        value, and with ``schedule=True`` :meth:`schedule` and the step's logs report it. Returns ``value``."""
        if self._checkpoint is not None:
            raise RuntimeError(f"state {name!r} added after the checkpoint was built")
        if name in self._state:
            raise ValueError(f"solver state {name!r} registered twice")
        self._state[name] = list(value) if isinstance(value, (list, tuple)) else value
        if schedule:
            self._schedule_keys.append(name)
        return value

    @property
    def checkpoint(self) -> tf.train.Checkpoint:
        """A ``tf.train.Checkpoint`` reaching every piece of solver state (variables, slots, schedule)."""
        if self._checkpoint is None:
            self._ensure_snapshot()
            state = dict(upper_vars=list(self.problem.upper_vars), lower_vars=list(self.problem.lower_vars))
            state.update(self._state)
            for key, value in self.problem.extra_state.items():
                state[f"extra_{key}"] = value
            self._checkpoint = tf.train.Checkpoint(**state)
        return self._checkpoint

    def reset_state(self, **schedule: float) -> None:
        """Return every piece of solver state (optimizer slots and iteration counts, learning rates,
        schedule, auxiliary variables) to its value before the solver was first used; the problem's
        variables are left alone. Reusing one compiled solver across trials this way avoids recompiling.
        ``schedule`` then sets starting values of schedule entries (names of :meth:`schedule`, e.g.
        ``reset_state(lam=1e-2)``), so trials with other constants share the compiled step too."""
        unknown = sorted(set(schedule) - set(self._schedule_keys))
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no schedule entries {unknown}; its schedule is {self._schedule_keys}"
            )
        for var, value in self._ensure_snapshot():
            var.assign(value)
        for name, value in schedule.items():
            self._state[name].assign(value)
        self._after_reset()

    def _ensure_snapshot(self) -> List[Tuple[Any, tf.Tensor]]:
        """Snapshot the solver-owned variables on first use (after every constructor has run); the snapshot."""
        if self._initial_values is None:
            problem_vars = list(self.problem.upper_vars) + list(self.problem.lower_vars)
            owned = owned_variables(self._state.values(), problem_vars)
            self._initial_values = [(v, tf.identity(tf.convert_to_tensor(v))) for v in owned]
        return self._initial_values

    def schedule(self) -> Dict[str, float]:
        """Current schedule values (rho, lam, eps, gamma, ... as applicable) as Python floats."""
        return {k: float(self._state[k].numpy()) for k in self._schedule_keys}

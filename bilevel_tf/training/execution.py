"""Several upper iterations in ONE compiled call, each on its own batches (``bl.fit``'s ``steps_per_execution``).

:func:`run_steps` wraps the solver's compiled single step (``solver._step_fn``, or ``_distributed_step_fn``
under a strategy) in a graph loop: the first iteration on batches given from the host, every further one on
the next batch of a :class:`~bilevel_tf.training.sources.Feed` drawn inside the graph. The compiled loops of
a solver are built once and kept beside it (a weak map), so repeated calls and later fits do not retrace;
the solver itself knows nothing of them.
"""

from __future__ import annotations

import weakref
from typing import Any, Dict, Tuple

import tensorflow as tf

from ..core import tensor_ops
from ..solvers.base import BilevelSolver
from ..solvers.checks import check_positive_int
from .sources import Feed

Logs = Dict[str, tf.Tensor]


def run_steps(
    solver: BilevelSolver,
    count: int,
    upper_first: Any,
    lower_first: Any,
    upper_rest: Any = None,
    lower_rest: Any = None,
) -> Tuple[Logs, tf.Tensor]:
    """Up to ``count`` upper iterations of ``solver`` in ONE compiled call: the first on ``(upper_first,
    lower_first)``, every further one on the next batch of ``upper_rest`` / ``lower_rest``, each a :class:`Feed`
    (a ``tf.data`` iterator drawn inside the graph, batches stacked along a leading axis, or None for batch None).

    The loop stops after the first iteration whose logs are not all finite, so the state is that of the
    first bad iteration. Returns (the last iteration's logs, the number of iterations run). ``count`` is a
    tensor argument: changing it does not retrace, and every iteration runs the step ``solver.step`` compiles
    (the same concrete function when the batch shapes agree), so the trajectory equals ``count`` calls of
    ``solver.step``. Under a strategy the loop goes around ``strategy.run`` (cross-replica context), where
    synchronization is allowed; the inner loops stay unrolled as in ``solver.step``.
    """
    count = check_positive_int("count", count)
    if count == 1:
        return solver.step(upper_first, lower_first), tf.constant(1, tf.int32)
    upper_rest, lower_rest = Feed.wrap(upper_rest), Feed.wrap(lower_rest)
    kinds = (upper_rest.kind, lower_rest.kind)
    solver._ensure_snapshot()
    solver._set_up(upper_first, lower_first)
    loops = _loops_of(solver)
    fn = loops.draw_and_loop if Feed.ITERATOR in kinds or solver.strategy is not None else loops.loop
    return fn(tf.constant(count, tf.int32), upper_first, lower_first, upper_rest.value, lower_rest.value, kinds)


#: solver -> its compiled loops (dropped with the solver)
_LOOPS: "weakref.WeakKeyDictionary[BilevelSolver, _CompiledLoops]" = weakref.WeakKeyDictionary()


def _loops_of(solver: BilevelSolver) -> "_CompiledLoops":
    loops = _LOOPS.get(solver)
    if loops is None:
        loops = _LOOPS[solver] = _CompiledLoops(solver)
    return loops


class _CompiledLoops:
    """The two compiled functions of one solver's multi-step calls. They hold the solver weakly, so the map
    entry does not keep it alive."""

    def __init__(self, solver: BilevelSolver):
        self._solver = weakref.ref(solver)
        # Not jit-compiled itself (XLA cannot draw from a tf.data iterator); with jit_compile it draws the call's
        # batches and hands them to one XLA loop, since calling a jitted step per iteration costs as much as an
        # eager call.
        self.draw_and_loop = tf.function(self._draw_and_loop, reduce_retracing=True)
        self.loop = tf.function(self._loop, jit_compile=solver.jit_compile, reduce_retracing=True)

    @property
    def solver(self) -> BilevelSolver:
        solver = self._solver()
        assert solver is not None  # called through the solver's map entry only
        return solver

    def _draw_and_loop(
        self,
        count: tf.Tensor,
        upper_first: Any,
        lower_first: Any,
        upper_rest: Any,
        lower_rest: Any,
        kinds: Tuple[str, str],
    ) -> Tuple[Logs, tf.Tensor]:
        solver = self.solver
        if solver.jit_compile and solver.strategy is None:  # draw first, then loop inside XLA
            (upper_rest, upper_kind), (lower_rest, lower_kind) = (
                Feed.take(upper_rest, kinds[0], count - 1),
                Feed.take(lower_rest, kinds[1], count - 1),
            )
            return self.loop(count, upper_first, lower_first, upper_rest, lower_rest, (upper_kind, lower_kind))
        return self._loop(count, upper_first, lower_first, upper_rest, lower_rest, kinds)

    def _loop(
        self,
        count: tf.Tensor,
        upper_first: Any,
        lower_first: Any,
        upper_rest: Any,
        lower_rest: Any,
        kinds: Tuple[str, str],
    ) -> Tuple[Logs, tf.Tensor]:
        solver = self.solver
        step = solver._step_fn if solver.strategy is None else solver._distributed_step_fn
        logs = step(upper_first, lower_first)
        done = tf.constant(1, tf.int32)
        finite = _all_finite(logs)
        while done < count and finite:  # AutoGraph: a tf.while_loop
            logs = step(Feed.draw(upper_rest, kinds[0], done - 1), Feed.draw(lower_rest, kinds[1], done - 1))
            done += 1
            finite = _all_finite(logs)
        return logs, done


def _all_finite(logs: Logs) -> tf.Tensor:
    return tensor_ops.all_finite([v for v in logs.values() if v.dtype.is_floating])

"""The shared machinery of every bilevel solver: validation, optimizers, the compiled step, checkpointing."""

from __future__ import annotations

import inspect
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, Union

import keras
import tensorflow as tf

from ..core import autodiff, distribute
from ..core import tensor_ops as ops
from ..core.problem import BilevelProblem
from .checks import check_choice, check_positive_int
from .default_steps import CurvatureStep, DefaultSteps
from .solver_state import SolverState
from .variables import project, state_variable

Logs = Dict[str, tf.Tensor]


def _has_accelerator() -> bool:
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


class BilevelSolver(SolverState):
    """Base class: one call to :meth:`step` is one upper-level iteration, compiled as one ``tf.function``.

    Subclasses implement :meth:`_direction`, which runs the lower-level phase (moving ``v``) and returns
    the upper-level gradient, and optionally :meth:`_finish` for schedule updates after the ``u`` step.

    Args:
        problem: the :class:`~bilevel_tf.BilevelProblem`.
        upper_optimizer, lower_optimizer: the optimizers of ``u`` and ``v``, each (like every optimizer option
            of a subclass) in one of these forms (:func:`~bilevel_tf.solvers.optimizers.make_optimizer`):
            a ``keras.optimizers.Optimizer`` instance, used as it is (never the same instance for two slots);
            a positive learning rate, for the slot's default class (``default_upper_optimizer`` /
            ``default_lower_optimizer``: Adam, plain SGD for RMD and the PBGD solvers); a Keras config dict
            or class name, built by ``keras.optimizers.get`` (e.g. ``{"class_name": "Adam", "config":
            {"learning_rate": 1e-2, "epsilon": 1e-8}}``, the form :meth:`get_config` records); or None, for
            the slot's default: the default class at the solver's default learning rate, or plain SGD at a
            step measured on the problem at the first step (:mod:`~bilevel_tf.solvers.default_steps`).
        inner_steps: T, lower-level steps per upper iteration (>= 1).
        jit_compile: compile the step with XLA.
        unroll: write the inner loops out T times (True) or use one graph loop (False). A graph loop keeps
            compile time and graph size independent of T, but XLA on a CPU runs convolutions inside a graph
            loop about 40x slower than unrolled ones (MNIST CNN: 35 s vs 0.9 s per Penalty pass). None (the
            default) unrolls exactly when ``jit_compile`` is on and no GPU/TPU is visible.
        hvp: how second-order products are computed: ``"double_backward"`` (reverse-over-reverse) or
            ``"forward_over_reverse"`` (see :mod:`bilevel_tf.core.autodiff`); None = the solver's ``default_hvp``,
            the faster one in ``benchmarks/run.py``. Both give the same results to float tolerance; solvers
            without second-order terms (GD, VPBGD) ignore it.

    Built inside ``strategy.scope()`` of a ``tf.distribute`` strategy, the solver runs data parallel:
    see :mod:`bilevel_tf.core.distribute`.
    """

    #: name used by ``bl.get_solver`` and in logs
    method = "base"
    #: the class a learning rate (or None) becomes, per slot
    default_upper_optimizer: Type[keras.optimizers.Optimizer] = keras.optimizers.Adam
    default_lower_optimizer: Type[keras.optimizers.Optimizer] = keras.optimizers.Adam
    #: a number, or a rule measuring the step on the problem (``default_steps.CurvatureStep``)
    default_upper_lr: Union[float, CurvatureStep] = 1e-3
    default_lower_lr: Union[float, CurvatureStep] = 1e-4
    default_inner_steps = 1
    #: second-order mode when ``hvp=None``: double backward measured faster for every solver (CPU)
    default_hvp = autodiff.DOUBLE_BACKWARD

    def __init__(
        self,
        problem: BilevelProblem,
        upper_optimizer: Any = None,
        lower_optimizer: Any = None,
        *,
        inner_steps: Optional[int] = None,
        jit_compile: bool = False,
        hvp: Optional[str] = None,
        unroll: Optional[bool] = None,
        **unknown: Any,
    ):
        if unknown:
            raise ValueError(
                f"{type(self).__name__} (method {self.method!r}) got unknown option(s) {sorted(unknown)}; "
                f"its options are {self.option_names()}"
            )
        if not isinstance(problem, BilevelProblem):
            raise ValueError(f"problem must be a bl.BilevelProblem, got {type(problem).__name__}")
        self.problem = problem
        #: dtype of the solver's schedule scalars (rho, gamma, ...): the lower variables', so float64
        #: problems work end to end
        self.dtype = tf.as_dtype(problem.lower_vars[0].dtype)
        self.inner_steps = check_positive_int(
            "inner_steps", self.default_inner_steps if inner_steps is None else inner_steps
        )
        self.jit_compile = bool(jit_compile)
        self.unroll = (self.jit_compile and not _has_accelerator()) if unroll is None else bool(unroll)
        self.hvp = check_choice("hvp", self.default_hvp if hvp is None else hvp, autodiff.HVP_MODES)
        self._unroll_option = unroll
        self._init_state()
        self._optimizer_configs: Dict[str, Any] = {}
        self.default_steps = DefaultSteps()  #: the slots whose step is measured on the problem at the first step
        self.upper_optimizer = self._level_optimizer("upper", upper_optimizer, problem.upper_vars)
        self.lower_optimizer = self._level_optimizer("lower", lower_optimizer, problem.lower_vars)
        self.iterations = self.add_state("iterations", state_variable(0, "upper_iterations", tf.int64))
        #: the tf.distribute strategy the solver was built under (None: single device)
        self.strategy = tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
        #: number of times the step has been traced (Python side effect, grows only on retracing)
        self.trace_count = 0
        self._validated = False
        self._step_fn = tf.function(self._step, jit_compile=self.jit_compile, reduce_retracing=True)
        self._run_fn = tf.function(self._run, jit_compile=self.jit_compile, reduce_retracing=True)
        self._distributed_step_fn = tf.function(
            self._distributed_step, jit_compile=self.jit_compile, reduce_retracing=True
        )
        self._hypergradient_fn = tf.function(self._hypergradient, jit_compile=self.jit_compile, reduce_retracing=True)

    # ------------------------------------------------------------------ public API
    def _level_optimizer(self, level: str, spec: Any, variables: Any) -> keras.optimizers.Optimizer:
        """The optimizer of ``level`` ("upper" | "lower") from the option, with the class's defaults for it."""
        name = f"{level}_optimizer"
        default_class, default_lr = getattr(self, f"default_{name}"), getattr(self, f"default_{level}_lr")
        return self.default_steps.slot(self, name, spec, default_class, default_lr, variables)

    def step(self, upper_batch: Any = None, lower_batch: Any = None) -> Logs:
        """One upper iteration (T lower steps inside the graph, then one upper step); returns scalar logs."""
        self._ensure_snapshot()
        self._validate(upper_batch, lower_batch)
        self._set_up(upper_batch, lower_batch)
        if self.strategy is not None:
            return self._distributed_step_fn(upper_batch, lower_batch)
        return self._step_fn(upper_batch, lower_batch)

    def run(self, steps: int, upper_batch: Any = None, lower_batch: Any = None) -> Logs:
        """``steps`` upper iterations on the same batches inside ONE compiled call (a graph loop); returns the
        last iteration's logs. For full-batch problems (synthetic examples, poisoning) this removes the
        per-call overhead; ``steps`` is a tensor argument, so changing it does not retrace."""
        steps = check_positive_int("steps", steps)
        self._ensure_snapshot()
        self._validate(upper_batch, lower_batch)
        self._set_up(upper_batch, lower_batch)
        if self.strategy is not None:  # synchronization cannot sit inside a graph loop: one call per step
            for _ in range(steps):
                logs = self.step(upper_batch, lower_batch)
            return logs
        return self._run_fn(tf.constant(steps, tf.int32), upper_batch, lower_batch)

    def hypergradient(self, upper_batch: Any = None, lower_batch: Any = None) -> List[tf.Tensor]:
        """The upper-level direction the next :meth:`step` would apply, as dense tensors.

        Runs the lower-level phase exactly as ``step`` does (so ``v`` and auxiliary state move) but leaves
        ``u`` and the schedule untouched. Meant for diagnostics and tests.
        """
        self._ensure_snapshot()
        self._validate(upper_batch, lower_batch)
        self._set_up(upper_batch, lower_batch)
        return self._hypergradient_fn(upper_batch, lower_batch)

    def get_config(self) -> Dict[str, Any]:
        """Every option the solver was built with (Keras convention): ``method``, ``inner_steps``, the compile
        options, each optimizer's ``keras.saving.serialize_keras_object`` form as it was at construction, the
        solver's own options (schedule constants after resolving presets). JSON-able; with the same problem,
        :meth:`from_config` builds an equal solver."""
        config: Dict[str, Any] = {
            "method": self.method,
            "inner_steps": self.inner_steps,
            "jit_compile": self.jit_compile,
            "hvp": self.hvp,
            "unroll": self._unroll_option,
        }
        config.update(self._optimizer_configs)
        config.update(self._config())
        if self.default_steps.rules:  # the rule, not the measured value: the config must not change on the way
            config["default_steps"] = self.default_steps.config()
        return config

    @classmethod
    def from_config(cls, problem: BilevelProblem, config: Dict[str, Any]) -> "BilevelSolver":
        """A new solver for ``problem`` from :meth:`get_config` output (optimizers rebuilt from their configs)."""
        return cls(problem, **{k: v for k, v in config.items() if k not in ("method", "default_steps")})

    @classmethod
    def option_names(cls) -> List[str]:
        """The keyword options the constructor accepts: the class's own and those it hands to its bases."""
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return sorted(
            {
                p.name
                for klass in cls.__mro__
                if "__init__" in vars(klass) and klass is not object
                for p in inspect.signature(klass.__init__).parameters.values()
                if p.kind in kinds and p.name not in ("self", "problem")
            }
        )

    def _after_reset(self) -> None:
        self.default_steps.forget()  # measured default steps are measured again

    # ------------------------------------------------------------------ subclass hooks
    def _direction(self, upper_batch: Any, lower_batch: Any) -> Tuple[List, Optional[List], Any]:
        """Run the lower phase; return (upper gradients, joint lower gradients or None, aux for _finish)."""
        raise NotImplementedError

    def _finish(self, aux: Any) -> Logs:
        return dict(aux)

    def _config(self) -> Dict[str, Any]:
        """The subclass's own constructor options, for :meth:`get_config`."""
        return {}

    def _validate(self, upper_batch: Any, lower_batch: Any) -> None:
        """Once per solver: trace (not run) the losses' gradients and refuse variables no loss reaches."""
        if self._validated:
            return
        check = self.problem.check_connected
        if self.strategy is not None:
            fn = tf.function(lambda ub, lb: self.strategy.run(check, args=(ub, lb)))
        else:
            fn = tf.function(check)
        fn.get_concrete_function(upper_batch, lower_batch)
        self._validated = True

    def _prepare(self, upper_batch: Any, lower_batch: Any) -> None:
        """Called before every compiled call with its batches (e.g. one-time calibration); must be cheap."""

    def _set_up(self, upper_batch: Any, lower_batch: Any) -> None:
        """Before every compiled call: the measured default steps (once), then the subclass's :meth:`_prepare`."""
        self.default_steps.prepare(self, upper_batch, lower_batch)
        self._prepare(upper_batch, lower_batch)

    def calibrate(self, upper_batches: Optional[Sequence] = None, lower_batches: Optional[Sequence] = None) -> bool:
        """Measure now, on several batches per level, what the solver otherwise measures on its first batch alone
        (as Keras' ``layer.adapt``): measured default steps (stable on the steepest batch), Penalty's rho, lam and
        lower step scale (on the mean loss). With mini-batches call it before training with e.g.
        ``list(dataset.take(8))`` per level (None: no batches). False if nothing was measured (nothing to measure,
        measured already or restored so, or under a strategy: the first batch is used)."""
        upper, lower = ([None] if b is None else list(b) for b in (upper_batches, lower_batches))
        if not upper or not lower:
            raise ValueError("calibrate needs at least one batch per level (None for a level without batches)")
        steps, calibration = self.default_steps.pending, self._calibration_pending()
        if self.strategy is not None or not (steps or calibration):
            return False
        self._ensure_snapshot()  # reset_state returns to the state before this measurement
        if steps:  # measured default steps: stable on the steepest of the batches
            self.default_steps.measure_on(self, lower)
        if calibration:
            self._calibrate_on(upper, lower)
        return True

    def _calibration_pending(self) -> bool:
        return False  # solvers that calibrate override this and _calibrate_on(upper_batches, lower_batches)

    # ------------------------------------------------------------------ compiled bodies
    def _step(self, upper_batch: Any, lower_batch: Any, initialized: bool = False) -> Logs:
        self.trace_count += 1  # runs at trace time only
        if self.problem.lower_init is not None and not initialized:
            self.problem.lower_init()
        upper_grads, lower_grads, aux = self._direction(upper_batch, lower_batch)
        self.apply_upper(upper_grads)
        if lower_grads is not None:
            self.apply_lower(lower_grads)
        logs = self._finish(aux)
        self.iterations.assign_add(1)
        for key in self._schedule_keys:
            logs.setdefault(key, tf.identity(self._state[key]))
        return logs

    def _distributed_step(self, upper_batch: Any, lower_batch: Any) -> Logs:
        if self.problem.lower_init is not None:  # cross-replica context: plain assignments are fine here
            self.problem.lower_init()
        logs = self.strategy.run(self._step, args=(upper_batch, lower_batch), kwargs={"initialized": True})
        # Every replica holds the same (averaged) values: take them from the first.
        return {k: self.strategy.experimental_local_results(v)[0] for k, v in logs.items()}

    def _run(self, steps: tf.Tensor, upper_batch: Any, lower_batch: Any) -> Logs:
        logs = self._step(upper_batch, lower_batch)
        for _ in tf.range(steps - 1):
            logs = self._step(upper_batch, lower_batch)
        return logs

    def _hypergradient(self, upper_batch: Any, lower_batch: Any) -> List[tf.Tensor]:
        if self.problem.lower_init is not None:
            self.problem.lower_init()
        upper_grads, _, _ = self._direction(upper_batch, lower_batch)
        return [ops.dense(g) for g in ops.fill_none(upper_grads, self.problem.upper_vars)]

    # ------------------------------------------------------------------ helpers for subclasses
    def apply_upper(self, grads: Sequence) -> None:
        self._apply(self.upper_optimizer, grads, self.problem.upper_vars, self.problem.upper_constraint)

    def apply_lower(self, grads: Sequence, optimizer: Optional[keras.optimizers.Optimizer] = None) -> None:
        self._apply(optimizer or self.lower_optimizer, grads, self.problem.lower_vars, self.problem.lower_constraint)

    def descend_lower(self, lower_batch: Any, optimizer: Optional[keras.optimizers.Optimizer] = None) -> None:
        """``inner_steps`` optimizer steps on g from the current v (the warm-started lower solve)."""
        for _ in self.loop(self.inner_steps):
            self.apply_lower(autodiff.lower_value_and_grad(self.problem, lower_batch)[1], optimizer)

    def loop(self, *range_args):
        """The range of an inner loop: a graph loop on one device, unrolled under a strategy or with ``unroll``."""
        if self.unroll:
            return range(*(int(x) for x in range_args))
        return distribute.loop_range(*range_args)

    @staticmethod
    def _apply(optimizer, grads, variables, constraint) -> None:
        # Keras optimizers sum gradients over replicas; ours are already averaged.
        share = 1.0 / distribute.num_replicas()
        pairs = [
            (g if share == 1.0 else ops.scale([g], share)[0], v) for g, v in zip(grads, variables) if g is not None
        ]
        optimizer.apply_gradients(pairs)
        if constraint is not None:
            project(constraint, variables)

    @staticmethod
    def _build_optimizer(optimizer, variables, name: str) -> None:
        # Build slots eagerly: variables may not be created inside a tf.function after its first trace,
        # and a checkpoint taken before the first step must already hold them.
        try:
            optimizer.build(list(variables))
        except ValueError as e:
            raise ValueError(
                f"{name} could not be built for these variables ({e}); pass a fresh optimizer instance"
            ) from e

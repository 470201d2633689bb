"""The fit loop: run upper iterations over data sources with progress, logging, NaN guard and resume."""

from __future__ import annotations

import math
import signal
import statistics
import time
from types import FrameType
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import tensorflow as tf

from . import workers
from .backup import BackupAndRestore
from .callbacks import Callback, CSVLogger, DivergenceWatch, FitRun, TensorBoard, crossed
from .checkpoints import run_config
from .execution import run_steps
from ..solvers.base import BilevelSolver
from ..solvers.checks import check_positive_int
from .sources import Source
from .terminal import Progress, status


class NonFiniteError(FloatingPointError):
    """A loss or schedule value became NaN/inf; the last good checkpoint is kept on disk."""


class History(list):
    """The logged records (one dict per logged step) plus timing."""

    seconds_per_step: float = float("nan")


def fit(
    solver: BilevelSolver,
    upper_data: Any = None,
    lower_data: Any = None,
    steps: int = 1,
    *,
    steps_per_execution: int = 1,
    checkpoint_dir: Optional[str] = None,
    checkpoint_every: int = 100,
    max_to_keep: int = 3,
    callbacks: Optional[Sequence[Callback]] = None,
    verbose: int = 1,
    log_every: int = 1,
    csv_path: Optional[str] = None,
    tensorboard_dir: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
    history: Optional[Sequence[Mapping[str, Any]]] = None,
) -> History:
    """Run upper iterations until ``solver.iterations`` reaches ``steps``.

    The loop in Keras' manner: two data sources (:class:`~bilevel_tf.training.sources.Source`), compiled calls
    of the solver's step, a list of callbacks, the records and progress line, a NaN guard and Ctrl-C handling.
    Checkpoints are a callback too: ``checkpoint_dir`` (with ``checkpoint_every`` and ``max_to_keep``) adds a
    :class:`~bilevel_tf.training.backup.BackupAndRestore`, which may instead be passed in ``callbacks``.

    ``steps`` is the total: a solver restored from ``checkpoint_dir`` at iteration k runs ``steps - k`` more,
    so re-running the same command after an interruption continues where it stopped. Each source gives one
    batch per iteration: None, a ``tf.data.Dataset`` (repeated; its iterator position is checkpointed), a
    callable ``step -> batch``, or a Python iterable (fast-forwarded on resume). For resumes that are exact
    to the bit, repeat a shuffled dataset yourself *before* its parallel ``map``/``prefetch`` stages: a
    checkpoint taken while those buffers already hold the end of a pass can restore (TF 2.21) with another
    shuffle order for the next pass (``bilevel_tf.apps.denoising.data.indexed_batches(cycle=True)`` does so).

    ``steps_per_execution`` (Keras' name and meaning): up to k upper iterations run inside ONE compiled call
    (:func:`bilevel_tf.training.execution.run_steps`), which removes TensorFlow's per-call overhead on small
    problems. The iterations and their batches are exactly those of k = 1, so the trajectory is the same. Calls end on
    multiples of k (and at ``steps``), also after a resume, and everything between iterations happens at call
    boundaries only: callbacks (``on_step_end`` once per call, with the call's last step and logs), history
    records and the progress bar (at the first boundary at or after each multiple of ``log_every``) and
    checkpoints (at the first boundary at or after each multiple of ``checkpoint_every``: with k = 10 and
    ``checkpoint_every=25`` they land on steps 30, 50, 80, ...). Datasets are drawn inside the graph (the first
    batch of a call through the host, for the solver's ``_prepare`` hook); callables and iterables are called
    on the host for the call's k batches, which are stacked into one tensor per leaf (so they must share
    their shapes; the last, shorter call traces once more).

    A NaN/inf log value raises :class:`NonFiniteError` naming the step and quantity. A multi-step call stops
    after the first iteration whose logs are not finite, so the named step is exact for every k (the state
    is that of the bad step). Checkpoints are only written from finite states at call boundaries, so the last
    one on disk is good. Ctrl-C (or SIGTERM) stops at the end of the current step (its callbacks included) and
    saves a checkpoint there when the state is finite, then raises KeyboardInterrupt; a second one stops at once.
    A loss that runs away while staying finite gets one ``DivergenceWarning`` (:class:`DivergenceWatch`); a
    checkpoint that finds the disk full raises ``OSError`` (ENOSPC) naming the folder, the earlier checkpoints
    intact; a worker of a multi-worker run that stops answering raises ``workers.WorkerLostError``. With
    ``verbose`` it says when it resumes ("resuming from step N of M") and when it traces the upper iteration.

    Under a multi-worker strategy (``bilevel_tf.training.workers``) every worker restores from ``checkpoint_dir``
    but only the chief writes there (the others write to a temporary folder they delete, TensorFlow's rule).
    Under any strategy datasets are fast-forwarded on resume (``skip``; a strategy's distributed iterator
    cannot be checkpointed), which replays the same batches when the dataset's order is seeded.

    With ``checkpoint_dir`` (see :mod:`bilevel_tf.training.checkpoints`): the folder is locked for the run (a second
    process is refused with ``FolderLockedError``; a killed one's lock is free at once; a folder the caller
    already locks takes a :class:`BackupAndRestore` with ``lock=`` in ``callbacks`` instead) and leftovers
    of an interrupted write are removed; each checkpoint also stores the run's configuration (the solver's
    class and ``get_config()`` plus ``config``, any JSON-able description such as the runner's flags) and
    the history so far. Resuming under another configuration, or with ``steps`` below the restored iteration,
    raises ``ResumeMismatchError``; a damaged latest checkpoint falls back to the previous one (with a
    warning), and ``CheckpointError`` is raised when none is usable. ``history`` holds records logged before
    the fit (e.g. an evaluation at step 0); they belong to the run and are restored with it.

    Returns a :class:`History` of the WHOLE run, across resumes: ``history``, then one dict per logged step
    (``step``, ``seconds`` of fitting so far, the solver's logs plus anything callbacks added), with
    ``seconds_per_step`` (median seconds per upper iteration over this fit's calls that did not trace; from the
    restored records' ``step_seconds`` when this fit timed none; records of traced calls carry no
    ``step_seconds``).
    """
    if not isinstance(solver, BilevelSolver):
        raise ValueError(f"solver must be a bl.BilevelSolver, got {type(solver).__name__}")
    steps = check_positive_int("steps", steps, minimum=0)
    per_call = check_positive_int("steps_per_execution", steps_per_execution)
    log_every = check_positive_int("log_every", log_every)
    checkpoint_every = check_positive_int("checkpoint_every", checkpoint_every)
    upper = Source(upper_data, "upper_data", solver.strategy)
    lower = Source(lower_data, "lower_data", solver.strategy)
    all_callbacks = [DivergenceWatch()] + list(callbacks or [])  # the watch warns once when a loss runs away
    if checkpoint_dir:
        all_callbacks.append(BackupAndRestore(checkpoint_dir, every=checkpoint_every, max_to_keep=max_to_keep))
    if csv_path:
        all_callbacks.append(CSVLogger(csv_path, every=log_every))
    if tensorboard_dir:
        all_callbacks.append(TensorBoard(tensorboard_dir, every=log_every))
    positions = {src.name: src.iterator for src in (upper, lower) if src.iterator is not None}
    records = [dict(r) for r in (history or [])]
    run = FitRun(solver, steps, run_config(solver, config), records, positions)
    fitted = _Loop(run, upper, lower, all_callbacks, per_call=per_call, log_every=log_every, verbose=verbose).fit()
    for cb in all_callbacks:
        cb.on_fit_end(fitted)
    return fitted


class _Loop:
    """One ``fit`` call: its sources, callbacks, timer and progress, and the loop over compiled calls."""

    def __init__(
        self,
        run: FitRun,
        upper: Source,
        lower: Source,
        callbacks: List[Callback],
        *,
        per_call: int,
        log_every: int,
        verbose: int,
    ):
        self.run, self.solver, self.steps = run, run.solver, run.steps
        self.upper, self.lower, self.callbacks = upper, lower, callbacks
        self.per_call, self.log_every, self.verbose = per_call, log_every, verbose
        backups = [cb for cb in callbacks if isinstance(cb, BackupAndRestore)]
        if len(backups) > 1:
            raise ValueError("callbacks: pass checkpoint_dir or one BackupAndRestore in callbacks, not both nor two")
        self.backup: Optional[BackupAndRestore] = backups[0] if backups else None
        self.timer = _StepTimer()
        self.progress: Optional[Progress] = None
        self.stopped = False

    @property
    def kept(self) -> Optional[str]:
        """The newest checkpoint on disk, if the run keeps any."""
        return self.backup.latest if self.backup is not None else None

    def fit(self) -> History:
        """Set the callbacks up (a restore), run, and close them again whatever happens."""
        opened: List[Callback] = []
        try:
            for cb in self.callbacks:
                cb.on_fit_setup(self.run)
                opened.append(cb)
            return self._fit()
        finally:
            for cb in opened:
                cb.on_fit_close()

    def _fit(self) -> History:
        solver, records = self.solver, self.run.records
        workers.sync_from_chief(solver.strategy, list(solver.problem.upper_vars) + list(solver.problem.lower_vars))
        start = int(solver.iterations.numpy())
        self.upper.skip(start)
        self.lower.skip(start)
        for cb in self.callbacks:
            cb.on_history_restored(list(records))
            cb.on_fit_begin(solver, start, self.steps)
        if self.verbose and start:
            status(
                self.verbose,
                f"resuming from step {start} of {self.steps}" + ("" if start < self.steps else ": nothing left to run"),
            )
        self.progress = Progress(self.steps, start, self.verbose) if self.verbose else None
        # "seconds" continues the restored run's clock, so curves against wall-clock time stay monotone
        self.t_begin = time.perf_counter() - next((r["seconds"] for r in reversed(records) if "seconds" in r), 0.0)
        self._loop(start)
        history = History(records)
        history.seconds_per_step = self.timer.seconds_per_step(records)
        return history

    def _loop(self, start: int) -> None:
        step, interrupts = start, _Interrupts()
        try:
            while step < self.steps:
                interrupts.stop_here()
                if self.verbose and step == start:
                    status(
                        self.verbose,
                        "tracing and compiling the upper iteration"
                        f"{' with XLA' if self.solver.jit_compile else ''} (the first step takes longer)",
                    )
                previous, (step, logs) = step, self._call(step)
                if self._after_call(previous, step, logs):
                    break
            self._stop(step)
            interrupts.stop_here()
        except KeyboardInterrupt:
            if not interrupts.mid_step:
                self._stop(step)
            raise
        except tf.errors.OpError as e:
            lost = workers.peer_failure(e, self.solver.strategy, step + 1, self.kept)
            if lost is None:
                raise
            raise lost from None
        finally:
            if self.progress is not None:
                self.progress.finish()
            interrupts.restore()

    def _stop(self, step: int) -> None:
        """The loop stops at the boundary of ``step`` (once: an interrupt right after the end repeats nothing)."""
        if not self.stopped:
            self.stopped = True
            for cb in self.callbacks:
                cb.on_fit_stop(step)

    def _call(self, step: int) -> Tuple[int, Dict[str, float]]:
        """One compiled call of up to ``per_call`` upper iterations; the step reached and its logs."""
        solver = self.solver
        count = min(self.steps, (step // self.per_call + 1) * self.per_call) - step  # calls end on multiples of k
        traces = solver.trace_count  # a call that traces measures tracing, not the step
        if count == 1:
            batches = (self.upper.next(step), self.lower.next(step))
            t0 = time.perf_counter()
            out, done = solver.step(*batches), 1
        else:
            (ub, upper_rest), (lb, lower_rest) = self.upper.feed(step, count), self.lower.feed(step, count)
            t0 = time.perf_counter()
            out, done = run_steps(solver, count, ub, lb, upper_rest, lower_rest)
        logs = {k: float(v) for k, v in out.items()}
        done = int(done)
        self.timer.add((time.perf_counter() - t0) / done, traced=solver.trace_count != traces)
        step += done
        bad = [k for k, v in logs.items() if not math.isfinite(v)]
        if bad:
            kept = self.kept
            raise NonFiniteError(
                f"step {step}: {', '.join(f'{k} = {logs[k]}' for k in bad)}; stopped"
                + (f", last good checkpoint kept: {kept}" if kept else " (no checkpoint was written)")
            )
        return step, logs

    def _after_call(self, previous: int, step: int, logs: Dict[str, float]) -> bool:
        """Callbacks, the record and progress line, then the callbacks that save the record; True to stop."""
        solver_keys = list(logs)
        for cb in self.callbacks:
            cb.on_step_end(step, logs)
        if crossed(previous, step, self.log_every) or step == self.steps:
            self.run.records.append(
                {"step": step, "seconds": time.perf_counter() - self.t_begin, **logs, **self.timer.record()}
            )
            if self.progress is not None:
                self.progress.update(step, logs, solver_keys)
        for cb in self.callbacks:
            cb.on_step_recorded(step)
        return any(cb.stop_fit for cb in self.callbacks)


class _StepTimer:
    """Seconds per upper iteration of each compiled call, apart for the calls that traced (the first one, and a
    retrace such as a shorter last call of stacked batches): those measure tracing and compilation."""

    def __init__(self) -> None:
        self.timed: List[float] = []  # this fit's calls that did not trace
        self.traced: List[float] = []
        self._since_record: List[float] = []

    def add(self, seconds: float, traced: bool) -> None:
        (self.traced if traced else self.timed).append(seconds)
        if not traced:
            self._since_record.append(seconds)

    def record(self) -> Dict[str, float]:
        """``step_seconds`` for a history record: the median of the calls since the previous record that did not
        trace (nothing when all traced), so a resumed run with few or no new steps still reports its speed."""
        timed, self._since_record = self._since_record, []
        return {"step_seconds": statistics.median_high(timed)} if timed else {}

    def seconds_per_step(self, records: Sequence[Mapping[str, Any]]) -> float:
        """This fit's median over calls that did not trace; else the restored records' (a resume that ran one
        call, or none); the traced calls only when nothing else was ever timed."""
        if self.timed:
            return statistics.median_high(self.timed)
        earlier = [r["step_seconds"] for r in records if "step_seconds" in r]
        if earlier:
            return statistics.median_high(earlier)
        return statistics.median_high(self.traced) if self.traced else float("nan")


class _Interrupts:
    """Ctrl-C and SIGTERM while ``fit`` runs (main thread): the first one stops the run at the next step
    boundary, once the step's callbacks (e.g. an epoch-end renormalisation), record and checkpoint are done,
    so the checkpoint saved on the way out resumes exactly as the run would have continued; a second one
    stops at once, without saving (the last checkpoint stays). A signal the process ignores stays ignored."""

    def __init__(self) -> None:
        self.pending: Optional[int] = None
        self.mid_step = False
        self._previous: Dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                if signal.getsignal(signum) != signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: Python's own handling
                break

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.pending is None:
            self.pending = signum
            return
        self.mid_step = True
        raise KeyboardInterrupt(f"signal {signum}")

    def stop_here(self) -> None:
        """At a step boundary: raise the pending interrupt, if any."""
        if self.pending is not None:
            raise KeyboardInterrupt(f"signal {self.pending}")

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

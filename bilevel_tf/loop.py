"""The fit loop: run upper iterations over data sources with progress, logging, NaN guard and resume."""
from __future__ import annotations

import errno
import math
import signal
import statistics
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import tensorflow as tf

from . import tensor_ops, workers
from .callbacks import Callback, CSVLogger, DivergenceWatch, TensorBoard, crossed
from .checkpoints import ResumeMismatchError, RunCheckpoints, run_config
from .folders import FolderLock, remove_partial_files
from .console import Progress, status
from .solvers.base import BilevelSolver, Feed, check_positive_int


class NonFiniteError(FloatingPointError):
    """A loss or schedule value became NaN/inf; the last good checkpoint is kept on disk."""


class History(list):
    """The logged records (one dict per logged step) plus timing."""

    seconds_per_step: float = float("nan")


class _Source:
    """One batch per upper iteration from None, a ``tf.data.Dataset``, a callable ``step -> batch`` or a
    Python iterable (restarted when exhausted if it can be)."""

    def __init__(self, data: Any, name: str, strategy: Any = None):
        self.name, self.data = name, data
        self.iterator = None
        if data is None:
            self.kind = "none"
        elif isinstance(data, tf.data.Dataset):
            self.kind = "dataset"
            # repeat() so finite datasets cycle through epochs; the iterator is checkpointed for resume.
            self._dataset, self._strategy = data.repeat(), strategy
            if strategy is None:
                self.iterator = iter(self._dataset)
            # else: the strategy's iterators cannot be checkpointed (a DistributedIterator is not trackable;
            # with several workers each would hold its own shard's position while every worker restores the
            # chief's checkpoint), so the stream is fast-forwarded instead (skip)
        elif callable(data):
            self.kind = "callable"
        elif isinstance(data, Iterable):
            self.kind = "iterable"
            self._it = iter(data)
        else:
            raise ValueError(f"{name} must be None, a tf.data.Dataset, a callable(step) -> batch or an iterable, "
                             f"got {type(data).__name__}")

    def next(self, step: int) -> Any:
        if self.kind == "none":
            return None
        if self.kind == "dataset":
            return next(self.iterator)
        if self.kind == "callable":
            return self.data(step)
        try:
            return next(self._it)
        except StopIteration:
            if iter(self.data) is self.data:
                raise ValueError(f"{self.name} ran out of batches at step {step}; pass a repeating source "
                                 "(a tf.data.Dataset, a list, or a callable(step) -> batch)") from None
            self._it = iter(self.data)
            return next(self._it)

    def _iterate(self, data: tf.data.Dataset) -> Any:
        if self._strategy is not None:  # split each global batch across the replicas
            data = self._strategy.experimental_distribute_dataset(data)
        return iter(data)

    def skip(self, steps: int) -> None:
        """Fast-forward after a resume: a Python iterable, or a dataset whose position is not checkpointed
        (under a strategy); datasets otherwise restore their iterator position."""
        if self.kind == "iterable":
            for step in range(steps):
                self.next(step)
        if self.kind == "dataset" and self.iterator is None:
            self.iterator = self._iterate(self._dataset.skip(steps))

    def feed(self, step: int, count: int) -> Tuple[Any, Feed]:
        """The batch of ``step`` and a :class:`Feed` of the next ``count - 1`` for one multi-step call."""
        if self.kind == "none":
            return None, Feed.none()
        if self.kind == "dataset":  # the first batch goes through the host so that ``_prepare`` can see it
            return next(self.iterator), Feed.iterator(self.iterator)
        batches = [self.next(step + i) for i in range(count)]
        return batches[0], Feed.stacked(_stack(batches[1:], self.name))


def _stack(batches: List[Any], name: str) -> Any:
    """k batches of a Python source as one structure with a leading axis of length k."""
    try:
        return tf.nest.map_structure(lambda *xs: tf.stack([tf.convert_to_tensor(x) for x in xs]), *batches)
    except (ValueError, TypeError, tf.errors.InvalidArgumentError) as e:
        raise ValueError(f"{name}: steps_per_execution > 1 stacks the batches of a callable or iterable source, "
                         f"so they must have one structure and shape ({e}); pass steps_per_execution=1 or a "
                         "tf.data.Dataset") from None


def _all_finite_fn(variables: Sequence) -> Callable[[], tf.Tensor]:
    return tf.function(lambda: tensor_ops.all_finite(variables))


def fit(solver: BilevelSolver, upper_data: Any = None, lower_data: Any = None, steps: int = 1, *,
        steps_per_execution: int = 1, checkpoint_dir: Optional[str] = None, checkpoint_every: int = 100,
        max_to_keep: int = 3, callbacks: Optional[Sequence[Callback]] = None, verbose: int = 1, log_every: int = 1,
        csv_path: Optional[str] = None, tensorboard_dir: Optional[str] = None,
        config: Optional[Mapping[str, Any]] = None, history: Optional[Sequence[Mapping[str, Any]]] = None) -> History:
    """Run upper iterations until ``solver.iterations`` reaches ``steps``.

    ``steps`` is the total: a solver restored from ``checkpoint_dir`` at iteration k runs ``steps - k`` more,
    so re-running the same command after an interruption continues where it stopped. Each source gives one
    batch per iteration: None, a ``tf.data.Dataset`` (repeated; its iterator position is checkpointed), a
    callable ``step -> batch``, or a Python iterable (fast-forwarded on resume). For resumes that are exact
    to the bit, repeat a shuffled dataset yourself *before* its parallel ``map``/``prefetch`` stages: a
    checkpoint taken while those buffers already hold the end of a pass can restore (TF 2.21) with another
    shuffle order for the next pass (``bilevel_tf.apps.importance_data.indexed_batches(cycle=True)`` does so).

    ``steps_per_execution`` (Keras' name and meaning): up to k upper iterations run inside ONE compiled call
    (:meth:`BilevelSolver.run_feeds`), which removes TensorFlow's per-call overhead on small problems. The
    iterations and their batches are exactly those of k = 1, so the trajectory is the same. Calls end on
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

    Under a multi-worker strategy (``bilevel_tf.workers``) every worker restores from ``checkpoint_dir``
    but only the chief writes there (the others write to a temporary folder they delete, TensorFlow's rule).
    Under any strategy datasets are fast-forwarded on resume (``skip``; a strategy's distributed iterator
    cannot be checkpointed), which replays the same batches when the dataset's order is seeded.

    With ``checkpoint_dir`` (see :mod:`bilevel_tf.checkpoints`): the folder is locked for the run (a second
    process is refused with ``FolderLockedError``; a killed one's lock is free at once) and leftovers
    of an interrupted write are removed; each checkpoint also stores the run's configuration (the solver's
    class and ``get_config()`` plus ``config``, any JSON-able description such as the runner's flags) and
    the history so far. Resuming under another configuration, or with ``steps`` below the restored iteration,
    raises ``ResumeMismatchError``; a damaged latest checkpoint falls back to the previous one (with a
    warning), and ``CheckpointError`` is raised when none is usable. ``history`` holds records logged before the fit (e.g. an evaluation at step 0);
    they belong to the run and are restored with it.

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
    checkpoint_every = check_positive_int("checkpoint_every", checkpoint_every)
    log_every = check_positive_int("log_every", log_every)
    upper = _Source(upper_data, "upper_data", solver.strategy)
    lower = _Source(lower_data, "lower_data", solver.strategy)
    callbacks = [DivergenceWatch()] + list(callbacks or [])  # warns once when a loss runs away
    if csv_path:
        callbacks.append(CSVLogger(csv_path, every=log_every))
    if tensorboard_dir:
        callbacks.append(TensorBoard(tensorboard_dir, every=log_every))

    records: List[Dict[str, Any]] = [dict(r) for r in (history or [])]
    checkpoints, lock = None, None
    run = run_config(solver, config)
    if checkpoint_dir:
        # multi-worker: every worker restores the chief's checkpoints; only the chief locks and writes there
        chief = workers.is_chief(solver.strategy)
        lock = FolderLock(checkpoint_dir).acquire() if chief else None
        try:
            if chief:
                remove_partial_files(checkpoint_dir)
            trackables: Dict[str, Any] = {"solver": solver.checkpoint}
            for src, key in ((upper, "upper_data"), (lower, "lower_data")):
                if src.iterator is not None:
                    trackables[key] = src.iterator
            checkpoints = RunCheckpoints(checkpoint_dir, trackables, max_to_keep=max_to_keep,
                                         write_folder=workers.writable_dir(checkpoint_dir, solver.strategy))
            restored = checkpoints.restore(run)
            done = int(solver.iterations.numpy())
            if done > steps:  # its results would carry a budget it did not have
                raise ResumeMismatchError(
                    f"{checkpoint_dir} holds a run already at upper iteration {done}, past the {steps} asked for; "
                    "ask for at least as many to continue it, or start over (--fresh, or delete the folder)")
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        if restored is not None and restored[1]:
            records = restored[1]
    workers.sync_from_chief(solver.strategy, list(solver.problem.upper_vars) + list(solver.problem.lower_vars))
    start = int(solver.iterations.numpy())
    upper.skip(start)
    lower.skip(start)
    finite = _all_finite_fn(list(solver.problem.upper_vars) + list(solver.problem.lower_vars))

    saved = [start]  # the step of the state on disk (an interrupt right after a save does not repeat it)

    def save(step: int) -> None:
        if checkpoints is not None and step != saved[0] and bool(finite()):
            try:
                checkpoints.save(step, run, records)
            except tf.errors.ResourceExhaustedError as e:  # a full disk or quota: nothing written is damaged
                raise _disk_full(e, step, checkpoints) from None
            saved[0] = step

    for cb in callbacks:
        cb.on_history_restored(list(records))
        cb.on_fit_begin(solver, start, steps)
    if verbose and start:
        status(verbose, f"resuming from step {start} of {steps}" + ("" if start < steps else ": nothing left to run"))
    timer = _StepTimer()
    progress = Progress(steps, start, verbose) if verbose else None
    # "seconds" continues the restored run's clock, so curves against wall-clock time stay monotone
    t_begin = time.perf_counter() - next((r["seconds"] for r in reversed(records) if "seconds" in r), 0.0)
    step = start
    interrupts = _Interrupts()
    try:
        while step < steps:
            interrupts.stop_here()
            if verbose and step == start:
                status(verbose, f"tracing and compiling the upper iteration{' with XLA' if solver.jit_compile else ''} "
                                "(the first step takes longer)")
            count = min(steps, (step // per_call + 1) * per_call) - step  # calls end on multiples of k
            traces = solver.trace_count  # a call that traces measures tracing, not the step
            if count == 1:
                batches = (upper.next(step), lower.next(step))
                t0 = time.perf_counter()
                out, done = solver.step(*batches), 1
            else:
                (ub, upper_rest), (lb, lower_rest) = upper.feed(step, count), lower.feed(step, count)
                t0 = time.perf_counter()
                out, done = solver.run_feeds(count, ub, lb, upper_rest, lower_rest)
            logs = {k: float(v) for k, v in out.items()}
            done = int(done)
            timer.add((time.perf_counter() - t0) / done, traced=solver.trace_count != traces)
            previous, step = step, step + done
            bad = [k for k, v in logs.items() if not math.isfinite(v)]
            if bad:
                kept = checkpoints.latest if checkpoints is not None else None
                raise NonFiniteError(
                    f"step {step}: {', '.join(f'{k} = {logs[k]}' for k in bad)}; stopped"
                    + (f", last good checkpoint kept: {kept}" if kept else " (no checkpoint was written)"))
            solver_keys = list(logs)
            for cb in callbacks:
                cb.on_step_end(step, logs)
            if crossed(previous, step, log_every) or step == steps:
                records.append({"step": step, "seconds": time.perf_counter() - t_begin, **logs, **timer.record()})
                if progress is not None:
                    progress.update(step, logs, solver_keys)
            if crossed(previous, step, checkpoint_every):
                save(step)
            if any(cb.stop_fit for cb in callbacks):
                break
        if step > start:
            save(step)
        interrupts.stop_here()
    except KeyboardInterrupt:
        if not interrupts.mid_step:
            save(step)
        raise
    except tf.errors.OpError as e:
        kept = checkpoints.latest if checkpoints is not None else None
        lost = workers.peer_failure(e, solver.strategy, step + 1, kept)
        if lost is None:
            raise
        raise lost from None
    finally:
        if progress is not None:
            progress.finish()
        interrupts.restore()
        if checkpoints is not None:
            workers.remove_temporary(checkpoints.write_folder, solver.strategy)
        if lock is not None:
            lock.release()
    history = History(records)
    history.seconds_per_step = timer.seconds_per_step(records)
    for cb in callbacks:
        cb.on_fit_end(history)
    return history


class _StepTimer:
    """Seconds per upper iteration of each compiled call, apart for the calls that traced (the first one, and a
    retrace such as a shorter last call of stacked batches): those measure tracing and compilation."""

    def __init__(self):
        self.timed: List[float] = []      # this fit's calls that did not trace
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


def _disk_full(error: BaseException, step: int, checkpoints: RunCheckpoints) -> OSError:
    """A checkpoint write that ran out of disk space (or quota), as the OSError the runners report in one line."""
    kept = f"the earlier checkpoint {checkpoints.latest} is intact" if checkpoints.latest else "no checkpoint was kept"
    return OSError(errno.ENOSPC, f"no space left for the checkpoint of step {step} ({kept}); free some space and "
                                 "rerun the same command", checkpoints.folder)


class _Interrupts:
    """Ctrl-C and SIGTERM while ``fit`` runs (main thread): the first one stops the run at the next step
    boundary, once the step's callbacks (e.g. an epoch-end renormalisation), record and checkpoint are done,
    so the checkpoint saved on the way out resumes exactly as the run would have continued; a second one
    stops at once, without saving (the last checkpoint stays). A signal the process ignores stays ignored."""

    def __init__(self):
        self.pending: Optional[int] = None
        self.mid_step = False
        self._previous: Dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                if signal.getsignal(signum) != signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: Python's own handling
                break

    def _handle(self, signum, frame) -> None:
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

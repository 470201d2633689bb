"""Checkpoint and resume of a ``bl.fit`` run as a callback, in the manner of Keras' ``BackupAndRestore``."""

from __future__ import annotations

import errno
from typing import Any, Callable, Dict, Mapping, Optional

import tensorflow as tf

from ..core import tensor_ops
from ..solvers.checks import check_positive_int
from . import workers
from .callbacks import Callback, FitRun, crossed
from .checkpoints import ResumeMismatchError, RunCheckpoints, run_config
from .folders import FolderLock, refuse_if_locked, remove_partial_files


class BackupAndRestore(Callback):
    """Save the run to ``checkpoint_dir`` and resume it from there: what ``bl.fit(..., checkpoint_dir=...,
    checkpoint_every=..., max_to_keep=...)`` builds, or pass it in ``callbacks=`` yourself (not both).

    At the start of ``fit`` (:meth:`on_fit_setup`) it locks the folder (the chief only, under a multi-worker
    strategy; a second process is refused with ``FolderLockedError``), removes the leftovers of an interrupted
    write, restores the newest usable checkpoint (solver state, data positions, and the records of the run so
    far) and refuses a run already past ``steps`` (``ResumeMismatchError``). It saves the run at the first step
    boundary at or after each multiple of ``every`` and where the loop stops (the end, an early stop, a first
    Ctrl-C), each time only from a finite state not already on disk, so the last checkpoint is always good. A
    full disk raises ``OSError`` (ENOSPC) naming the folder, the earlier checkpoints intact. At the end the lock
    is released and a non-chief worker's temporary folder removed. See :mod:`bilevel_tf.training.checkpoints`.

    ``lock``: a :class:`~bilevel_tf.training.folders.FolderLock` this process already holds on ``checkpoint_dir``
    or a folder containing it (a runner's run folder, :meth:`bilevel_tf.runner.run_folder.Run.backup`): the
    callback checks it is held and takes no lock of its own (its owner releases it), so the run has one lock.
    ``config``: the run's description (e.g. run.json's config) stored in every checkpoint and compared on
    resume, with the solver's class and ``get_config()`` added; in place of ``bl.fit(config=...)``, which may
    then be omitted (or equal).
    """

    def __init__(
        self,
        checkpoint_dir: str,
        every: int = 100,
        max_to_keep: int = 3,
        *,
        lock: Optional[FolderLock] = None,
        config: Optional[Mapping[str, Any]] = None,
    ):
        if lock is not None and not lock.covers(checkpoint_dir):
            raise ValueError(f"lock: it locks {lock.folder}, which does not contain checkpoint_dir {checkpoint_dir}")
        self.checkpoint_dir, self.max_to_keep = checkpoint_dir, max_to_keep
        self.every = check_positive_int("every", every)
        self.config = config
        self._shared_lock = lock
        self._identity: Dict[str, Any] = {}
        self.checkpoints: Optional[RunCheckpoints] = None
        self._lock: Optional[FolderLock] = None
        self._run: Optional[FitRun] = None
        self._strategy: Any = None
        self._finite: Optional[Callable[[], tf.Tensor]] = None
        self._saved = 0  # the step of the state on disk (a stop right after a save does not repeat it)
        self._previous = 0

    @property
    def latest(self) -> Optional[str]:
        """The newest checkpoint on disk (None before any)."""
        return self.checkpoints.latest if self.checkpoints is not None else None

    def on_fit_setup(self, run: FitRun) -> None:
        """Lock the folder (the chief only), restore the latest usable checkpoint and its records."""
        solver, folder = run.solver, self.checkpoint_dir
        self._run, self._strategy = run, solver.strategy
        # multi-worker: every worker restores the chief's checkpoints; only the chief locks and writes there
        chief = workers.is_chief(solver.strategy)
        self._identity = self._run_identity(run)
        self._lock = self._own_lock() if chief else None
        try:
            if chief:
                remove_partial_files(folder)
            self.checkpoints = RunCheckpoints(
                folder,
                {"solver": solver.checkpoint, **run.data_positions},
                max_to_keep=self.max_to_keep,
                write_folder=workers.writable_dir(folder, solver.strategy),
            )
            restored = self.checkpoints.restore(self._identity)
            done = int(solver.iterations.numpy())
            if done > run.steps:  # its results would carry a budget it did not have
                raise ResumeMismatchError(
                    f"{folder} holds a run already at upper iteration {done}, past the {run.steps} asked "
                    "for; ask for at least as many to continue it, or start over (--fresh, or delete the folder)"
                )
        except BaseException:
            self._release()
            raise
        if restored is not None and restored[1]:
            run.records[:] = restored[1]
        variables = list(solver.problem.upper_vars) + list(solver.problem.lower_vars)
        self._finite = tf.function(lambda: tensor_ops.all_finite(variables))
        self._saved = self._previous = done

    def on_step_recorded(self, step: int) -> None:
        previous, self._previous = self._previous, step
        if crossed(previous, step, self.every):
            self.save(step)

    def on_fit_stop(self, step: int) -> None:
        self.save(step)

    def on_fit_close(self) -> None:
        if self.checkpoints is not None:
            workers.remove_temporary(self.checkpoints.write_folder, self._strategy)
        self._release()

    def save(self, step: int) -> None:
        """A checkpoint of ``step`` when the state is finite and not on disk already."""
        checkpoints, run = self.checkpoints, self._run
        if checkpoints is None or run is None or self._finite is None:
            raise RuntimeError("BackupAndRestore.save runs inside bl.fit only")
        if step != self._saved and bool(self._finite()):
            try:
                checkpoints.save(step, self._identity, run.records)
            except tf.errors.ResourceExhaustedError:  # a full disk or quota: nothing written is damaged
                raise _disk_full(step, checkpoints) from None
            self._saved = step

    def _run_identity(self, run: FitRun) -> Dict[str, Any]:
        """What every checkpoint stores and a resume must match: ``config`` (else fit's) plus the solver's."""
        if self.config is None:
            return run.config
        identity = run_config(run.solver, self.config)
        if run.config["run"] and run.config != identity:
            raise ValueError("config: bl.fit(config=...) differs from the BackupAndRestore's config; pass it once")
        return identity

    def _own_lock(self) -> Optional[FolderLock]:
        """The folder's lock for this callback to release: none when it shares a lock its caller holds."""
        if self._shared_lock is None:
            return FolderLock(self.checkpoint_dir).acquire()
        if not self._shared_lock.held:
            raise ValueError(f"lock: {self._shared_lock.folder} is not locked by this process; acquire it first")
        refuse_if_locked(self.checkpoint_dir)  # e.g. a standalone bl.fit of another process in the subfolder
        return None

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _disk_full(step: int, checkpoints: RunCheckpoints) -> OSError:
    """A checkpoint write that ran out of disk space (or quota), as the OSError the runners report in one line."""
    kept = f"the earlier checkpoint {checkpoints.latest} is intact" if checkpoints.latest else "no checkpoint was kept"
    return OSError(
        errno.ENOSPC,
        f"no space left for the checkpoint of step {step} ({kept}); free some space and rerun the same command",
        checkpoints.folder,
    )

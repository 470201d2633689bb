"""Callbacks for :func:`bilevel_tf.fit`: logging to CSV and TensorBoard, periodic evaluation, early stop."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import statistics
import time
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, TextIO

import tensorflow as tf

from .files import atomic_write_text

Logs = Dict[str, float]


def crossed(previous: int, step: int, every: int) -> bool:
    """A multiple of ``every`` lies in (previous, step]. ``fit`` with ``steps_per_execution`` k > 1 calls
    ``on_step_end`` once per k steps: periodic work is due at the first call boundary at or after each multiple."""
    return step // every > previous // every


@dataclasses.dataclass
class FitRun:
    """What ``fit`` hands every callback's :meth:`Callback.on_fit_setup`: the run being set up."""

    solver: Any
    #: the run's last step (``fit``'s ``steps``)
    steps: int
    #: the run's configuration, which a checkpoint must agree with (:func:`~bilevel_tf.training.checkpoints.run_config`)
    config: Dict[str, Any]
    #: the history so far; a restored run replaces it with its own
    records: List[Dict[str, Any]]
    #: the data iterators whose position a checkpoint holds, by name (``upper_data``, ``lower_data``)
    data_positions: Dict[str, Any]


class Callback:
    """Base class. ``fit`` calls the hooks below; set ``self.stop_fit = True`` to end the run early."""

    stop_fit = False

    def on_fit_setup(self, run: FitRun) -> None:
        """Called first, before the data sources are positioned and before :meth:`on_history_restored`: the place
        to restore a run (the solver's state, the data positions and ``run.records``, as
        :class:`~bilevel_tf.training.backup.BackupAndRestore` does). What it takes, :meth:`on_fit_close` gives back."""

    def on_fit_close(self) -> None:
        """Called once the loop is over, after an error too (before :meth:`on_fit_end`), for every callback whose
        :meth:`on_fit_setup` returned."""

    def on_fit_begin(self, solver: Any, start_step: int, steps: int) -> None:
        """Called before the first step; the run goes from ``start_step`` (after a resume) to ``steps``."""

    def on_history_restored(self, history: list) -> None:
        """Called before :meth:`on_fit_begin` with the records of the run so far (restored from a checkpoint
        on a resume, else the ``history`` passed to ``fit``), e.g. to continue a clock."""

    def on_step_end(self, step: int, logs: Logs) -> None:
        """``step`` counts completed upper iterations (1-based); ``logs`` holds Python floats and may be
        extended in place (e.g. with evaluation metrics) for the callbacks that follow. With
        ``fit(..., steps_per_execution=k)`` it runs at call boundaries only (every k steps, with the logs
        of the call's last step): use :func:`crossed` for periodic work."""

    def on_step_recorded(self, step: int) -> None:
        """Called after every callback's :meth:`on_step_end`, once ``fit`` has added the step's record to the
        history (when the step is logged): what is saved here resumes with the history up to ``step``."""

    def on_fit_stop(self, step: int) -> None:
        """Called when the loop stops at a step boundary: at ``steps``, on an early stop, or on a first Ctrl-C or
        SIGTERM (not after an error, nor on a second interrupt, which stops mid-step)."""

    def on_fit_end(self, history: list) -> None:
        pass


class Periodic(Callback):
    """Base of callbacks that act every ``every`` steps: :meth:`due` is True at the first ``on_step_end`` at or
    after each multiple of ``every`` (every multiple when ``fit`` runs one step per call)."""

    def __init__(self, every: int):
        self.every = int(every)
        self._previous = 0

    def on_fit_begin(self, solver: Any, start_step: int, steps: int) -> None:
        self._previous = start_step

    def due(self, step: int) -> bool:
        previous, self._previous = self._previous, step
        return crossed(previous, step, self.every)


class LambdaCallback(Callback):
    """A callback from plain functions: ``on_step_end(step, logs)`` and ``on_fit_end(history)``."""

    def __init__(
        self,
        on_step_end: Optional[Callable[[int, Logs], Any]] = None,
        on_fit_end: Optional[Callable[[list], Any]] = None,
    ):
        self._step, self._end = on_step_end, on_fit_end

    def on_step_end(self, step: int, logs: Logs) -> None:
        if self._step is not None:
            self._step(step, logs)

    def on_fit_end(self, history: list) -> None:
        if self._end is not None:
            self._end(history)


class Evaluate(Periodic):
    """Every ``every`` steps (and at the last step) call ``fn() -> dict`` and merge its metrics into the logs,
    so progress bars, CSV files and the returned history all show them. The seconds spent in ``fn`` so far
    (across resumes) go into the logs as ``time_key`` (default ``eval_seconds``; None to leave out), so
    ``seconds - eval_seconds`` is the training time of a curve point."""

    def __init__(
        self, fn: Callable[[], Dict[str, Any]], every: int, prefix: str = "", time_key: Optional[str] = "eval_seconds"
    ):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        super().__init__(every)
        self.fn, self.prefix, self.time_key = fn, prefix, time_key
        self._final_step: Optional[int] = None
        self.seconds = 0.0

    def on_history_restored(self, history: list) -> None:
        if self.time_key is not None:
            self.seconds = next((float(r[self.time_key]) for r in reversed(history) if self.time_key in r), 0.0)

    def on_fit_begin(self, solver: Any, start_step: int, steps: int) -> None:
        super().on_fit_begin(solver, start_step, steps)
        self._final_step = steps

    def on_step_end(self, step: int, logs: Logs) -> None:
        if self.due(step) or step == self._final_step:
            t0 = time.perf_counter()
            for key, value in self.fn().items():
                logs[self.prefix + key] = float(value)
            self.seconds += time.perf_counter() - t0
            if self.time_key is not None:
                logs[self.time_key] = self.seconds


class CSVLogger(Periodic):
    """One row per ``every`` steps in a CSV file. A resumed run continues the file after dropping the rows
    logged after the restored step (a kill past the last checkpoint would otherwise repeat them), and rebuilds
    it from the restored history when it is missing rows of the run so far (deleted, garbled); a run that
    starts at step 0 starts a new file."""

    #: what ``fit`` adds to each history record besides the logs (not a column of the file)
    RECORD_ONLY = ("seconds", "step_seconds")

    def __init__(self, path: str, every: int = 1):
        super().__init__(every)
        self.path = path
        self._file: Optional[TextIO] = None
        self._writer: Optional[csv.DictWriter[str]] = None
        self._keys: Optional[List[str]] = None
        self._restored: list = []

    def on_history_restored(self, history: list) -> None:
        self._restored = list(history)

    def on_fit_begin(self, solver: Any, start_step: int, steps: int) -> None:
        super().on_fit_begin(solver, start_step, steps)
        rows = self._read_rows() if start_step > 0 else []
        kept = rows[:1] + [r for r in rows[1:] if r and (step := _step_of(r)) is not None and step <= start_step]
        expected = self._rows_of_history(start_step)
        if expected and (
            not kept or kept[0][:1] != ["step"] or [_step_of(r) for r in kept[1:]] != [r["step"] for r in expected]
        ):
            # rows are missing (deleted, garbled): the checkpoint's history has them
            keys = ["step"] + [k for k in expected[0] if k not in self.RECORD_ONLY + ("step",)]
            kept = [keys] + [[r.get(k, "") for k in keys] for r in expected]
        if len(kept) <= 1:
            if os.path.exists(self.path):
                os.unlink(self.path)
        elif kept != rows:
            text = io.StringIO(newline="")
            csv.writer(text).writerows(kept)
            atomic_write_text(self.path, text.getvalue())  # a kill mid-write leaves a .tmp_ file the next run removes

    def _read_rows(self) -> list:
        try:
            with open(self.path, newline="") as f:
                return list(csv.reader(f))
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError, csv.Error):
            return []  # unreadable: rebuilt from the history

    def _rows_of_history(self, start_step: int) -> list:
        """The restored records this logger would have written (its steps up to ``start_step``)."""
        rows, previous = [], 0
        for record in self._restored:
            step = record.get("step")
            if not isinstance(step, int) or not previous < step <= start_step:
                continue
            if crossed(previous, step, self.every):
                rows.append(record)
            previous = step
        return rows

    def on_step_end(self, step: int, logs: Logs) -> None:
        if not self.due(step):
            return
        row = {"step": step, **logs}
        if self._writer is None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            exists = os.path.exists(self.path) and os.path.getsize(self.path) > 0
            if exists:
                with open(self.path, newline="") as f:
                    header = next(csv.reader(f), None)
                self._keys = header or list(row)
            else:
                self._keys = list(row)
            self._file = open(self.path, "a", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=self._keys, extrasaction="ignore")
            if not exists:
                self._writer.writeheader()
        self._writer.writerow(row)
        assert self._file is not None  # opened with the writer
        self._file.flush()

    def on_fit_end(self, history: list) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None


def _step_of(row: list) -> Optional[int]:
    try:
        return int(float(row[0]))
    except (ValueError, IndexError):
        return None


def _scalar_metadata() -> Any:
    """What marks a summary as a scalar for TensorBoard's scalars dashboard. ``tf.summary.scalar`` needs the
    tensorboard package installed only to build this; writing it with ``tf.summary.write`` does not."""
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))


class TensorBoard(Periodic):
    """Write every log value as a scalar summary (viewing the logs needs ``pip install tensorboard``;
    writing them does not)."""

    def __init__(self, log_dir: str, every: int = 1):
        super().__init__(every)
        self.log_dir = log_dir
        self._writer: Optional[tf.summary.SummaryWriter] = None
        self._metadata: Any = None

    def on_step_end(self, step: int, logs: Logs) -> None:
        if not self.due(step):
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
            self._metadata = _scalar_metadata()
        with self._writer.as_default():
            for key, value in logs.items():
                tf.summary.write(key, tf.constant(value, tf.float32), step=step, metadata=self._metadata)

    def on_fit_end(self, history: list) -> None:
        if self._writer is not None:
            self._writer.flush()


class DivergenceWarning(RuntimeWarning):
    """A loss of a running fit has risen far above its best value: the run looks divergent."""


class DivergenceWatch(Callback):
    """Warns once per loss (``bl.fit`` adds it to every run) when ``upper_loss`` or ``lower_loss`` rises more than
    ``factor`` times its typical magnitude (the median magnitude of its first ``window`` values) above its best
    value: the usual sign of a learning rate far too large, e.g. a loss of 1e5 where it started near 1. Batch to
    batch noise never comes near that. A warning only: the run goes on (a NaN/inf stops it)."""

    def __init__(self, keys: Sequence[str] = ("upper_loss", "lower_loss"), factor: float = 100.0, window: int = 20):
        self.keys, self.factor, self.window = tuple(keys), float(factor), int(window)
        self._early: Dict[str, list] = {k: [] for k in self.keys}  # the first `window` magnitudes
        self._best: Dict[str, tuple] = {}  # key -> (value, step)
        self._warned: set = set()

    def on_history_restored(self, history: list) -> None:
        for record in history:
            self._see(int(record.get("step", 0)), record)

    def on_step_end(self, step: int, logs: Logs) -> None:
        for key in self._see(step, logs):
            best, best_step = self._best[key]
            warnings.warn(
                f"{key} rose from {best:.4g} (step {best_step}) to {logs[key]:.4g} (step {step}): the run "
                "looks divergent; lower the learning rates",
                DivergenceWarning,
                stacklevel=2,
            )

    def _see(self, step: int, logs: Mapping[str, Any]) -> list:
        """Track the typical magnitude and the best value; the keys that just ran away (each reported once)."""
        runaway = []
        for key in self.keys:
            value = logs.get(key)
            if not isinstance(value, (int, float)) or value != value:  # absent or NaN (fit stops on NaN itself)
                continue
            early = self._early[key]
            if len(early) < self.window:
                early.append(abs(float(value)))
            best, best_step = self._best.get(key, (float(value), step))
            if value < best:
                best, best_step = float(value), step
            self._best[key] = (best, best_step)
            scale = max(statistics.median(early), 1e-12)
            if len(early) >= 3 and value > best + self.factor * scale and key not in self._warned:
                self._warned.add(key)
                runaway.append(key)
        return runaway


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` checks."""

    def __init__(self, monitor: str, patience: int, mode: str = "min", min_delta: float = 0.0):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.sign, self.min_delta = (
            monitor,
            int(patience),
            (1.0 if mode == "min" else -1.0),
            float(min_delta),
        )
        self.best, self.wait = float("inf"), 0

    def on_step_end(self, step: int, logs: Logs) -> None:
        if self.monitor not in logs:
            return
        value = self.sign * logs[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stop_fit = True

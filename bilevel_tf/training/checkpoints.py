"""The run state ``bl.fit`` checkpoints, and the rules that keep a run folder honest.

A checkpoint holds the solver (variables, optimizer slots, schedule), the data iterators' positions, and a
small :class:`RunState`: the run's configuration (the solver's class and ``get_config()`` plus whatever the
caller describes, e.g. every runner flag) and its history so far. So a resumed run

- refuses to continue under another configuration (:class:`ResumeMismatchError`, naming the differences),
- returns the history of the whole run, not just of the part after the restart,
- falls back to the previous checkpoint when the latest one is damaged (with a warning), and refuses with
  :class:`CheckpointError` when no usable one is left, instead of silently starting over.

:class:`FolderLock` (a second process is refused, a killed one's lock is free at once),
:func:`remove_partial_files` and the configuration comparison live in :mod:`bilevel_tf.training.folders`, which needs
no TensorFlow.
"""

from __future__ import annotations

import glob
import json
import os
import re
import warnings
import zlib
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import tensorflow as tf

# the folder rules need no TensorFlow (a runner checks its folder before loading it)
from .folders import CheckpointError, ResumeMismatchError, config_differences


# ---------------------------------------------------------------------------------------------- run state
class RunState(tf.Module):
    """Configuration and history as (compressed JSON) string variables, saved with every checkpoint."""

    def __init__(self):
        super().__init__(name="run_state")
        self.config = tf.Variable(b"", dtype=tf.string, trainable=False, name="config")
        self.history = tf.Variable(b"", dtype=tf.string, trainable=False, name="history")

    def store(self, config: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> None:
        self.config.assign(_pack(config))
        self.history.assign(_pack(list(history), sort_keys=False))  # column order for a rebuilt history.csv

    def loaded_history(self) -> List[Dict[str, Any]]:
        return _unpack(self.history.numpy()) or []


def _pack(value: Any, sort_keys: bool = True) -> bytes:
    return zlib.compress(json.dumps(value, sort_keys=sort_keys, default=_json_default).encode())


def _unpack(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob).decode()) if blob else None


def _json_default(value: Any) -> Any:
    if hasattr(value, "numpy"):
        value = value.numpy()
    if hasattr(value, "tolist"):
        return value.tolist()
    return repr(value)


def run_config(solver: Any, config: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """What a checkpoint must agree with: the solver's class and options, and the caller's description."""
    return json.loads(
        json.dumps(
            {"solver_class": type(solver).__name__, "solver": solver.get_config(), "run": dict(config or {})},
            sort_keys=True,
            default=_json_default,
        )
    )


def _short(differences: List[str], limit: int = 6) -> str:
    # the solver's class and the caller's settings (e.g. flags) first: they explain the rest
    rank = {"solver_class": 0, "run": 1}
    differences = sorted(differences, key=lambda d: rank.get(d.split(":")[0].split(".")[0], 2))
    shown = "; ".join(d.replace("run.", "", 1) if d.startswith("run.") else d for d in differences[:limit])
    return shown + (f"; and {len(differences) - limit} more" if len(differences) > limit else "")


# ---------------------------------------------------------------------------------------------- checkpoints
class RunCheckpoints:
    """A ``tf.train.CheckpointManager`` over ``trackables`` plus the :class:`RunState`, with safe restore."""

    def __init__(
        self, folder: str, trackables: Mapping[str, Any], max_to_keep: int = 3, write_folder: Optional[str] = None
    ):
        """Restore from ``folder``; save to ``write_folder`` (default ``folder``; a multi-worker run's
        non-chief workers save to a temporary folder, see :mod:`bilevel_tf.training.workers`)."""
        self.folder = folder
        self.write_folder = write_folder or folder
        self.state = RunState()
        self.checkpoint = tf.train.Checkpoint(run_state=self.state, **trackables)
        # checkpoints of an earlier version of bl.fit have no run state
        self._legacy = tf.train.Checkpoint(**trackables)
        try:
            self.manager = tf.train.CheckpointManager(self.checkpoint, self.write_folder, max_to_keep=max_to_keep)
        except ValueError:  # an empty or invalid state file: set it aside, the checkpoint files decide (candidates)
            state = os.path.join(self.write_folder, "checkpoint")
            if not os.path.isfile(state):
                raise
            os.replace(state, state + ".unreadable")
            self.manager = tf.train.CheckpointManager(self.checkpoint, self.write_folder, max_to_keep=max_to_keep)

    def candidates(self) -> List[str]:
        """Checkpoint prefixes on disk, newest first (from the files, so a damaged state file does not hide them)."""
        if self.write_folder == self.folder:
            listed = list(reversed(self.manager.checkpoints))
        else:  # a non-chief worker: the chief's state file decides, so every worker restores the same step
            listed = _listed_in_state_file(self.folder)
        found = sorted(
            glob.glob(os.path.join(self.folder, "ckpt-*.index")),
            key=lambda p: int(re.search(r"ckpt-(\d+)\.index$", p).group(1)),
            reverse=True,
        )
        on_disk = [p[: -len(".index")] for p in found]
        if on_disk and not listed and self.write_folder == self.folder:
            warnings.warn(
                f"{os.path.join(self.folder, 'checkpoint')} is missing or unreadable; resuming from the "
                "checkpoint files themselves",
                stacklevel=3,
            )
        return listed + [p for p in on_disk if p not in listed]

    def restore(self, config: Dict[str, Any]) -> Optional[Tuple[str, List[Dict[str, Any]]]]:
        """Restore the newest usable checkpoint after checking its configuration; returns (path, history) or
        None when the folder holds no checkpoint. Raises ResumeMismatchError or CheckpointError."""
        candidates = self.candidates()
        failures = []
        for path in candidates:
            try:
                saved = _saved_config(path)
            except Exception as e:  # a damaged file fails in many ways (OpError, IndexError, zlib, JSON)
                failures.append(f"{os.path.basename(path)}: {_first_line(e)}")
                continue
            if saved is not None:
                differences = config_differences(saved, config)
                if differences:
                    raise ResumeMismatchError(
                        f"{self.folder} holds a checkpoint of another configuration ({_short(differences)}); "
                        "rerun with the same settings to resume it, or start over (--fresh, or delete the folder)"
                    )
            try:
                target = self.checkpoint if saved is not None else self._legacy
                target.restore(path).assert_existing_objects_matched()
                history = self.state.loaded_history() if saved is not None else []
            except Exception as e:
                failures.append(f"{os.path.basename(path)}: {_first_line(e)}")
                continue
            if failures:
                warnings.warn(
                    f"skipped damaged checkpoint(s) in {self.folder} ({'; '.join(failures)}); "
                    f"resuming from {os.path.basename(path)}",
                    stacklevel=3,
                )
            return path, history
        if candidates:
            raise CheckpointError(
                f"no usable checkpoint in {self.folder} ({'; '.join(failures)}); "
                "start over with --fresh (or delete the folder)"
            )
        return None

    def save(self, step: int, config: Dict[str, Any], history: Sequence[Mapping[str, Any]]) -> str:
        self.state.store(config, history)
        return self.manager.save(checkpoint_number=step)

    @property
    def latest(self) -> Optional[str]:
        return self.manager.latest_checkpoint


def _listed_in_state_file(folder: str) -> List[str]:
    """Checkpoint prefixes named by ``folder``'s ``checkpoint`` state file, newest first ([] if unreadable)."""
    try:
        state = tf.train.get_checkpoint_state(folder)
    except Exception:  # a garbled state file: the files on disk decide
        return []
    if state is None:
        return []
    return [os.path.join(folder, os.path.basename(p)) for p in reversed(state.all_model_checkpoint_paths)]


def _saved_config(path: str) -> Optional[Dict[str, Any]]:
    """The configuration stored in a checkpoint, read without restoring anything (None: no run state)."""
    reader = tf.train.load_checkpoint(path)
    keys = [k for k in reader.get_variable_to_shape_map() if k.startswith("run_state/config/")]
    if not keys:
        return None
    return _unpack(reader.get_tensor(keys[0]))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:200]

"""The output folder of one run (``--out``): one process at a time (a lock), one record (run.json: the
configuration, budget, outputs and the command line that produced it), nothing half-written; a finished run is
reused, a larger budget continues it. TensorFlow-free until the run starts
(:func:`bilevel_tf.runner.experiment.start_tensorflow`)."""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence

from . import flag_roles
from .experiment import checkpoint_dir, start_tensorflow
from .results_file import config_of
from ..training.files import atomic_write_text
from ..training.folders import (
    RECORD,
    FolderLock,
    ResumeMismatchError,
    budget_excess,
    config_differences,
    delete_outputs,
    read_record,
    remove_partial_files,
)

if TYPE_CHECKING:  # TensorFlow is imported when a run starts, not with this module
    from ..training.backup import BackupAndRestore

#: the checkout the runner scripts live in (bilevel_tf/runner/../..): commands name their script relative to it
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: flags that change where, how loudly or how a run works, not what it computes: free to differ on a rerun
NON_RESULT_FLAGS = flag_roles.flags_with(flag_roles.OUTPUT, flag_roles.EXECUTION)
#: how long to run: a rerun may raise them (continue the run further); a finished run counts as finished only
#: for the same values, and smaller ones than it ran are refused
BUDGET_FLAGS = flag_roles.flags_with(flag_roles.BUDGET)


def command_line(program: str, flags: Sequence[str]) -> List[str]:
    """The command line run.json records: ``program`` (the runner script) relative to the checkout when it is
    inside it (the interpreter and the checkout's place may differ between machines), then ``flags`` without
    ``--out`` and its value (the record lives in that folder, which may be named ./x or /abs/x, or be a copy)."""
    script = os.path.abspath(program)
    inside = os.path.relpath(script, REPO_ROOT)
    kept: List[str] = []
    skip = False
    for flag in flags:
        if skip or flag.startswith("--out="):
            skip = False
            continue
        skip = flag == "--out"
        if not skip:
            kept.append(flag)
    return [script if inside.startswith(os.pardir) else inside, *kept]


class Run:
    """The output folder of one run: one process at a time, one configuration, nothing half-written.

    Open it after the data are loaded and the flags checked, and before anything needs TensorFlow (opening
    calls :func:`start_tensorflow`, so a refused or finished run answers at once)::

        with run_folder.Run(args, data=experiment.fingerprint(y_noisy)) as run:
            if run.complete:            # rerun of a finished run: outputs left as they are
                return run.metrics
            ... bl.fit(..., callbacks=[..., run.backup()]) ...; results_file.write_results(...)

    Opening locks ``--out`` (a second run is refused; a killed run's lock is free), removes what a kill left
    half-written, and with ``--fresh`` deletes what the folder's record says the run wrote (:func:`output_path`
    records each file; a user's files stay). ``run.json`` records the configuration (every flag but
    ``NON_RESULT_FLAGS``, plus the keyword arguments, e.g. a data fingerprint), the budget, the outputs and
    the command (:func:`command_line` of this process's command line, the last one that ran the run: a rerun
    that finds it complete leaves it; a runner's ``main`` called from another program records that program's),
    which :mod:`bilevel_tf.paper.reproduce` compares with its own; a folder
    holding another configuration is refused with :class:`~bilevel_tf.training.folders.ResumeMismatchError` naming the
    differences. The ``BUDGET_FLAGS`` may grow (a rerun continues the run further); a finished run is reused
    when they are the same and refused when they are smaller (its results would be mislabelled). In a
    multi-worker run only the chief (``chief=True``) locks and writes the folder; the other workers check the
    same configuration and read it. :meth:`backup` gives ``bl.fit`` its checkpoints under this folder's lock
    and identity, so a run holds one lock and one record.
    """

    def __init__(self, args: argparse.Namespace, *, chief: bool = True, **extra: Any):
        self.args, self.folder, self.chief = args, args.out, chief
        everything = config_of(args, **extra)
        self.config = {k: v for k, v in everything.items() if k not in NON_RESULT_FLAGS | BUDGET_FLAGS}
        self.budget = {k: v for k, v in everything.items() if k in BUDGET_FLAGS}
        self.command = command_line(sys.argv[0], sys.argv[1:])
        self.complete, self.metrics = False, None
        self.outputs: List[str] = []
        self._lock = None

    def __enter__(self) -> "Run":
        try:
            if self.chief:  # a multi-worker run's other workers only read the chief's folder
                self._lock = FolderLock(self.folder).acquire()
                remove_partial_files(self.folder, checkpoint_temps=False)
                for folder in sorted(glob.glob(os.path.join(self.folder, "checkpoints", "*"))):
                    remove_partial_files(folder)
                if getattr(self.args, "fresh", False):
                    delete_outputs(self.folder)
            self._check()
            if not self.complete:
                self.args._run = self  # output_path() records the run's files through it
                start_tensorflow(self.args)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _check(self) -> None:
        """Compare run.json, record this configuration (chief only) and find out whether the run is complete."""
        saved = read_record(self.folder)  # without it a results.json cannot be matched to its configuration
        if saved is not None:
            differences = config_differences(saved["config"], self.config)
            if differences:
                raise ResumeMismatchError(
                    f"{self.folder} holds a run of another configuration ({'; '.join(differences[:6])}); rerun "
                    "with the same flags to resume or reuse it, pass --fresh to start over, or choose another --out"
                )
            self.outputs = saved["outputs"]
            self._check_results()
            if self.complete and saved.get("command"):  # reused as it is: the command that ran it stays
                self.command = saved["command"]
        if self.chief:
            self._write_record()

    def _check_results(self) -> None:
        """A results.json of this configuration: complete for the same budget, refused for a smaller one."""
        path = os.path.join(self.folder, "results.json")
        finished = _read_results(path)
        if finished is None:
            return  # none, or damaged: the run is redone (its checkpoints make that cheap)
        mismatch = [
            f"{k}: {finished['config'][k]!r} -> {v!r}"
            for k, v in self.config.items()
            if k in finished["config"] and finished["config"][k] != v
        ]
        if mismatch:
            print(
                f"[{self.args.experiment}] {path} does not hold this configuration's results "
                f"({'; '.join(mismatch[:3])}); the run is finished again and rewrites it",
                flush=True,
            )
            return
        excess = budget_excess(finished["config"], self.budget)
        if excess:
            raise ResumeMismatchError(
                f"{self.folder} holds the finished run of this configuration with a larger budget ("
                f"{'; '.join(excess)}); rerun with its budget (or a larger one) to reuse or continue it, pass "
                "--fresh to start over with this one, or choose another --out"
            )
        self.complete = all(finished["config"].get(k) == v for k, v in self.budget.items())
        if self.complete:
            self.metrics = finished["metrics"]
            print(
                f"[{self.args.experiment}] {self.folder} already holds the finished run of this configuration "
                f"(results.json); nothing to do (--fresh redoes it)",
                flush=True,
            )

    def record_output(self, name: str) -> None:
        """Add ``name`` (an entry of the folder) to the files and folders run.json says this run wrote."""
        if self.chief and name not in self.outputs:
            self.outputs.append(name)
            self._write_record()

    def _write_record(self) -> None:
        atomic_write_text(
            os.path.join(self.folder, RECORD),
            json.dumps(
                {"config": self.config, "budget": self.budget, "outputs": self.outputs, "command": self.command},
                indent=1,
                sort_keys=True,
            ),
        )

    def backup(self, phase: str = "bilevel") -> "BackupAndRestore":
        """``bl.fit``'s checkpoints of ``phase`` in ``<out>/checkpoints/<phase>`` (every ``--checkpoint-every``
        steps) under this run's lock (no second one) and identity: run.json's config, to which each checkpoint
        adds only the solver's class and options. Call it inside the open run; pass it in ``callbacks=``."""
        from ..training.backup import BackupAndRestore

        if self.chief and self._lock is None:
            raise RuntimeError("Run.backup: open the run first (with run_folder.Run(args) as run: ...)")
        return BackupAndRestore(
            checkpoint_dir(self.args, phase),
            every=self.args.checkpoint_every,
            lock=self._lock,
            config=self.config,
        )

    def __exit__(self, *exc) -> None:
        if getattr(self.args, "_run", None) is self:
            del self.args._run
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @classmethod
    def once(cls, args: argparse.Namespace, body: Callable[["Run"], Any], **extra: Any) -> Any:
        """``body(run)`` inside the open folder, unless the run is already complete (then its metrics)."""
        with cls(args, **extra) as run:
            return run.metrics if run.complete else body(run)


def _read_results(path: str) -> Optional[Dict[str, Any]]:
    """A results.json with its "config" and "metrics" objects, or None (missing or damaged)."""
    try:
        finished = json.loads(Path(path).read_text())
        if isinstance(finished["config"], dict) and isinstance(finished["metrics"], dict):
            return finished
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None

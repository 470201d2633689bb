"""A runner's run folder has one lock and one identity record: ``Run.backup()`` gives ``bl.fit`` its checkpoints
under the run folder's lock (no second ``.lock`` under ``--out``) and run.json's config (plus the solver's) as
the identity a resume must match; a second process is still refused, on the folder and on the checkpoints."""

import argparse
import subprocess
import sys

import keras
import pytest
from runner_utils import load_runner

import bilevel_tf as bl
from bilevel_tf.runner import experiment, run_folder
from bilevel_tf.training.backup import BackupAndRestore
from bilevel_tf.training.folders import FolderLock, FolderLockedError, ResumeMismatchError
from test_fit import _importance_problem

SECOND_OPENER = "import sys\nfrom bilevel_tf.training.folders import FolderLock\nFolderLock(sys.argv[1]).acquire()"


def _refused_elsewhere(folder) -> str:
    """What another process taking ``folder``'s lock prints (its stderr's last line; '' when it got it)."""
    done = subprocess.run([sys.executable, "-c", SECOND_OPENER, str(folder)], capture_output=True, text=True)
    return done.stderr.strip().splitlines()[-1] if done.returncode else ""


class _LockWatch(bl.Callback):
    """At every recorded step: the .lock files under ``out`` and whether another process may lock ``out`` and
    the checkpoint folder."""

    def __init__(self, out):
        self.out, self.seen = out, []

    def on_step_recorded(self, step: int) -> None:
        locks = sorted(str(p.relative_to(self.out)) for p in self.out.rglob(".lock"))
        ckpt = self.out / "checkpoints" / "bilevel"
        self.seen.append((locks, _refused_elsewhere(self.out), _refused_elsewhere(ckpt)))


def _args(out, **flags):
    defaults = dict(out=str(out), experiment="one_lock", seed=0, deterministic=False, checkpoint_every=2, fresh=False)
    return argparse.Namespace(**{**defaults, **flags})


def _solver(problem, inner_steps=2):
    return bl.Penalty(
        problem,
        upper_optimizer=keras.optimizers.Adam(0.05),
        lower_optimizer=keras.optimizers.Adam(0.01),
        inner_steps=inner_steps,
    )


def _fit_in_run(out, steps, inner_steps=2, watch=None, **flags):
    with run_folder.Run(_args(out, **flags), data="toy") as run:
        problem, up, lo = _importance_problem()
        solver = _solver(problem, inner_steps)
        history = bl.fit(solver, up, lo, steps=steps, verbose=0, callbacks=[run.backup(), *([watch] if watch else [])])
        return history, int(solver.iterations.numpy())


def test_a_run_with_checkpoints_holds_one_lock_and_refuses_a_second_process(tmp_path):
    out = tmp_path / "run"
    watch = _LockWatch(out)
    _, done = _fit_in_run(out, 4, watch=watch)
    assert done == 4 and len(watch.seen) == 4
    for locks, on_folder, on_checkpoints in watch.seen:
        assert locks == [".lock"]  # the run folder's only: bl.fit's checkpoints took none of their own
        assert "in use by process" in on_folder and "in use by process" in on_checkpoints
    assert (out / "checkpoints" / "bilevel" / "ckpt-4.index").exists()
    assert not list(out.rglob(".lock"))  # released at the end
    assert _refused_elsewhere(out) == ""  # and free for the next run


def test_the_checkpoints_resume_under_the_run_record_and_refuse_another_solver(tmp_path):
    out = tmp_path / "run"
    _fit_in_run(out, 3)
    history, done = _fit_in_run(out, 5)  # a larger budget continues the run
    assert done == 5 and [r["step"] for r in history] == [1, 2, 3, 4, 5]
    with pytest.raises(ResumeMismatchError, match=r"solver\.inner_steps: 2 -> 3"):
        _fit_in_run(out, 6, inner_steps=3)  # run.json agrees; the solver's options in the checkpoint do not
    with pytest.raises(ResumeMismatchError, match="seed: 0 -> 1"):
        _fit_in_run(out, 6, seed=1)  # refused by the one record before anything runs
    assert not list(out.rglob(".lock"))


def test_a_backup_needs_a_held_lock_on_a_folder_containing_its_own(tmp_path):
    lock = FolderLock(str(tmp_path / "run"))
    with pytest.raises(ValueError, match="lock: .* does not contain checkpoint_dir"):
        BackupAndRestore(str(tmp_path / "elsewhere"), lock=lock)
    backup = BackupAndRestore(str(tmp_path / "run" / "checkpoints" / "bilevel"), lock=lock)  # not acquired
    problem, up, lo = _importance_problem()
    with pytest.raises(ValueError, match="lock: .* is not locked by this process"):
        bl.fit(_solver(problem), up, lo, steps=1, verbose=0, callbacks=[backup])


def test_a_standalone_fit_inside_a_folder_another_process_locks_is_refused(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", SECOND_OPENER + "\nprint('locked', flush=True)\nsys.stdin.read()", str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        problem, up, lo = _importance_problem()
        with pytest.raises(FolderLockedError, match=f"{tmp_path} is in use by process {holder.pid}"):
            bl.fit(_solver(problem), up, lo, steps=1, verbose=0, checkpoint_dir=str(tmp_path / "ckpt"))
        assert not (tmp_path / "ckpt" / ".lock").exists()  # the refused lock left no file behind
    finally:
        holder.communicate("")
    bl.fit(_solver(problem), up, lo, steps=1, verbose=0, checkpoint_dir=str(tmp_path / "ckpt"))  # free again


@pytest.mark.slow
def test_a_runner_holds_one_lock_while_it_checkpoints(tmp_path, monkeypatch):
    out = tmp_path / "run"
    seen = []
    save = BackupAndRestore.save

    def watched_save(self, step):
        seen.append((sorted(str(p.relative_to(out)) for p in out.rglob(".lock")), _refused_elsewhere(out)))
        save(self, step)

    monkeypatch.setattr(BackupAndRestore, "save", watched_save)
    runner = load_runner("data_poisoning/untargeted/test_bilevel_poisoning_untargeted.py")
    experiment.run_main(runner.main, ["--smoke", "--out", str(out), "--verbose", "0"])
    assert seen and all(locks == [".lock"] and "in use by process" in refused for locks, refused in seen)
    assert (out / "results.json").exists() and not list(out.rglob(".lock"))

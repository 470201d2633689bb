"""Checkpointing is a callback: ``bl.BackupAndRestore`` passed in ``callbacks=`` saves and resumes a run exactly
as ``bl.fit(..., checkpoint_dir=...)`` does (which builds one), and the two cannot be combined."""

import os

import keras
import numpy as np
import pytest

import bilevel_tf as bl
from test_fit import _importance_problem

TIMINGS = ("seconds", "step_seconds")


def _solver(problem):
    return bl.Penalty(
        problem, upper_optimizer=keras.optimizers.Adam(0.05), lower_optimizer=keras.optimizers.Adam(0.01), inner_steps=2
    )


def _interrupted_then_resumed(folder, explicit, per_call):
    """Four steps, then a new process's solver continues to seven: the resumed history and final variables."""
    options = dict(steps_per_execution=per_call, verbose=0)

    def checkpointing():
        if explicit:
            return dict(callbacks=[bl.BackupAndRestore(str(folder), every=2, max_to_keep=2)])
        return dict(checkpoint_dir=str(folder), checkpoint_every=2, max_to_keep=2)

    problem, up, lo = _importance_problem()
    bl.fit(_solver(problem), up, lo, steps=4, **options, **checkpointing())
    problem, up, lo = _importance_problem()
    solver = _solver(problem)
    history = bl.fit(solver, up, lo, steps=7, **options, **checkpointing())
    records = [{k: v for k, v in r.items() if k not in TIMINGS} for r in history]
    values = [np.array(v) for v in list(problem.upper_vars) + list(problem.lower_vars)]
    return records, values, int(solver.iterations.numpy()), sorted(os.listdir(folder))


@pytest.mark.parametrize("per_call", [1, 3])
def test_the_callback_in_callbacks_resumes_like_checkpoint_dir(tmp_path, per_call):
    by_dir = _interrupted_then_resumed(tmp_path / "by_dir", explicit=False, per_call=per_call)
    by_callback = _interrupted_then_resumed(tmp_path / "by_callback", explicit=True, per_call=per_call)
    records, values, iterations, files = by_callback
    # calls end on multiples of k and at each fit's steps: with k = 3, steps 1-3, 4 | 5-6, 7
    logged = {1: [1, 2, 3, 4, 5, 6, 7], 3: [3, 4, 6, 7]}[per_call]
    assert iterations == 7 and [r["step"] for r in records] == logged
    assert records == by_dir[0]  # the restored history of steps 1-4 included
    for a, b in zip(values, by_dir[1]):
        np.testing.assert_array_equal(a, b)  # bit for bit
    assert files == by_dir[3] and "ckpt-7.index" in files  # the same checkpoints, the last at the end

    problem, up, lo = _importance_problem()  # and both equal the run that was never interrupted
    solver = _solver(problem)
    bl.fit(solver, up, lo, steps=7, steps_per_execution=per_call, verbose=0)
    for a, b in zip(values, [np.array(v) for v in list(problem.upper_vars) + list(problem.lower_vars)]):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_dir_and_a_backup_callback_together_are_refused(tmp_path):
    problem, up, lo = _importance_problem()
    backup = bl.BackupAndRestore(str(tmp_path / "a"))
    with pytest.raises(ValueError, match="checkpoint_dir or one BackupAndRestore in callbacks"):
        bl.fit(_solver(problem), up, lo, steps=2, checkpoint_dir=str(tmp_path / "b"), callbacks=[backup], verbose=0)
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        bl.BackupAndRestore(str(tmp_path), every=0)

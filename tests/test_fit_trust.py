"""bl.fit keeps a run whole and refuses what it cannot honour: configuration checks on resume, damaged
checkpoints, locks, leftovers of a kill, CSV files across resumes, unusable variables and learning rates."""
import glob
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf import checkpoints
from quadratic import Quadratic


U0 = [0.3, -0.5, 0.8]


def _penalty(q, **kwargs):
    return bl.Penalty(q.problem(u0=U0), upper_optimizer=keras.optimizers.Adam(0.01),
                      lower_optimizer=keras.optimizers.Adam(0.01), **{"inner_steps": 2, **kwargs})


def _run(tmp_path, steps, make=_penalty, **fit_kwargs):
    q = Quadratic()
    solver = make(q)
    history = bl.fit(solver, steps=steps, checkpoint_dir=str(tmp_path), checkpoint_every=2, verbose=0, **fit_kwargs)
    return q, solver, history


def test_resume_under_another_configuration_is_refused(tmp_path):
    _run(tmp_path, 4, config={"noise": 0.25})
    with pytest.raises(checkpoints.ResumeMismatchError, match=r"solver.inner_steps: 2 -> 3.*--fresh"):
        _run(tmp_path, 6, make=lambda q: _penalty(q, inner_steps=3), config={"noise": 0.25})
    with pytest.raises(checkpoints.ResumeMismatchError, match=r"noise: 0.25 -> 0.5"):
        _run(tmp_path, 6, config={"noise": 0.5})
    with pytest.raises(checkpoints.ResumeMismatchError, match=r"solver_class: 'Penalty' -> 'GD'"):
        _run(tmp_path, 6, make=lambda q: bl.GD(q.problem(u0=U0), inner_steps=2), config={"noise": 0.25})
    with pytest.raises(checkpoints.ResumeMismatchError, match=r"learning_rate"):
        _run(tmp_path, 6, make=lambda q: bl.Penalty(q.problem(u0=U0), upper_optimizer=keras.optimizers.Adam(0.1),
                                                   lower_optimizer=keras.optimizers.Adam(0.01), inner_steps=2),
             config={"noise": 0.25})
    # execution options may change: XLA on resume is fine
    _, solver, history = _run(tmp_path, 6, make=lambda q: _penalty(q, jit_compile=True), config={"noise": 0.25})
    assert int(solver.iterations.numpy()) == 6 and [r["step"] for r in history] == [1, 2, 3, 4, 5, 6]


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(max(1, os.path.getsize(path) // 3))


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    _, _, full = _run(tmp_path / "reference", 6)
    _run(tmp_path / "run", 4)  # checkpoints 2 and 4
    for data in glob.glob(str(tmp_path / "run" / "ckpt-4.data-*")):
        _truncate(data)
    with pytest.warns(UserWarning, match="skipped damaged checkpoint.*ckpt-4.*resuming from ckpt-2"):
        q, solver, history = _run(tmp_path / "run", 6)
    assert [r["step"] for r in history] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([r["upper_loss"] for r in history], [r["upper_loss"] for r in full], rtol=1e-6)


def test_no_usable_checkpoint_is_refused_not_restarted(tmp_path):
    _run(tmp_path, 4)
    for data in glob.glob(str(tmp_path / "ckpt-*.data-*")):
        _truncate(data)
    with pytest.raises(checkpoints.CheckpointError, match="no usable checkpoint.*--fresh"):
        _run(tmp_path, 6)


def test_a_garbled_state_file_does_not_restart_from_zero(tmp_path):
    _run(tmp_path, 4)
    (tmp_path / "checkpoint").write_text("garbage {{{")
    with pytest.warns(UserWarning, match="missing or unreadable"):
        _, solver, history = _run(tmp_path, 6)
    assert [r["step"] for r in history] == [1, 2, 3, 4, 5, 6]


def test_lock_refuses_a_live_owner_and_takes_over_a_dead_one(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        lock = tmp_path / ".lock"
        import socket
        lock.write_text(f"{socket.gethostname()} {live.pid}")
        with pytest.raises(checkpoints.FolderLockedError, match=f"in use by process {live.pid}"):
            _run(tmp_path, 2)
        lock.write_text(f"{socket.gethostname()} {dead.pid}")
        _run(tmp_path, 2)  # stale: taken over
        assert not lock.exists()  # released at the end
    finally:
        live.kill()
        live.wait()


def test_leftovers_of_a_kill_are_removed(tmp_path):
    (tmp_path / "ckpt-3_temp").mkdir()
    (tmp_path / "ckpt-3_temp" / "part").write_text("x")
    (tmp_path / ".tmp_results.json").write_text("")
    _run(tmp_path, 2)
    assert not (tmp_path / "ckpt-3_temp").exists() and not (tmp_path / ".tmp_results.json").exists()


def test_csv_keeps_one_row_per_step_across_a_resume_and_restarts_when_fresh(tmp_path):
    csv_path = tmp_path / "history.csv"
    _run(tmp_path / "ck", 3, csv_path=str(csv_path))  # checkpoint at 2 and at the end (3)
    # a kill after step 3 but before any checkpoint past 2: simulate by removing checkpoint 3
    for f in glob.glob(str(tmp_path / "ck" / "ckpt-3*")):
        os.unlink(f)
    (tmp_path / "ck" / "checkpoint").unlink()
    _run(tmp_path / "ck", 5, csv_path=str(csv_path))
    steps = [int(line.split(",")[0]) for line in csv_path.read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4, 5]
    _run(tmp_path / "other", 2, csv_path=str(csv_path))  # a new run from step 0 replaces the file
    steps = [int(line.split(",")[0]) for line in csv_path.read_text().splitlines()[1:]]
    assert steps == [1, 2]


@pytest.mark.parametrize("method", ["penalty", "approxgrad", "rmd", "gd", "vpbgd", "gpbgd"])
def test_variables_no_loss_reaches_are_refused(method):
    q = Quadratic()
    p = q.problem()
    stray = tf.Variable(tf.zeros([2]), name="stray")
    upper = bl.BilevelProblem(p.upper_loss, p.lower_loss, [q.u, stray], [q.v])
    with pytest.raises(ValueError, match=r"upper_vars \['stray.*not used by upper_loss nor lower_loss"):
        bl.make_solver(method, upper, inner_steps=2).step()
    lower = bl.BilevelProblem(p.upper_loss, p.lower_loss, [q.u], [q.v, stray])
    with pytest.raises(ValueError, match=r"lower_vars \['stray.*not used by lower_loss"):
        bl.make_solver(method, lower, inner_steps=2).step()


def test_half_precision_variables_policies_and_bad_learning_rates_are_refused():
    q = Quadratic()
    p = q.problem()
    half = tf.Variable(tf.zeros([3], tf.float16), name="half")
    with pytest.raises(ValueError, match=r"is float16: .*float32 or float64"):
        bl.BilevelProblem(p.upper_loss, p.lower_loss, [half], [q.v])
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        with pytest.raises(ValueError, match="dtype policy is 'mixed_float16'"):
            bl.BilevelProblem(p.upper_loss, p.lower_loss, [q.u], [q.v])
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    for lr in (float("nan"), float("inf"), 0.0):
        with pytest.raises(ValueError, match="lower_optimizer has learning rate .* finite number > 0"):
            bl.Penalty(p, lower_optimizer=keras.optimizers.Adam(lr))


def test_plain_progress_lines_show_current_evaluation_values(capsys):
    q = Quadratic()
    solver = _penalty(q)
    calls = iter(range(100))
    bl.fit(solver, steps=4, verbose=2, callbacks=[bl.Evaluate(lambda: {"metric": float(next(calls))}, every=2)])
    out = capsys.readouterr().out
    lines = [l for l in out.splitlines() if l.startswith("step ")]
    assert len(lines) == 4 and "\x1b" not in out and "\r" not in out
    assert "metric=1" in lines[3]  # the latest evaluation (0 at step 2, 1 at step 4), not a running mean


def test_a_resume_without_new_steps_still_reports_the_runs_speed(tmp_path):
    _, _, first = _run(tmp_path, 6)
    timed = [r["step_seconds"] for r in first[1:]]  # the first step traced: it has no step time of its own
    assert "step_seconds" not in first[0] and all(t > 0 for t in timed) and first.seconds_per_step > 0
    _, _, again = _run(tmp_path, 6)  # restored at step 6: nothing left to run
    assert [r["step"] for r in again] == [r["step"] for r in first]
    assert again.seconds_per_step == sorted(timed)[len(timed) // 2]

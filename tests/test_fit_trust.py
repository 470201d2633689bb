"""bl.fit keeps a run whole and refuses what it cannot honour: configuration checks on resume, damaged
checkpoints, locks, leftovers of a kill, CSV files across resumes, unusable variables and learning rates."""

import glob
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf.training import checkpoints, folders
from quadratic import Quadratic


U0 = [0.3, -0.5, 0.8]


def _penalty(q, **kwargs):
    return bl.Penalty(
        q.problem(u0=U0),
        upper_optimizer=keras.optimizers.Adam(0.01),
        lower_optimizer=keras.optimizers.Adam(0.01),
        **{"inner_steps": 2, **kwargs},
    )


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
        _run(
            tmp_path,
            6,
            make=lambda q: bl.Penalty(
                q.problem(u0=U0),
                upper_optimizer=keras.optimizers.Adam(0.1),
                lower_optimizer=keras.optimizers.Adam(0.01),
                inner_steps=2,
            ),
            config={"noise": 0.25},
        )
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


@pytest.mark.parametrize("state", ["garbage {{{", ""], ids=["garbled", "empty"])
def test_a_garbled_state_file_does_not_restart_from_zero(tmp_path, state):
    _run(tmp_path, 4)
    (tmp_path / "checkpoint").write_text(state)
    with pytest.warns(UserWarning, match="missing or unreadable"):
        _, solver, history = _run(tmp_path, 6)
    assert [r["step"] for r in history] == [1, 2, 3, 4, 5, 6]


def test_lock_refuses_a_live_owner_and_takes_over_a_dead_one(tmp_path):
    live = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from bilevel_tf.training.folders import FolderLock\n"
            "FolderLock(sys.argv[1]).acquire()\nprint(flush=True)\ntime.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        live.stdout.readline()  # holds the lock
        with pytest.raises(folders.FolderLockedError, match=f"in use by process {live.pid}"):
            _run(tmp_path, 2)
        live.kill()
        live.wait()
        _run(tmp_path, 2)  # the killed holder's lock is free
        assert not (tmp_path / ".lock").exists()  # released at the end
    finally:
        live.kill()
        live.wait()


def test_fewer_steps_than_a_checkpoint_has_run_are_refused(tmp_path):
    _run(tmp_path, 5)  # e.g. killed at step 5, or finished with a larger budget
    with pytest.raises(checkpoints.ResumeMismatchError, match=r"already at upper iteration 5, past the 3 asked"):
        _run(tmp_path, 3)
    _, solver, history = _run(tmp_path, 6)  # the folder is intact: a larger budget continues it
    assert int(solver.iterations.numpy()) == 6 and [r["step"] for r in history] == [1, 2, 3, 4, 5, 6]


class _CtrlC(bl.Callback):
    """Sends this process SIGINT (``signals`` of them) at ``kill_at``, before the other callbacks of that step."""

    def __init__(self, kill_at=None, signals=1):
        self.kill_at, self.signals = kill_at, signals

    def on_step_end(self, step, logs):
        if step == self.kill_at:
            for _ in range(self.signals):
                os.kill(os.getpid(), signal.SIGINT)


class _Halve(bl.Callback):
    """Epoch-end work on the problem's state (as the denoising renormalisation): u <- u / 2 at every 3rd step."""

    def __init__(self, q):
        self.q = q

    def on_step_end(self, step, logs):
        if step % 3 == 0:
            self.q.u.assign(self.q.u * 0.5)


def _run_halving(folder, steps, kill_at=None, signals=1):
    q = Quadratic()
    solver = _penalty(q)
    history = bl.fit(
        solver,
        steps=steps,
        checkpoint_dir=str(folder),
        checkpoint_every=100,
        verbose=0,
        callbacks=[_CtrlC(kill_at, signals), _Halve(q)],
    )
    return q, history


@pytest.fixture
def ctrl_c():
    """SIGINT raises KeyboardInterrupt here as in a terminal (a test run in the background ignores it)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_after_the_steps_callbacks_and_saves_that_step(tmp_path, ctrl_c):
    reference, full = _run_halving(tmp_path / "reference", 8)
    with pytest.raises(KeyboardInterrupt):
        _run_halving(tmp_path / "run", 8, kill_at=3)
    assert checkpoints.tf.train.latest_checkpoint(str(tmp_path / "run")).endswith("ckpt-3")
    q, history = _run_halving(tmp_path / "run", 8)  # the same command again
    np.testing.assert_allclose(q.u.numpy(), reference.u.numpy(), rtol=1e-6)  # step 3's halving was not lost
    assert [r["step"] for r in history] == [r["step"] for r in full]


def test_a_second_ctrl_c_stops_at_once_without_saving(tmp_path, ctrl_c):
    with pytest.raises(KeyboardInterrupt):
        _run_halving(tmp_path, 8, kill_at=3, signals=2)
    assert not glob.glob(str(tmp_path / "ckpt-*.index"))  # the state of a half-done step is never saved


def test_leftovers_of_a_kill_are_removed(tmp_path):
    (tmp_path / "ckpt-3_temp").mkdir()
    (tmp_path / "ckpt-3_temp" / "part").write_text("x")
    (tmp_path / ".tmp_results.json").write_text("")
    _run(tmp_path, 2)
    assert not (tmp_path / "ckpt-3_temp").exists() and not (tmp_path / ".tmp_results.json").exists()


@pytest.mark.parametrize("damage", ["deleted", "garbled", "truncated"])
def test_a_damaged_csv_is_rebuilt_from_the_checkpoints_history(tmp_path, damage):
    csv_path = tmp_path / "history.csv"
    _, _, full = _run(tmp_path / "reference", 6, csv_path=str(tmp_path / "reference.csv"))
    _run(tmp_path / "ck", 4, csv_path=str(csv_path))
    if damage == "deleted":
        csv_path.unlink()
    elif damage == "garbled":
        csv_path.write_bytes(b"\x00\xff garbage,,\n{{{\n")
    else:
        csv_path.write_text("\n".join(csv_path.read_text().splitlines()[:2]) + "\n")  # header and step 1 only
    _run(tmp_path / "ck", 6, csv_path=str(csv_path))
    lines = csv_path.read_text().splitlines()
    reference = (tmp_path / "reference.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in lines[1:]] == [1, 2, 3, 4, 5, 6]
    assert lines[0] == reference[0] and len(lines[1].split(",")) == len(reference[1].split(","))
    assert [float(x) for x in lines[3].split(",")] == pytest.approx([float(x) for x in reference[3].split(",")])


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
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    assert len(lines) == 4 and "\x1b" not in out and "\r" not in out
    assert "metric=1" in lines[3]  # the latest evaluation (0 at step 2, 1 at step 4), not a running mean


def test_a_resume_without_new_steps_still_reports_the_runs_speed(tmp_path):
    _, _, first = _run(tmp_path, 6)
    timed = [r["step_seconds"] for r in first[1:]]  # the first step traced: it has no step time of its own
    assert "step_seconds" not in first[0] and all(t > 0 for t in timed) and first.seconds_per_step > 0
    _, _, again = _run(tmp_path, 6)  # restored at step 6: nothing left to run
    assert [r["step"] for r in again] == [r["step"] for r in first]
    assert again.seconds_per_step == sorted(timed)[len(timed) // 2]

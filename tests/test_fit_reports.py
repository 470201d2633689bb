"""What bl.fit reports, and how it reports failures: seconds per upper iteration after resumes, what it is doing
(resuming, tracing), a runaway loss or a learning rate far out of range, a full disk, a lost worker, a progress
line within the terminal, and mixed variable dtypes refused when the problem is built."""

import errno
import io
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf.training import callbacks, workers
from bilevel_tf.training.terminal import Progress
from bilevel_tf.runner import experiment
from quadratic import Quadratic


def _penalty(q, **kwargs):
    return bl.Penalty(
        q.problem(u0=[0.3, -0.5, 0.8]),
        upper_optimizer=keras.optimizers.Adam(0.01),
        lower_optimizer=keras.optimizers.Adam(0.01),
        inner_steps=2,
        **kwargs,
    )


def _fit(folder, steps, verbose=0, **kwargs):  # GD: the cheapest solver to trace, each fit traces once
    solver = bl.GD(
        Quadratic().problem(u0=[0.3, -0.5, 0.8]),
        upper_optimizer=keras.optimizers.SGD(0.01),
        lower_optimizer=keras.optimizers.SGD(0.1),
        inner_steps=2,
    )
    return bl.fit(solver, steps=steps, checkpoint_dir=str(folder), verbose=verbose, **kwargs)


def test_seconds_per_iteration_after_resumes_leave_out_the_calls_that_traced(tmp_path, capsys):
    # two steps per call; every resumed fit traces again in its first call (here its only one)
    first = _fit(tmp_path, 4, steps_per_execution=2, checkpoint_every=2)
    assert "step_seconds" not in first[0] and first[1]["step_seconds"] > 0  # the first call traced
    _fit(tmp_path, 6, steps_per_execution=2, checkpoint_every=2)
    last = _fit(tmp_path, 8, steps_per_execution=2, checkpoint_every=2, verbose=2)
    assert [r["step"] for r in last] == [2, 4, 6, 8]
    assert [("step_seconds" in r) for r in last] == [False, True, False, False]
    assert last.seconds_per_step == first[1]["step_seconds"]  # the only call that measured the step alone
    out = capsys.readouterr().out
    assert "resuming from step 6 of 8" in out and "tracing and compiling the upper iteration" in out


def test_a_runaway_loss_is_warned_about_once(recwarn):
    watch = callbacks.DivergenceWatch()
    for step, loss in enumerate([0.03, 0.4, 1.1, 0.2, 4.0, 0.9, 2.5], 1):  # batch-to-batch noise: no warning
        watch.on_step_end(step, {"upper_loss": loss, "lower_loss": loss})
    assert not recwarn.list
    for step, loss in enumerate([80.0, 3e3, 1e5, 1e7], 8):
        watch.on_step_end(step, {"upper_loss": -loss, "lower_loss": loss})  # the upper loss only falls
    found = [w for w in recwarn.list if issubclass(w.category, callbacks.DivergenceWarning)]
    assert len(found) == 1 and "lower_loss rose from 0.03 (step 1) to 3000 (step 9)" in str(found[0].message)


def test_fit_warns_when_the_lower_loss_runs_away():
    q = Quadratic()  # g is 1..2-strongly convex in v: SGD with rate 5 multiplies the error by up to 9 a step
    solver = bl.GD(
        q.problem(v0=np.ones(5)),
        upper_optimizer=keras.optimizers.SGD(0.01),
        lower_optimizer=keras.optimizers.SGD(5.0),
        inner_steps=1,
    )
    with pytest.warns(callbacks.DivergenceWarning) as warned:
        history = bl.fit(solver, steps=8, verbose=0)
    assert np.isfinite(history[-1]["lower_loss"])
    assert any(str(w.message).startswith("lower_loss rose from") for w in warned)


def test_a_learning_rate_far_out_of_range_is_warned_about():
    q = Quadratic()
    with pytest.warns(UserWarning, match=r"upper_optimizer has learning rate 1e\+06, far above the usual range"):
        bl.Penalty(q.problem(), upper_optimizer=1e6, lower_optimizer=1e-3)
    with pytest.warns(UserWarning, match="lower_optimizer has learning rate 1e-12, far below"):
        bl.Penalty(q.problem(), upper_optimizer=1e-3, lower_optimizer=1e-12)


def test_a_full_disk_stops_with_an_os_error_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    _fit(tmp_path, 2, checkpoint_every=2)
    original = tf.train.CheckpointManager.save

    def no_space(self, checkpoint_number=None, **kwargs):
        if checkpoint_number == 4:
            raise tf.errors.ResourceExhaustedError(
                None, None, f"{self.directory}/ckpt-4_temp/part-00000; No space left on device [Op:SaveV2]"
            )
        return original(self, checkpoint_number=checkpoint_number, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", no_space)
    with pytest.raises(OSError) as error:
        _fit(tmp_path, 6, checkpoint_every=2)
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(tmp_path)
    assert "checkpoint of step 4" in error.value.strerror and "ckpt-2 is intact" in error.value.strerror
    assert experiment._exit_status(error.value) == 2 and "\n" not in experiment._one_line(error.value)
    monkeypatch.undo()
    resumed = _fit(tmp_path, 6, checkpoint_every=2)  # the same command continues from step 2
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]


class _TwoWorkers:
    """Just enough of a MultiWorkerMirroredStrategy for workers.worker_count."""

    class cluster_resolver:
        @staticmethod
        def cluster_spec():
            return tf.train.ClusterSpec({"worker": ["127.0.0.1:1", "127.0.0.1:2"]})


def test_a_lost_worker_is_one_line_and_exit_status_1(tmp_path, monkeypatch, capsys):
    lost = tf.errors.UnavailableError(
        None,
        None,
        "Collective ops is aborted by: cluster check alive failed, "
        "/job:worker/replica:0/task:1 is down\nAdditional GRPC error information ...",
    )
    error = workers.peer_failure(lost, _TwoWorkers(), 7, str(tmp_path / "ckpt-6"))
    assert isinstance(error, workers.WorkerLostError) and "\n" not in str(error)
    assert str(error).startswith("step 7: a worker of the cluster stopped answering (Collective ops is aborted")
    assert "resume from " + str(tmp_path / "ckpt-6") in str(error)
    assert workers.peer_failure(lost, None, 7, None) is None  # one process: TensorFlow's error as it is
    assert workers.peer_failure(ValueError("x"), _TwoWorkers(), 7, None) is None

    solver = _penalty(Quadratic())
    monkeypatch.setattr(workers, "worker_count", lambda strategy: 2)  # as in a cluster, where a peer can fail
    monkeypatch.setattr(workers, "sync_from_chief", lambda strategy, variables: None)
    monkeypatch.setattr(type(solver), "step", lambda self, *a: (_ for _ in ()).throw(lost))

    def main(argv):
        bl.fit(solver, steps=3, verbose=0)

    with pytest.raises(SystemExit) as exit_info:
        experiment.run_main(main, [])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and len(err.splitlines()) == 1
    assert err.startswith("error: step 1: a worker of the cluster stopped answering")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_line_fits_the_terminal(monkeypatch):
    monkeypatch.setattr("shutil.get_terminal_size", lambda fallback=None: os.terminal_size((100, 24)))
    logs = {
        "upper_loss": 0.0845,
        "lower_loss": 1.154,
        "penalty": 0.01505,
        "schedule_fired": 0.0,
        "rho": 0.3912,
        "lam": 0.07699,
        "eps": 0.0,
        "g_grad_sq": 1.0,
    }
    evaluation = {
        "lower_train_accuracy": 0.708,
        "lower_val_accuracy": 1.0,
        "lower_test_accuracy": 0.9363,
        "mean_importance": 0.5,
        "noise_precision": 0.876,
        "eval_seconds": 0.003,
    }
    terminal = _Terminal()
    progress = Progress(100, 0, verbose=1, stream=terminal)
    for step in range(1, 101):
        progress.update(step, {**logs, **(evaluation if step % 5 == 0 else {})}, solver_keys=logs)
    lines = [part.replace("\x1b[K", "") for part in terminal.getvalue().replace("\n", "\r").split("\r") if part]
    assert len(lines) == 100 and max(map(len, lines)) <= 99
    assert lines[-1].startswith("step 100/100 (0 s) upper_loss=0.0845 lower_loss=1.154 lower_train_accuracy=0.708")
    assert "g_grad_sq" not in lines[-1] and terminal.getvalue().endswith("\n")

    log_file = io.StringIO()  # not a terminal: complete lines
    progress = Progress(100, 0, verbose=2, stream=log_file)
    progress.update(5, {**logs, **evaluation}, solver_keys=logs)
    assert len(log_file.getvalue()) > 200 and "eps=0" in log_file.getvalue()


def test_variables_of_two_dtypes_are_refused_when_the_problem_is_built():
    u = tf.Variable(tf.zeros([3], tf.float64), name="u64")
    v = tf.Variable(tf.zeros([3], tf.float32), name="v32")
    message = r"upper_vars\[0\] \(u64.*\) is float64 but lower_vars\[0\] \(v32.*\) is float32"
    with pytest.raises(ValueError, match=message):
        bl.BilevelProblem(lambda b: tf.reduce_sum(v), lambda b: tf.reduce_sum(v), [u], [v])
    w = tf.Variable(tf.zeros([3], tf.float64), name="w64")
    problem = bl.BilevelProblem(lambda b: tf.reduce_sum(w * u), lambda b: tf.reduce_sum(w * w - w * u), [u], [w])
    assert problem.upper_vars == [u]  # one dtype, float64 included, is fine

"""bl.fit: data sources, callbacks and logging, checkpoint/resume, NaN guard."""

import csv
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import bilevel_tf as bl
from quadratic import Quadratic


def _importance_problem():
    """Weighted logistic regression: one importance logit per training example, batches carry indices."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    y[:8] = 1 - y[:8]
    x_val = rng.normal(size=(20, 5)).astype(np.float32)
    y_val = (x_val[:, 0] > 0).astype(np.int64)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2, kernel_initializer="zeros")])
    u = tf.Variable(tf.zeros([40]), name="importance")
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)

    def g(batch):
        idx, xb, yb = batch
        w = tf.sigmoid(tf.gather(u, idx))
        return tf.reduce_sum(w * ce(yb, model(xb))) / tf.reduce_sum(w)

    def f(batch):
        xb, yb = batch
        return tf.reduce_mean(ce(yb, model(xb)))

    lower_data = tf.data.Dataset.from_tensor_slices((np.arange(40), x, y)).shuffle(40, seed=7).batch(10)
    upper_data = tf.data.Dataset.from_tensor_slices((x_val, y_val)).shuffle(20, seed=8).batch(10)
    problem = bl.BilevelProblem(f, g, [u], model.trainable_variables, extra_state={"model": model})
    return problem, upper_data, lower_data


def _solver(problem):
    return bl.Penalty(
        problem,
        upper_optimizer=keras.optimizers.Adam(0.05),
        lower_optimizer=keras.optimizers.Adam(0.01),
        inner_steps=3,
        rho=1.0,
        lam=1.0,
        eps=0.5,
    )


def _state(solver):
    vars_ = list(solver.problem.upper_vars) + list(solver.problem.lower_vars) + list(solver.nu)
    return [np.array(v) for v in vars_] + [solver.schedule()["rho"], solver.schedule()["eps"]]


def test_resume_reaches_the_uninterrupted_state(tmp_path):
    problem, up, lo = _importance_problem()
    reference = _solver(problem)
    history = bl.fit(reference, up, lo, steps=12, verbose=0)
    assert [r["step"] for r in history] == list(range(1, 13))

    problem, up, lo = _importance_problem()
    first = _solver(problem)
    partial = bl.fit(first, up, lo, steps=7, checkpoint_dir=str(tmp_path), checkpoint_every=5, verbose=0)
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("-7")

    problem, up, lo = _importance_problem()  # a new process would rebuild everything from scratch
    resumed = _solver(problem)
    history = bl.fit(resumed, up, lo, steps=12, checkpoint_dir=str(tmp_path), verbose=0)
    # the whole run's history, the restored part included, with a clock that keeps running
    assert [r["step"] for r in history] == list(range(1, 13))
    assert [r["upper_loss"] for r in history[:7]] == [r["upper_loss"] for r in partial]
    assert all(a["seconds"] <= b["seconds"] for a, b in zip(history, history[1:]))
    for a, b in zip(_state(reference), _state(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # Optimizer slots were restored too: one more identical step keeps the runs together.
    assert int(resumed.lower_optimizer.iterations.numpy()) == int(reference.lower_optimizer.iterations.numpy())


def test_nan_loss_stops_with_the_step_and_keeps_last_good_checkpoint(tmp_path):
    q = Quadratic()
    problem = q.problem()
    scale = tf.Variable(1.0)
    bad = bl.BilevelProblem(
        lambda b: problem.upper_loss(b) * tf.math.log(scale), problem.lower_loss, problem.upper_vars, problem.lower_vars
    )
    solver = bl.GD(bad, inner_steps=1)

    def poison(step, logs):
        if step == 4:
            scale.assign(-1.0)  # log(-1) = nan from the next step on

    with pytest.raises(bl.NonFiniteError, match=r"step 5: upper_loss = nan; stopped, last good checkpoint kept: .*-4"):
        bl.fit(
            solver,
            steps=10,
            checkpoint_dir=str(tmp_path),
            checkpoint_every=2,
            verbose=0,
            callbacks=[bl.LambdaCallback(on_step_end=poison)],
        )
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("-4")


def test_sources_callbacks_csv_and_early_stop(tmp_path):
    q = Quadratic()
    solver = bl.GD(q.problem(), inner_steps=1)
    seen = []
    evaluations = []

    def evaluate():
        evaluations.append(1)
        return {"distance": q.u_error()}

    path = tmp_path / "log.csv"
    history = bl.fit(
        solver,
        upper_data=lambda step: tf.fill([2], float(step)),
        lower_data=[tf.zeros([2])] * 3,
        steps=9,
        verbose=0,
        csv_path=str(path),
        log_every=3,
        callbacks=[bl.LambdaCallback(on_step_end=lambda s, logs: seen.append(s)), bl.Evaluate(evaluate, every=4)],
    )
    assert seen == list(range(1, 10))
    assert len(evaluations) == 3  # steps 4, 8 and the final step 9
    assert [r["step"] for r in history] == [3, 6, 9]
    assert "distance" in history[-1] and "distance" not in history[0]
    rows = list(csv.DictReader(open(path)))
    assert [int(r["step"]) for r in rows] == [3, 6, 9]
    assert math.isfinite(history.seconds_per_step) and history.seconds_per_step > 0

    stopper = bl.EarlyStopping("upper_loss", patience=2, mode="max")  # loss decreases: stops after 3 steps
    history = bl.fit(bl.GD(Quadratic().problem(), inner_steps=1), steps=50, verbose=0, callbacks=[stopper])
    assert history[-1]["step"] == 3


def test_bad_fit_arguments():
    solver = bl.GD(Quadratic().problem())
    with pytest.raises(ValueError, match="steps must be an integer"):
        bl.fit(solver, steps=-1, verbose=0)
    with pytest.raises(ValueError, match="upper_data must be None, a tf.data.Dataset"):
        bl.fit(solver, upper_data=3, steps=1, verbose=0)
    with pytest.raises(ValueError, match="lower_data ran out of batches at step 2"):
        bl.fit(solver, lower_data=iter([None, None]), steps=5, verbose=0)
    with pytest.raises(ValueError, match="solver must be a bl.BilevelSolver"):
        bl.fit("penalty", steps=1)


def test_progress_bar_prints(capsys):
    bl.fit(bl.GD(Quadratic().problem()), steps=3, verbose=1)
    out = capsys.readouterr().out
    assert "3/3" in out and "upper_loss" in out

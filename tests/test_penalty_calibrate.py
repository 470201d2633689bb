"""Penalty's calibration on several mini-batches (``solver.calibrate``): it measures the curvature of the mean
loss over the batches, not of the first batch alone."""

import numpy as np
import pytest
import tensorflow as tf

import bilevel_tf as bl

N, DIM, BATCH = 96, 12, 8


def _regression_problem(seed=0):
    """Ridge regression on per-sample losses (mean over a batch of sample indices): with batches of 8 samples in
    12 dimensions, one batch's Hessian is rank-deficient and the data set's is not."""
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(N, DIM)) * np.linspace(0.3, 2.0, DIM), tf.float32)
    y = tf.constant(rng.normal(size=N), tf.float32)
    u = tf.Variable(tf.zeros([DIM]))
    v = tf.Variable(tf.zeros([DIM]))

    def mean_loss(batch):
        xb, yb = (x, y) if batch is None else (tf.gather(x, batch), tf.gather(y, batch))
        return 0.5 * tf.reduce_mean(tf.square(tf.linalg.matvec(xb, v) - yb))

    return bl.BilevelProblem(
        upper_loss=lambda batch: mean_loss(batch) + 0.05 * tf.reduce_sum(tf.square(v - 1.0)),
        lower_loss=lambda batch: mean_loss(batch) + 0.5 * tf.reduce_sum(0.01 * tf.exp(u) * tf.square(v)),
        upper_vars=[u],
        lower_vars=[v],
    )


def _solver(**options):
    return bl.Penalty(_regression_problem(), 1e-2, 1e-2, inner_steps=3, **options)


def _weights(solver):
    return [float(solver.rho.numpy()), float(solver.lam.numpy()), float(solver.lower_step_scale.numpy())]


def _index_batches(count, seed=1):
    order = np.random.default_rng(seed).permutation(N)
    return [tf.constant(order[i * BATCH : (i + 1) * BATCH]) for i in range(count)]


def test_several_batches_measure_the_mean_loss():
    """Batches of one size: their mean loss is the loss of their union, so the probe must agree with one probe on
    all their samples, and differ from the first batch's (rank-deficient) probe."""
    batches = _index_batches(12)  # all 96 samples
    several, union, first = _solver(), _solver(), _solver()
    assert several.calibrate(batches, batches)
    union.calibrate([tf.concat(batches, 0)], [tf.concat(batches, 0)])
    first.step(batches[0], batches[0])
    np.testing.assert_allclose(_weights(several), _weights(union), rtol=2e-3)
    assert _weights(first)[0] > 1.5 * _weights(union)[0]  # the first batch alone over-estimates rho


def test_calibrated_solver_trains_with_fit_and_keeps_its_measurement():
    """The documented use with mini-batches: calibrate on a few batches, then bl.fit (which then measures
    nothing more)."""
    data = tf.data.Dataset.from_tensor_slices(np.arange(N)).batch(BATCH)
    solver = _solver()
    batches = list(data.take(8))
    assert solver.calibrate(batches, batches)
    measured = _weights(solver)
    bl.fit(solver, data, data, steps=4, verbose=0)
    assert _weights(solver) == measured


def test_calibrate_measures_once_and_only_when_it_can():
    batches = _index_batches(4)
    solver = _solver()
    assert solver.calibrate(batches, batches)
    assert not solver.calibrate(batches, batches)  # already measured
    assert not _solver(schedule="original").calibrate(batches, batches)  # nothing to measure
    assert not bl.ApproxGrad(_regression_problem(), 1e-2, 1e-2).calibrate(batches, batches)
    with pytest.raises(ValueError, match="at least one batch"):
        _solver().calibrate([], batches)


def test_a_restored_calibration_is_not_measured_again(tmp_path):
    batches = _index_batches(4)
    solver = _solver()
    solver.calibrate(batches, batches)
    path = solver.checkpoint.save(str(tmp_path / "ckpt"))
    restored = _solver()
    restored.checkpoint.restore(path).expect_partial()
    assert not restored.calibrate(_index_batches(4, seed=7), _index_batches(4, seed=7))
    np.testing.assert_array_equal(_weights(restored), _weights(solver))


def test_reset_state_measures_again():
    batches = _index_batches(4)
    solver = _solver()
    solver.calibrate(batches, batches)
    solver.reset_state()
    assert solver.calibrate(batches, batches)


def test_measured_default_steps_are_stable_on_the_steepest_batch():
    """A solver whose default lower step is measured (1 / L) takes L as the highest curvature over the batches
    given to calibrate: a step measured on one mini-batch can diverge on a steeper one."""
    problem = _regression_problem()
    batches = _index_batches(6)
    rng = np.random.default_rng(0)
    data = rng.normal(size=(N, DIM)) * np.linspace(0.3, 2.0, DIM)  # as _regression_problem(seed=0)
    tops = [np.linalg.eigvalsh(data[b.numpy()].T @ data[b.numpy()] / BATCH).max() + 0.01 for b in batches]
    assert max(tops) > 1.2 * tops[0]  # the first batch is not the steepest: the comparison has teeth
    several, first = bl.make_solver("soba", problem), bl.make_solver("soba", _regression_problem())
    assert several.calibrate(batches, batches)
    first.calibrate(batches[:1], batches[:1])
    step = float(several.lower_optimizer.learning_rate.numpy())
    assert 0.9 < step * max(tops) <= 1.0 + 1e-4
    assert float(first.lower_optimizer.learning_rate.numpy()) * tops[0] == pytest.approx(step * max(tops), rel=0.1)

"""Per-example upper variables (IndexedSlices gradients) and projections after updates."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf.core import tensor_ops as ops


def test_tensor_ops_on_indexed_slices_with_duplicates():
    dense = tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    s = tf.IndexedSlices(tf.constant([[1.0, 1.0], [2.0, 0.0], [0.5, 3.0]]), tf.constant([2, 0, 2]), tf.constant([3, 2]))
    as_dense = tf.convert_to_tensor(s).numpy()
    assert float(ops.sq_norm([s])) == pytest.approx(np.sum(as_dense**2))
    assert float(ops.inner([s], [dense])) == pytest.approx(np.sum(as_dense * dense.numpy()))
    assert float(ops.inner([dense], [s])) == pytest.approx(np.sum(as_dense * dense.numpy()))


def _weighted_regression(sparse: bool):
    """u = one importance logit per training point; g = weighted least squares; f = validation loss."""
    rng = np.random.default_rng(1)
    x_tr, x_val = rng.normal(size=(12, 3)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)
    w_true = np.array([1.0, -2.0, 0.5], np.float32)
    y_tr, y_val = x_tr @ w_true, x_val @ w_true
    y_tr[:4] += 3.0  # corrupted points
    u = tf.Variable(tf.zeros([12]))
    w = tf.Variable(tf.zeros([3]))
    idx = tf.constant([0, 3, 5, 7, 11, 3])  # a batch with a repeated example

    def g(batch):
        weights = tf.sigmoid(tf.gather(u, idx)) if sparse else tf.gather(tf.sigmoid(u), idx)
        residual = tf.gather(x_tr, idx) @ w[:, None] - tf.gather(y_tr, idx)[:, None]
        return tf.reduce_mean(weights * residual[:, 0] ** 2) + 0.01 * tf.reduce_sum(w**2)

    def f(batch):
        return tf.reduce_mean((x_val @ w[:, None] - y_val[:, None]) ** 2)

    return u, w, bl.BilevelProblem(f, g, [u], [w])


@pytest.mark.parametrize("method", ["penalty", "approxgrad", "rmd", "gd", "vpbgd", "gpbgd"])
def test_sparse_upper_gradients_match_dense_formulation(method):
    kw = {"rmd": dict(lower_optimizer=0.05)}.get(method, {})
    results = []
    for sparse in (True, False):
        u, w, problem = _weighted_regression(sparse)
        solver = bl.make_solver(method, problem, inner_steps=3, upper_optimizer=keras.optimizers.SGD(0.5), **kw)
        with tf.GradientTape() as tape:
            loss = problem.g(None)
        grad = tape.gradient(loss, u)
        assert isinstance(grad, tf.IndexedSlices) == sparse
        for _ in range(3):
            logs = solver.step()
        results.append((u.numpy(), w.numpy(), {k: float(v) for k, v in logs.items()}))
    (u_s, w_s, logs_s), (u_d, w_d, logs_d) = results
    np.testing.assert_allclose(u_s, u_d, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w_s, w_d, rtol=1e-5, atol=1e-6)
    for key in logs_s:
        assert logs_s[key] == pytest.approx(logs_d[key], rel=1e-4, abs=1e-6), key
    if method == "gd":
        assert np.count_nonzero(u_s) == 0  # f does not depend on u directly: GD never moves it
    else:
        assert np.count_nonzero(u_s) == 5  # only the batch's examples moved (SGD)


def test_box_constraint_applied_after_every_update():
    u = tf.Variable([0.5, 0.5])
    v = tf.Variable([0.0, 0.0])
    problem = bl.BilevelProblem(
        lambda b: -tf.reduce_sum(u * 10.0) + tf.reduce_sum(v**2),
        lambda b: tf.reduce_sum((v - u) ** 2),
        [u],
        [v],
        upper_constraint=bl.constraints.box(0.0, 1.0),
        lower_constraint=bl.constraints.box(-0.25, 0.25),
    )
    solver = bl.Penalty(
        problem, upper_optimizer=keras.optimizers.SGD(1.0), lower_optimizer=keras.optimizers.SGD(1.0), inner_steps=2
    )
    solver.step()
    np.testing.assert_allclose(u.numpy(), [1.0, 1.0])
    assert np.all(np.abs(v.numpy()) <= 0.25 + 1e-7)


def test_ball_projections():
    center = tf.constant([[0.0, 0.0], [1.0, 1.0]])
    x = [tf.constant([[3.0, 4.0], [1.0, 1.5]])]
    out = bl.constraints.l2_ball(center, 1.0, axis=[1])(x)[0].numpy()
    np.testing.assert_allclose(out[0], [0.6, 0.8], rtol=1e-5)
    np.testing.assert_allclose(out[1], [1.0, 1.5], rtol=1e-6)  # already inside its own ball
    whole = bl.constraints.l2_ball(center, 1.0)(x)[0].numpy()
    assert np.linalg.norm(whole - center.numpy()) == pytest.approx(1.0, rel=1e-5)
    linf = bl.constraints.linf_ball(center, 0.2, clip=(0.0, 1.1))(x)[0].numpy()
    np.testing.assert_allclose(linf, [[0.2, 0.2], [1.0, 1.1]], rtol=1e-6)

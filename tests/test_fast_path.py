"""The fast path must not change results: XLA vs graph steps, forward-over-reverse vs double-backward
second-order products, on a small Keras model with per-example importance weights (sparse upper gradients)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf.core import autodiff

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"

N_TRAIN, BATCH = 40, 12
KW = {"penalty": {}, "approxgrad": {}, "rmd": {"lower_optimizer": 0.05}, "gd": {}, "vpbgd": {}, "gpbgd": {}}
SECOND_ORDER = ["penalty", "approxgrad", "rmd", "gpbgd"]


class Importance:
    """A conv net (Dropout present but off) trained with one importance logit per training example."""

    def __init__(self, seed=0):
        keras.utils.set_random_seed(seed)
        self.model = keras.Sequential(
            [
                keras.Input((8, 8, 1)),
                keras.layers.Conv2D(3, 3, activation="tanh"),
                keras.layers.Flatten(),
                keras.layers.Dense(12, activation="tanh"),
                keras.layers.Dropout(0.5),
                keras.layers.Dense(4),
            ]
        )
        self.logits = tf.Variable(np.linspace(-1, 1, N_TRAIN, dtype=np.float32), name="importance")
        rng = np.random.default_rng(seed)
        idx = rng.choice(N_TRAIN, BATCH, replace=False).astype(np.int32)
        self.lower_batch = (
            tf.constant(idx),
            tf.constant(rng.random((BATCH, 8, 8, 1), dtype=np.float32)),
            tf.constant(rng.integers(0, 4, BATCH)),
        )
        self.upper_batch = (
            tf.constant(rng.random((BATCH, 8, 8, 1), dtype=np.float32)),
            tf.constant(rng.integers(0, 4, BATCH)),
        )

    def problem(self):
        ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)

        def g(batch):
            idx, x, y = batch
            w = tf.sigmoid(tf.gather(self.logits, idx))  # sparse (IndexedSlices) gradient for u
            return tf.reduce_sum(w * ce(y, self.model(x, training=False))) / tf.reduce_sum(w)

        def f(batch):
            x, y = batch
            return tf.reduce_mean(ce(y, self.model(x, training=False)))

        return bl.BilevelProblem(f, g, [self.logits], self.model.trainable_variables)

    def values(self):
        return [v.numpy() for v in [self.logits] + self.model.trainable_variables]


def _run(method, steps=2, **options):
    task = Importance()
    solver = bl.make_solver(method, task.problem(), inner_steps=3, **KW[method], **options)
    for _ in range(steps):
        logs = solver.step(task.upper_batch, task.lower_batch)
    return task.values(), {k: float(v) for k, v in logs.items()}


def _assert_same(a, b, rtol=2e-4, atol=2e-6):
    (values_a, logs_a), (values_b, logs_b) = a, b
    for x, y in zip(values_a, values_b):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)
    assert logs_a.keys() == logs_b.keys()
    for key in logs_a:
        assert logs_a[key] == pytest.approx(logs_b[key], rel=rtol, abs=atol), key


@pytest.mark.parametrize("method", sorted(KW))
def test_xla_step_equals_graph_step_on_keras_model(method):
    graph = _run(method)
    assert np.abs(graph[0][0] - np.linspace(-1, 1, N_TRAIN)).max() > 0, "u did not move"
    _assert_same(graph, _run(method, jit_compile=True))


@pytest.mark.parametrize("method", SECOND_ORDER)
def test_forward_over_reverse_equals_double_backward(method):
    _assert_same(_run(method, hvp="double_backward"), _run(method, hvp="forward_over_reverse"))


def test_second_order_modes_agree_on_sparse_mixed_products():
    task = Importance()
    problem = task.problem()
    wrt = list(problem.upper_vars) + list(problem.lower_vars)
    vector = [tf.random.stateless_normal(v.shape, [1, i]) for i, v in enumerate(problem.lower_vars)]
    results = {}
    for mode in autodiff.HVP_MODES:
        for name, weights in (("constant", vector), ("function", lambda gv: [2.0 * x for x in gv])):
            g, gv, f, grads = autodiff.second_order(
                problem, task.lower_batch, weights, wrt, extra=lambda: problem.f(task.upper_batch), mode=mode
            )
            results[mode, name] = [float(g), float(f)] + [tf.convert_to_tensor(x).numpy() for x in gv + grads]
    for name in ("constant", "function"):
        for x, y in zip(results["double_backward", name], results["forward_over_reverse", name]):
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


def test_unknown_hvp_mode_is_rejected():
    with pytest.raises(ValueError, match="hvp"):
        bl.Penalty(Importance().problem(), hvp="finite_differences")

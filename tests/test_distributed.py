"""Data-parallel solvers under tf.distribute.MirroredStrategy on two logical CPU devices equal the
single-device step on the same global batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import bilevel_tf as bl
from finite_sum_quadratic import FiniteSumQuadratic
from importance_toy import importance_data, importance_problem

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"

KW = {
    "penalty": dict(eps=1e3),
    "approxgrad": {},
    "rmd": dict(lower_optimizer=0.1),
    "gd": {},
    "vpbgd": dict(gamma_init=1.0, gamma_max=1.0, gamma_argmax_step=1),
    "gpbgd": dict(gamma_init=1.0),
    "soba": {},
    "amigo": {},
    "stocbio": dict(linear_steps=3),
    "f2sa": {},
    "bome": {},
    "implicit": dict(linear_steps=3),
}
# (Implicit: 10 CG steps on this network's ill-conditioned float32 Hessian amplify the all-reduce's rounding to 4e-3)


def _build(method, strategy):
    with strategy.scope():
        keras.utils.set_random_seed(1)
        problem, importance, model = importance_problem(8, 0.05)
        kw = dict(upper_optimizer=keras.optimizers.SGD(0.5), inner_steps=2)
        if method != "rmd":
            kw["lower_optimizer"] = keras.optimizers.SGD(0.1)
        kw.update(KW[method])
        solver = bl.make_solver(method, problem, **kw)
    return solver, importance, model


@pytest.fixture(scope="module")
def mirrored():
    # One strategy for the module: several MirroredStrategy objects in one process reuse collective keys.
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.mark.parametrize("method", sorted(KW))
def test_two_replicas_equal_one_device(method, mirrored):
    lower, upper = importance_data(8)
    results = []
    for strategy in (tf.distribute.get_strategy(), mirrored):
        solver, importance, model = _build(method, strategy)
        history = bl.fit(
            solver,
            tf.data.Dataset.from_tensor_slices(upper).batch(8),
            tf.data.Dataset.from_tensor_slices(lower).batch(8),
            steps=3,
            verbose=0,
        )
        results.append((importance.numpy(), [w.numpy() for w in model.trainable_variables], history[-1]))
    (u1, w1, logs1), (u2, w2, logs2) = results
    assert np.any(u1 != 0) or method == "gd"  # GD ignores u here: f does not depend on it directly
    np.testing.assert_allclose(u2, u1, rtol=1e-4, atol=1e-6)
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    for key in ("upper_loss", "lower_loss"):
        assert logs2[key] == pytest.approx(logs1[key], rel=1e-4)


def test_saba_memory_gathers_every_replicas_samples(mirrored):
    results = []
    for strategy in (tf.distribute.get_strategy(), mirrored):
        with strategy.scope():
            q = FiniteSumQuadratic()
            solver = bl.SABA(q.finite_sum_problem(), inner_steps=2)
        bl.fit(solver, *q.datasets(batch=(4, 6)), steps=4, verbose=0)
        memory = [t.numpy() for tables, means in solver.memory.values() for t in tables + means]
        results.append([q.u.numpy(), q.v.numpy(), solver.z[0].numpy()] + memory)
    assert np.any(results[0][0] != 0) and np.any(results[0][3] != 0)
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["bome", "stocbio"])
def test_default_steps_measured_in_the_replicas_equal_one_devices(method, mirrored):
    """The probe of bilevel_tf.solvers.default_steps runs in the replicas on replica-averaged products: the
    steps it measures (BOME's joint (u, v) step and copy step, StocBiO's lower and Neumann steps) and the
    iterates equal the single device's."""
    lower, upper = importance_data(8)
    results = []
    for strategy in (tf.distribute.get_strategy(), mirrored):
        with strategy.scope():
            keras.utils.set_random_seed(1)
            problem, importance, model = importance_problem(8, 0.05)
            options = {"linear_steps": 3} if method == "stocbio" else {}
            solver = bl.make_solver(method, problem, inner_steps=2, **options)  # the steps left to the defaults
        bl.fit(
            solver,
            tf.data.Dataset.from_tensor_slices(upper).batch(8),
            tf.data.Dataset.from_tensor_slices(lower).batch(8),
            steps=2,
            verbose=0,
        )
        results.append((solver.default_steps.values(), importance.numpy()))
    (steps1, u1), (steps2, u2) = results
    assert steps1.keys() == steps2.keys() and all(steps1[k] > 0 for k in steps1)
    for key in steps1:
        assert steps2[key] == pytest.approx(steps1[key], rel=1e-5), key
    np.testing.assert_allclose(u2, u1, rtol=1e-4, atol=1e-6)

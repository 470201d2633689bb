"""Mixed precision (bfloat16 compute, float32 variables and losses) keeps every solver's results."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import bilevel_tf as bl
from runner_utils import run_runner
from test_fast_path import KW, Importance

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"

LARGE = "data_denoising/mnist_large_scale/test_bilevel_importance_learning_mnist.py"


def _updates(method, policy):
    bl.precision.set_policy(policy)
    task = Importance()  # the model is built under the policy
    bl.precision.set_policy("float32")
    before = task.values()
    solver = bl.make_solver(method, task.problem(), inner_steps=3, **KW[method])
    for _ in range(2):
        logs = solver.step(task.upper_batch, task.lower_batch)
    return task, [after - start for after, start in zip(task.values(), before)], logs


@pytest.mark.parametrize("method", sorted(KW))
def test_bfloat16_compute_keeps_the_float32_updates(method):
    task, updates, logs = _updates(method, "mixed_bfloat16")
    assert task.model.layers[0].compute_dtype == "bfloat16"
    assert all(v.dtype == tf.float32 for v in task.problem().lower_vars) and task.logits.dtype == tf.float32
    assert all(x.dtype == tf.float32 for x in logs.values())  # losses, penalties, norms: float32
    _, reference, ref_logs = _updates(method, "float32")
    for name, (x, y) in enumerate(zip(updates, reference)):
        assert np.isfinite(x).all()
        # bfloat16 keeps 8 significant bits: updates agree to a few percent (measured 1.4-6%)
        assert np.linalg.norm(x - y) <= 0.15 * np.linalg.norm(y), f"variable {name}"
    assert float(logs["upper_loss"]) == pytest.approx(float(ref_logs["upper_loss"]), rel=1e-2)


def test_losses_of_half_precision_are_promoted_to_float32():
    v = tf.Variable([1.0, 2.0])
    u = tf.Variable([0.5])
    problem = bl.BilevelProblem(
        lambda _: tf.cast(tf.reduce_sum(v * u), tf.bfloat16),
        lambda _: tf.cast(tf.reduce_sum(tf.square(v - u)), tf.float16),
        [u],
        [v],
    )
    assert problem.f(None).dtype == tf.float32 and problem.g(None).dtype == tf.float32
    f64 = bl.BilevelProblem(lambda _: tf.constant(1.0, tf.float64), lambda _: tf.constant(1.0, tf.float64), [u], [v])
    assert f64.f(None).dtype == tf.float64  # promotion only lifts half precision
    logits = tf.constant([[2.0, 0.0, -1.0]], tf.bfloat16)
    ce = bl.precision.cross_entropy(logits, tf.constant([0]))
    assert ce.dtype == tf.float32
    expected = -np.log(np.exp(2.0) / (np.exp(2.0) + 1.0 + np.exp(-1.0)))
    assert float(ce[0]) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name,match", [("mixed_float16", "loss scale"), ("float16", "must be one of")])
def test_unsupported_policies_are_refused(name, match):
    with pytest.raises(ValueError, match=match):
        bl.precision.set_policy(name)
    assert bl.precision.policy() == "float32"


def test_denoising_runner_in_mixed_precision(tmp_path):
    result = run_runner(LARGE, ["--smoke", "--dataset", "digits", "--precision", "mixed_bfloat16"], tmp_path)
    assert result["config"]["precision"] == "mixed_bfloat16"
    metrics = result["metrics"]
    assert (
        0.0 <= metrics["test_accuracy"] <= 1.0
        and np.isfinite([r["upper_loss"] for r in result["history"] if "upper_loss" in r]).all()
    )
    # parse() resets the policy on every run: a float32 run after it builds float32 models
    run_runner(LARGE, ["--smoke", "--dataset", "digits", "--max-steps", "1"], tmp_path / "f32")
    assert keras.mixed_precision.dtype_policy().name == "float32"

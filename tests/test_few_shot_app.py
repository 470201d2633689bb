"""Few-shot building blocks (bilevel_tf.apps.few_shot): data, per-task batch norm, problem, meta-test, flags."""

import argparse

import keras
import numpy as np
import pytest
import tensorflow as tf
from runner_utils import load_runner

import bilevel_tf as bl
from bilevel_tf.apps.few_shot import meta_learning as fs
from bilevel_tf.apps.few_shot import config as few_shot_config
from bilevel_tf.datasets import EpisodeSampler
from bilevel_tf.models import miniimagenet_resnet, omniglot_encoder

OMNIGLOT = "few_shot/omniglot/test_bilevel_few_shot_learning_omniglot.py"
MINIIMAGENET = "few_shot/miniimagenet/test_bilevel_few_shot_learning_miniimagenet.py"


def test_rotated_digits_classes_and_split():
    data = few_shot_config.rotated_digits()
    x, y = data.train.images, data.train.labels
    assert x.shape[1:] == (8, 8, 1) and y.dtype == np.int64 and len(np.unique(y)) == 40
    np.testing.assert_array_equal(data.train.classes, np.arange(28))  # digits 0-6 x 4 rotations
    np.testing.assert_array_equal(data.test.classes, np.arange(28, 40))  # digits 7-9 x 4 rotations
    # class 4d + r holds digit d's images rotated by r * 90 degrees, in the same order
    for r in range(4):
        np.testing.assert_array_equal(x[y == 4 * 3 + r], np.rot90(x[y == 4 * 3], k=r, axes=(1, 2)))


@pytest.mark.parametrize("make", [lambda: omniglot_encoder((8, 8, 1)), lambda: miniimagenet_resnet((8, 8, 1))])
def test_taskwise_encoder_equals_one_training_mode_call_per_task(make):
    encoder = make()
    wrapped = fs.taskwise_encoder(encoder, 3)
    assert {id(v) for v in wrapped.trainable_variables} == {id(v) for v in encoder.trainable_variables}
    x = np.random.default_rng(0).random((3, 7, 8, 8, 1), dtype=np.float32)
    together = wrapped(x.reshape(21, 8, 8, 1)).numpy()
    separately = np.concatenate([encoder(x[i], training=True).numpy() for i in range(3)])
    np.testing.assert_allclose(together, separately, rtol=1e-4, atol=1e-4)
    # one task's statistics do not leak into another's
    x2 = x.copy()
    x2[0] *= 3.0
    np.testing.assert_allclose(wrapped(x2.reshape(21, 8, 8, 1)).numpy()[7:], together[7:], rtol=1e-5, atol=1e-5)


def test_problem_step_resets_heads_trains_representation_without_retracing():
    """(ApproxGrad's step runs end to end in test_few_shot_runners; the head reset is the base solver's.)"""
    model = fs.FewShotModel(omniglot_encoder((8, 8, 1)), n_way=3, meta_batch=2, seed=0)
    problem = model.problem()
    assert problem.lower_vars[0] is model.head.W and problem.lower_vars[0].shape == (2, 64, 3)
    args = argparse.Namespace(
        method="penalty",
        inner_steps=2,
        jit=False,
        lr_u=1e-2,
        lr_v=1e-2,
        rho=1e-2,
        lam=1e-2,
        eps=1e-2,
        nu=1e-4,
        lr_decay=0.99,
    )
    solver = bl.make_solver(args.method, problem, **fs.solver_options(args))
    config = solver.get_config()  # the original's constants are recorded (results.json config.solver)
    assert (config["c_rho"], config["c_lam"], config["c_eps"], config["schedule"]) == (1.1, 0.9, 0.9, "original")
    assert config["upper_optimizer"]["config"]["epsilon"] == fs.ADAM_EPSILON == solver.lower_optimizer.epsilon
    before = [v.numpy().copy() for v in model.encoder.trainable_variables]
    for seed in range(3):
        sx, sy, qx, qy = fs.random_episode((8, 8, 1), 3, 2, 4, 2, seed=seed)
        model.head.W.assign(tf.fill(model.head.W.shape, 5.0))  # must be re-initialised inside the step
        logs = solver.step((qx, qy), (sx, sy))
        assert np.isfinite(float(logs["upper_loss"])) and np.isfinite(float(logs["lower_loss"]))
        assert np.abs(model.head.W.numpy()).max() < 1.0
    assert solver.trace_count == 1 and solver.penalty_schedule.lr_decay == 0.99
    assert any(not np.allclose(b, v.numpy()) for b, v in zip(before, model.encoder.trainable_variables))


def _prototype_data(n_classes=6, per_class=20, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    prototypes = rng.normal(size=(n_classes, 2, 2, 1)).astype(np.float32)
    labels = np.repeat(np.arange(n_classes), per_class)
    images = prototypes[labels] + noise * rng.normal(size=(len(labels), 2, 2, 1)).astype(np.float32)
    return images, labels


def test_meta_tester_learns_separable_tasks_reproducibly():
    images, labels = _prototype_data()
    identity = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten()])
    model = fs.FewShotModel(identity, n_way=3, meta_batch=2)
    sampler = EpisodeSampler(images, labels, None, n_way=3, k_shot=2, n_query=5, seed=0)
    tester = fs.MetaTester(model, tasks_per_call=4, steps=100, learning_rate=1e-2)
    acc = tester.accuracies(sampler, 10, seed=1)
    assert acc.shape == (10,) and acc.min() >= 0.9
    np.testing.assert_array_equal(acc, tester.accuracies(sampler, 10, seed=1))
    untrained = fs.MetaTester(model, tasks_per_call=4, steps=1, learning_rate=1e-6).accuracies(sampler, 10, seed=1)
    assert untrained.mean() < acc.mean()


def test_summarize_is_mean_and_normal_95_interval():
    mean, ci = fs.summarize(np.array([1.0, 0.0, 1.0, 0.0]))
    assert mean == pytest.approx(0.5) and ci == pytest.approx(1.96 * 0.5 / 2)


def test_episode_source_depends_only_on_seed_and_step():
    images, labels = _prototype_data()

    def source():
        return fs.EpisodeSource(EpisodeSampler(images, labels, None, 3, 1, 2, seed=0), meta_batch=2, seed=7)

    a, b = source(), source()
    b.support(5)
    np.testing.assert_array_equal(a.query(3)[0], b.query(3)[0])  # order of requests does not matter
    sx, _ = a.support(3)
    qx, _ = a.query(3)
    assert sx.shape == (2, 3, 2, 2, 1) and qx.shape == (2, 6, 2, 2, 1)
    assert not np.array_equal(a.support(4)[0], sx)


def test_flags_paper_defaults_smoke_and_overrides(tmp_path):
    omni = load_runner(OMNIGLOT)

    def parse(runner, *argv):
        p = few_shot_config.build_parser("", runner.DEFAULTS, ("x", "digits"))
        return few_shot_config.parse(p, list(argv) + ["--out", str(tmp_path)], "t", runner.DEFAULTS)

    a = parse(omni)
    assert (a.n_way, a.k_shot, a.query, a.meta_batch, a.meta_iterations, a.inner_steps) == (20, 5, 15, 15, 10000, 20)
    assert (a.lr_u, a.lr_v, a.rho, a.lam, a.eps, a.nu, a.lr_decay) == (1e-2, 1e-2, 1e-2, 1e-2, 1e-2, 1e-4, 0.99)
    assert (a.test_tasks, a.eval_tasks, a.test_steps, a.test_lr, a.eval_batch) == (600, 600, 100, 1e-3, 15)
    a = parse(omni, "--n-way", "5", "--k-shot", "1")
    assert (a.meta_batch, a.meta_iterations) == (30, 5000)
    a = parse(omni, "--smoke", "--n-way", "3", "--meta-batch", "4")
    assert (a.n_way, a.meta_batch, a.k_shot, a.meta_iterations) == (3, 4, 1, 4)
    mini = load_runner(MINIIMAGENET)
    a = parse(mini)
    assert (a.n_way, a.k_shot, a.meta_batch, a.meta_iterations, a.lr_u, a.lr_p) == (5, 5, 2, 20001, 1e-3, 1e-3)
    assert parse(mini, "--method", "approxgrad").meta_iterations == 10000
    with pytest.raises(SystemExit):
        parse(omni, "--meta-batch", "0")


def test_adam_update_matches_keras_adam():
    start = np.array([[0.5, -1.0], [2.0, 0.1]], np.float32)
    var = tf.Variable(start)
    opt = keras.optimizers.Adam(0.1, epsilon=fs.ADAM_EPSILON)
    params, m, v = [tf.constant(start)], [tf.zeros((2, 2))], [tf.zeros((2, 2))]
    for step in range(1, 4):
        grad = tf.constant(np.sin(step * start), tf.float32)
        opt.apply_gradients([(grad, var)])
        params, m, v = fs.adam_update(params, [grad], m, v, tf.constant(step), 0.1)
    np.testing.assert_allclose(params[0].numpy(), var.numpy(), rtol=1e-5, atol=1e-6)

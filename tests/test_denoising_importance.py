"""Building blocks of the importance-learning runners: data streams, augmentation, optimizer, problem, metrics."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf.apps.denoising import importance as imp
from bilevel_tf.apps.denoising import config as cfg
from bilevel_tf.apps.denoising import hyper_cleaning as hc
from bilevel_tf.apps.denoising.data import Sizes, augmentation, indexed_batches
from bilevel_tf.apps.classifier import weighted_ce
from bilevel_tf.apps.denoising.evaluation import importance_of, logits_of, noise_detection
from bilevel_tf.apps.denoising.per_example_adam import PerExampleAdam


def test_indexed_batches_carry_matching_indices_and_cover_each_epoch():
    x = np.arange(23, dtype=np.uint8).reshape(23, 1, 1, 1) * 10
    y = np.arange(23) % 10
    ds = indexed_batches(x, y, 5, seed=3, scale=0.5)
    seen = []
    for idx, images, labels in ds:  # one pass: 4 full batches, the remainder dropped
        assert images.shape == (5, 1, 1, 1) and images.dtype == tf.float32
        np.testing.assert_allclose(images.numpy().ravel(), x[idx.numpy()].ravel() * 0.5)
        np.testing.assert_array_equal(labels.numpy(), y[idx.numpy()])
        seen += list(idx.numpy())
    assert len(seen) == 20 and len(set(seen)) == 20
    first = [b[0].numpy() for b in ds.take(2)]
    again = [b[0].numpy() for b in ds.take(2)]
    assert not all(np.array_equal(a, b) for a, b in zip(first, again))  # reshuffled every pass
    with pytest.raises(ValueError, match="batch size 30"):
        indexed_batches(x, y, 30, seed=0, scale=1.0)


def test_augmentation_identity_flip_and_resumable_stream(tmp_path):
    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((4, 9, 9, 3), dtype=np.float32))
    seed = tf.constant([5, 6], tf.int64)
    np.testing.assert_allclose(augmentation(0, 0, 0, False)(images, seed).numpy(), images.numpy(), atol=1e-6)
    flipped = augmentation(0, 0, 0, True)(images, seed).numpy()
    for out, img in zip(flipped, images.numpy()):  # each image is either itself or its mirror image
        assert np.allclose(out, img, atol=1e-5) or np.allclose(out, img[:, ::-1], atol=1e-5)
    full = augmentation(40, 0.2, 0.2, True)
    np.testing.assert_array_equal(full(images, seed).numpy(), full(images, seed).numpy())  # stateless
    assert not np.allclose(full(images, seed).numpy(), images.numpy())

    x, y = rng.integers(0, 255, (12, 8, 8, 3), dtype=np.uint8), np.zeros(12, np.int64)
    it = iter(indexed_batches(x, y, 4, 1, 1 / 255, full, repeat=True))
    next(it)
    path = tf.train.Checkpoint(it=it).save(str(tmp_path / "ck"))  # Keras random layers could not be saved
    expected = next(it)[1].numpy()
    it2 = iter(indexed_batches(x, y, 4, 1, 1 / 255, full, repeat=True))
    tf.train.Checkpoint(it=it2).restore(path)
    np.testing.assert_array_equal(next(it2)[1].numpy(), expected)


def test_per_example_adam_updates_only_the_batch_rows_with_their_own_count():
    u = tf.Variable(tf.zeros([5]))
    opt = PerExampleAdam(0.5)
    opt.build([u])

    @tf.function
    def step(idx, c):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(c * tf.gather(u, idx))
        opt.apply_gradients([(tape.gradient(loss, u), u)])

    step(tf.constant([0, 1, 1]), 2.0)  # duplicate index: gradients summed
    np.testing.assert_allclose(u.numpy(), [-0.5, -0.5, 0, 0, 0], atol=1e-5)  # first update = lr * sign(g)
    step(tf.constant([3]), -1.0)
    np.testing.assert_allclose(u.numpy(), [-0.5, -0.5, 0, 0.5, 0], atol=1e-5)  # rows 0, 1 keep still
    count = [v for v in opt.variables if "count" in v.path][0]
    np.testing.assert_array_equal(np.asarray(count), [1, 1, 0, 1, 0])


def test_per_example_adam_matches_adam_on_dense_gradients():
    a, b = tf.Variable([1.0, -2.0, 3.0]), tf.Variable([1.0, -2.0, 3.0])
    ours, ref = PerExampleAdam(0.1), keras.optimizers.Adam(0.1)
    for t in range(5):
        g = tf.constant([0.3, -1.0, 2.0]) * (t + 1)
        ours.apply_gradients([(g, a)])
        ref.apply_gradients([(g, b)])
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4)


def _tiny_task(n=12):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    task = imp.ImportanceLearning(model, np.zeros(n, np.float32))
    rng = np.random.default_rng(0)
    idx = tf.constant([1, 4, 7, 9])
    batch = (idx, tf.constant(rng.normal(size=(4, 3)), tf.float32), tf.constant([0, 1, 1, 0]))
    val = (tf.constant(rng.normal(size=(4, 3)), tf.float32), tf.constant([1, 0, 1, 0]))
    return task, batch, val


def test_losses_sparse_gradient_and_no_retracing():
    task, batch, val = _tiny_task()
    with tf.GradientTape() as tape:
        g = task.lower_loss(batch)
    grad = tape.gradient(g, task.logits)
    assert isinstance(grad, tf.IndexedSlices)
    assert sorted(grad.indices.numpy()) == [1, 4, 7, 9]
    # uniform importance: g is the plain mean cross-entropy
    assert float(g) == pytest.approx(float(weighted_ce(task.model(batch[1]), batch[2])), rel=1e-6)
    hp = dict(lr_u=1.0, lr_v=0.01, rho=1.0, lam=1.0, eps=1e-3)
    solver = bl.make_solver("penalty", task.problem(), **imp.solver_options("penalty", hp, inner_steps=2))
    assert isinstance(solver.upper_optimizer, PerExampleAdam)
    for _ in range(3):
        solver.step(val, batch)
    assert solver.trace_count == 1
    moved = np.flatnonzero(task.logits.numpy())
    assert list(moved) == [1, 4, 7, 9]  # only the batch's importances changed


@pytest.mark.parametrize("method", ["penalty", "approxgrad", "rmd", "gd"])
def test_every_method_builds_from_a_table_row(method):
    task, batch, val = _tiny_task()
    hp = dict(lr_u=1.0, lr_v=0.01, lr_p=0.01, halve_every=20, pretrain_lr=1e-3)
    solver = bl.make_solver(
        method, task.problem(), **imp.solver_options(method, hp, inner_steps=2, upper_optimizer="adam")
    )
    logs = solver.step(val, batch)
    assert np.isfinite(float(logs["upper_loss"]))
    expected = {"rmd": bl.RMD, "penalty": bl.Penalty, "approxgrad": bl.ApproxGrad, "gd": bl.GD}[method]
    assert isinstance(solver, expected)
    assert type(solver.upper_optimizer) is keras.optimizers.Adam
    lower = keras.optimizers.SGD if method == "rmd" else keras.optimizers.Adam  # RMD unrolls plain SGD steps
    assert type(solver.lower_optimizer) is lower
    assert float(solver.lower_optimizer.learning_rate.numpy()) == pytest.approx(0.01)


def test_renormalize_in_place_and_warm_start_values():
    task, _, _ = _tiny_task(6)
    logits = imp.initial_logits(np.array([0, 1, 2, 3, 4, 5]), np.array([0, 1, 9, 9, 4, 9]), (0.4, 0.6))
    np.testing.assert_allclose(importance_of(logits), [0.6, 0.6, 0.4, 0.4, 0.6, 0.4], rtol=1e-6)
    var = task.logits
    var.assign(logits_of(np.array([0.9, 0.9, 0.9, 0.3, 1e-9, 0.6])).astype(np.float32))
    task.renormalize()
    assert task.logits is var
    a = task.values()
    assert a.min() >= 1e-5 - 1e-9 and a.max() <= 0.99999 + 1e-6
    assert a[4] == pytest.approx(1e-5, rel=1e-2)  # clipped
    np.testing.assert_allclose(a[:3] / a[3], 3.0, rtol=1e-4)  # ratios kept
    assert a.mean() == pytest.approx(0.5, abs=0.02)


def test_noise_detection_counts():
    flipped = np.array([1, 1, 0, 0, 0, 0, 0, 1], bool)
    a = np.array([0.01, 0.5, 0.02, 0.9, 0.8, 0.7, 0.6, 0.05])
    m = noise_detection(a, flipped)
    # the 3 lowest: indices 0 (flipped), 2 (clean), 7 (flipped)
    assert m["noise_precision"] == pytest.approx(2 / 3) and m["noise_recall"] == pytest.approx(2 / 3)
    assert m["noise_precision_below_0.1"] == pytest.approx(2 / 3)
    assert m["noise_recall_below_0.1"] == pytest.approx(2 / 3)
    assert m["mean_importance_flipped"] == pytest.approx((0.01 + 0.5 + 0.05) / 3)


def test_spec_overrides_merge_hyperparameter_rows():
    spec = cfg.DenoisingSpec(
        "x",
        "",
        {"a": Sizes(1, 1, 1), "digits": cfg.DIGITS_SIZES},
        lambda s, n: None,
        0.25,
        10,
        20,
        200,
        5,
        (0.4, 0.6),
        {"penalty": dict(lr_u=3.0, lr_v=1e-4, rho=0.01)},
        5,
        1e-3,
        overrides={"digits": dict(epochs=3, hyperparams={"penalty": dict(lr_v=0.1)})},
    )
    d = spec.for_dataset("digits")
    assert d.epochs == 3 and d.hyperparams["penalty"] == dict(lr_u=3.0, lr_v=0.1, rho=0.01)
    assert spec.for_dataset("a").hyperparams == spec.hyperparams


def test_hyper_cleaning_pieces():
    train, val, test, dirty, y_clean = hc.load_hyperclean_data("digits", 0.5, seed=1)
    assert train[0].shape == (1000, 64) and train[0].max() == pytest.approx(1.0)
    assert dirty.sum() == 500 and np.array_equal(train[1][~dirty], y_clean[~dirty])
    scores = hc.cleaner_scores(np.zeros(1000), dirty)  # x = 0: everything predicted clean
    assert scores["cleaner_recall"] == 1.0 and scores["cleaner_precision"] == pytest.approx(0.5)
    assert scores["f1"] == pytest.approx(2 / 3, rel=1e-6)
    net = hc.build_net("MLP", 64)
    hc.torch_default_init(net, tf.random.Generator.from_seed(0))
    first, second = net.layers[-2].kernel.numpy(), net.layers[-1].kernel.numpy()
    assert np.abs(first).max() <= 1 / 8 and np.abs(second).max() <= 1 / np.sqrt(300)
    assert np.abs(first).max() > 0.1  # uniform over the whole (-1/8, 1/8) range

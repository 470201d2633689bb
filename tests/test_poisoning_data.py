"""Poisoning building blocks: the original's data splits, the lower/upper losses, the retraining loop."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bilevel_tf import datasets, models
from bilevel_tf.apps import poisoning
from bilevel_tf.apps.classifier import ClassifierTrainer


def test_untargeted_split_follows_the_original():
    data = poisoning.untargeted_data("digits", None, 300, 300, 1197, 18, seed=3)
    assert (len(data.x_train), len(data.x_val), len(data.eval_sets["test_accuracy"][0])) == (300, 300, 1197)
    assert data.x_train.shape[1] == 64 and data.image_shape == (8, 8) and not data.targeted
    # the poison starts as the first training images, each with a wrong label
    np.testing.assert_array_equal(data.poison_x0, data.x_train[:18])
    assert np.all(data.poison_y != data.y_train[:18]) and data.poison_y.min() >= 0 and data.poison_y.max() <= 9
    # the three subsets partition the 1797 digits
    x_all, _ = datasets.load_digits()
    rows = {tuple(r) for r in np.concatenate([data.x_train, data.x_val, data.eval_sets["test_accuracy"][0]])}
    assert len(rows) == len({tuple(r) for r in x_all.reshape(len(x_all), -1)})
    again = poisoning.untargeted_data("digits", None, 300, 300, 1197, 18, seed=3)
    np.testing.assert_array_equal(again.poison_y, data.poison_y)
    with pytest.raises(ValueError, match="num-poison"):
        poisoning.untargeted_data("digits", None, 10, 10, 10, 11, seed=0)
    with pytest.raises(ValueError, match="fewer than"):
        poisoning.untargeted_data("digits", None, 1000, 1000, 1000, 5, seed=0)


def test_targeted_split_follows_the_original():
    data = poisoning.targeted_data("digits", None, 300, 500, 500, 18, source=8, target=3, seed=1)
    assert data.targeted
    np.testing.assert_array_equal(np.bincount(data.y_train, minlength=10), np.full(10, 30))  # balanced
    assert np.all(data.y_val == 3) and 35 <= len(data.y_val) <= 50  # validation 8s relabeled 3
    x_src, y_src = data.eval_sets["attack_success_rate"]
    x_full, y_full = data.eval_sets["test_accuracy"]
    assert np.all(y_src == 3) and len(x_src) == np.sum(y_full == 8) > 30  # test 8s relabeled 3
    # poison: 9 training 3s labeled 8 and 9 training 8s labeled 3
    assert np.bincount(data.poison_y, minlength=10)[[3, 8]].tolist() == [9, 9]
    train_rows = {tuple(r): y for r, y in zip(data.x_train, data.y_train)}
    start_labels = np.array([train_rows[tuple(r)] for r in data.poison_x0])
    np.testing.assert_array_equal(np.where(start_labels == 3, 8, 3), data.poison_y)
    with pytest.raises(ValueError, match="two different classes"):
        poisoning.targeted_data("digits", None, 300, 500, 500, 18, source=3, target=3, seed=1)


def test_losses_match_the_original_formulas():
    rng = np.random.default_rng(0)
    data = poisoning.PoisonData(
        rng.random((20, 6), dtype=np.float32),
        rng.integers(0, 10, 20),
        rng.random((7, 6), dtype=np.float32),
        rng.integers(0, 10, 7),
        rng.random((3, 6), dtype=np.float32),
        rng.integers(0, 10, 3),
        {},
        (2, 3),
        targeted=False,
    )
    model = models.logistic_regression(6, 10, use_bias=False)
    poison = tf.Variable(data.poison_x0)
    problem = poisoning.data_augmentation_problem(model, poison, data, 0.0025)
    W = model.layers[-1].kernel.numpy()

    def ce(x, y):
        z = x @ W
        z = z - z.max(1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]))

    x_all = np.concatenate([data.poison_x0, data.x_train])
    y_all = np.concatenate([data.poison_y, data.y_train])
    # g = 0.5 * 0.01 * l2_loss(W) + mean CE over concat(poison, train); l2_loss = sum(W^2) / 2
    np.testing.assert_allclose(float(problem.g(None)), 0.0025 * np.sum(W**2) + ce(x_all, y_all), rtol=1e-5)
    np.testing.assert_allclose(float(problem.f(None)), -ce(data.x_val, data.y_val), rtol=1e-5)  # maximize val loss
    # the box constraint clips the poison pixels to [0, 1]
    (clipped,) = problem.upper_constraint([tf.constant([[-0.5, 0.3, 1.7]])])
    np.testing.assert_allclose(clipped.numpy(), [[0.0, 0.3, 1.0]])


def test_trainer_restarts_from_the_same_fresh_weights():
    x, y = datasets.load_digits()
    x = x.reshape(len(x), -1)[:400]
    y = y[:400]
    trainer = ClassifierTrainer(
        models.logistic_regression(64, 10, use_bias=False), keras.optimizers.Adam(1e-2), weight_decay=0.0025
    )
    fresh = trainer.snapshot()
    loss = trainer.fit(x, y, 200)
    first = trainer.snapshot()
    assert trainer.accuracy(x, y) > 0.9 and loss < 0.5
    trainer.fit(x[:100], y[:100], 5)  # a different run in between must not leak into the next one
    assert trainer.fit(x, y, 200) == pytest.approx(loss, rel=1e-5)
    for a, b in zip(first, trainer.snapshot()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a.numpy(), b.numpy()) for a, b in zip(fresh, first))

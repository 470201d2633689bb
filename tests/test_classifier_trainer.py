"""The apps' one classifier trainer (bilevel_tf.apps.classifier): restarts, mini-batch and full-batch runs,
the loss it minimises."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf import datasets, models
from bilevel_tf.apps import classifier


@pytest.fixture(scope="module")
def digits():
    x, y = datasets.load_digits()
    return x[:240], y[:240].astype(np.int64)


def _weights(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def test_fit_batches_restarts_from_the_initial_weights_and_a_fresh_optimizer(digits):
    x, y = digits
    model = models.mlp((8, 8, 1), hidden=16, num_classes=10)
    initial = _weights(model)
    trainer = classifier.ClassifierTrainer(model, keras.optimizers.Adam(1e-2))
    kw = dict(steps=6, batch_size=32, scale=1 / 16, seed=3)
    trainer.fit_batches(x, y, None, **kw)
    first = _weights(model)
    assert any(not np.array_equal(a, b) for a, b in zip(initial, first))
    trainer.fit_batches(x[:64], y[:64], np.linspace(0, 1, 64), **kw)  # another run in between leaks nothing
    trainer.fit_batches(x, y, np.ones(len(x)), **kw)  # None means weight one for every example
    assert all(np.array_equal(a, b) for a, b in zip(first, _weights(model)))
    trainer.fit_batches(x, y, None, **dict(kw, steps=0))
    assert all(np.array_equal(a, b) for a, b in zip(initial, _weights(model)))


def test_train_classifier_starts_from_the_current_weights(digits):
    x, y = digits
    model = models.logistic_regression((8, 8, 1), 10)
    kw = dict(steps=4, batch_size=32, learning_rate=1e-2, scale=1 / 16, seed=0)
    classifier.train_classifier(model, x, y, None, **kw)
    once = _weights(model)
    classifier.train_classifier(model, x, y, None, **kw)  # continues: a second warm start moves on
    assert any(not np.array_equal(a, b) for a, b in zip(once, _weights(model)))


def test_full_batch_fit_minimises_the_weighted_regularized_loss(digits):
    x, y = digits
    x = x.reshape(len(x), -1) / 16.0
    model = models.logistic_regression(64, 10, use_bias=False)
    w = np.where(np.arange(len(x)) % 2 == 0, 1.0, 0.0).astype(np.float32)
    trainer = classifier.ClassifierTrainer(model, keras.optimizers.SGD(0.5), weight_decay=1e-3)
    loss = trainer.fit(x, y, 30, weights=w)
    # the returned loss is the last step's, taken before its update
    expected = classifier.classifier_loss(model, tf.constant(x, tf.float32), y, tf.constant(w), 1e-3)
    assert float(expected) < loss
    # zero-weight examples do not count: training on the even examples alone gives the same model
    even = _weights(model)
    assert trainer.fit(x[::2], y[::2], 30) == pytest.approx(loss, rel=1e-5)
    for a, b in zip(even, _weights(model)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_full_batch_fit_reports_divergence(digits):
    x, y = digits
    x = x.reshape(len(x), -1) * 1e30
    trainer = classifier.ClassifierTrainer(models.logistic_regression(64, 10), keras.optimizers.SGD(1e30))
    with pytest.raises(bl.NonFiniteError, match="diverged"):
        trainer.fit(x, y, 3)
    assert not np.isfinite(trainer.fit(x, y, 3, check_finite=False))

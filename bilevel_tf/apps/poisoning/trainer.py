"""The classifiers the poisoning attacks train and judge with: losses, a softmax layer, a full-batch trainer."""
from __future__ import annotations

from typing import List, Sequence

import keras
import numpy as np
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf import precision
from bilevel_tf.models import softmax_layer  # noqa: F401  (re-exported: poisoning.softmax_layer)


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(precision.cross_entropy(logits, labels))


def regularized_loss(model: keras.Model, x: tf.Tensor, y: tf.Tensor, weight_decay: float) -> tf.Tensor:
    """weight_decay * ||weights||^2 + mean CE: the original's 0.5 * 0.01 * tf.nn.l2_loss(W) + CE for 0.0025."""
    loss = cross_entropy(model(x, training=False), y)
    if weight_decay:
        loss += weight_decay * tf.add_n([tf.reduce_sum(tf.square(v)) for v in model.trainable_variables])
    return loss


class ClassifierTrainer:
    """Full-batch training of a classifier from ONE fixed fresh initialisation, all steps in one compiled
    loop (the original's ``train_simple`` after ``global_variables_initializer``). Pre-training, every
    retraining on clean + poison and the baselines therefore start from the same weights."""

    def __init__(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, weight_decay: float = 0.0,
                 jit_compile: bool = False):
        self.model, self.optimizer, self.weight_decay = model, optimizer, float(weight_decay)
        self.variables = list(model.trainable_variables)
        optimizer.build(self.variables)
        self._fresh = self.snapshot()
        self._optimizer_start = [(v, tf.identity(v)) for v in optimizer.variables]
        self._loop = tf.function(self._train, jit_compile=jit_compile, reduce_retracing=True)
        self._predict = tf.function(lambda x: tf.argmax(model(x, training=False), axis=-1), reduce_retracing=True)

    def _train(self, x, y, steps):
        loss = tf.constant(0.0)
        for _ in tf.range(steps):
            with tf.GradientTape() as tape:
                loss = regularized_loss(self.model, x, y, self.weight_decay)
            self.optimizer.apply_gradients(zip(tape.gradient(loss, self.variables), self.variables))
        return loss

    def snapshot(self) -> List[tf.Tensor]:
        return [tf.identity(v) for v in self.variables]

    def load(self, values: Sequence[tf.Tensor]) -> None:
        for var, value in zip(self.variables, values):
            var.assign(value)

    def fit(self, x: np.ndarray, y: np.ndarray, steps: int) -> float:
        """Restart from the fresh weights and a fresh optimizer, run ``steps`` full-batch steps; final loss."""
        self.load(self._fresh)
        for var, value in self._optimizer_start:
            var.assign(value)
        loss = float(self._loop(tf.constant(x, tf.float32), tf.constant(y, tf.int64), tf.constant(steps)))
        if not np.isfinite(loss):
            raise bl.NonFiniteError(f"training the classifier diverged (loss {loss})")
        return loss

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._predict(tf.constant(x, tf.float32)).numpy()

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(x) == y)) if len(x) else float("nan")

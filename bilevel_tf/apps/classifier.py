"""Training a classifier from fixed initial weights: the one trainer the apps share.

Importance learning (warm start, the evaluation classifiers), the poisoning attacks (pre-training and the
retraining that judges a poison), the clean-label attack and the hyper-cleaning baseline all train a Keras
classifier on the (weighted, optionally L2-regularized) cross-entropy. :class:`ClassifierTrainer` holds one
compiled training loop per model and restarts every run from the weights the model had when the trainer was
built and from a fresh optimizer state, so that several runs on different data start from the same point.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

import bilevel_tf as bl

from ..core import distribute, precision
from .denoising.data import indexed_batches


def weighted_ce(logits: tf.Tensor, labels: tf.Tensor, weights: Optional[tf.Tensor] = None) -> tf.Tensor:
    """sum_i w_i CE_i / sum_i w_i (mean CE without weights): the original's importance-weighted loss."""
    ce = precision.cross_entropy(logits, labels)
    if weights is None:
        return tf.reduce_mean(ce)
    weights = tf.cast(weights, ce.dtype)
    # a batch whose weights are all zero (hard selection) contributes nothing instead of 0/0; inside a
    # multi-replica step the denominator is the replicas' mean, so the mean over replicas is the global batch's
    # weighted mean
    return tf.reduce_sum(weights * ce) / tf.maximum(distribute.mean_scalar(tf.reduce_sum(weights)), 1e-12)


def classifier_loss(
    model: keras.Model,
    x: tf.Tensor,
    y: tf.Tensor,
    weights: Optional[tf.Tensor] = None,
    weight_decay: float = 0.0,
    training: bool = False,
) -> tf.Tensor:
    """``weighted_ce`` of the model's logits, plus ``weight_decay * sum ||w||^2`` over its trainable weights."""
    loss = weighted_ce(model(x, training=training), y, weights)
    if weight_decay:
        loss += weight_decay * tf.add_n([tf.reduce_sum(tf.square(v)) for v in model.trainable_variables])
    return loss


class ClassifierTrainer:
    """``optimizer`` steps on :func:`classifier_loss`, every run from the same start.

    Every ``fit`` / ``fit_batches`` first restores the trainable weights the model had when the trainer was
    built and the optimizer's freshly built state (step counter and slots), then runs all its steps in one
    compiled loop (traced once per model and input shape, not once per run):

    * :meth:`fit`: full-batch steps on constant ``(x, y[, weights])``, optionally XLA-compiled
      (``jit_compile``); returns the final loss (the poisoning attacks' ``train_simple``).
    * :meth:`fit_batches`: mini-batch steps on a shuffled, repeated stream of ``(x * scale, y, weights)``
      (``denoising.data.indexed_batches``, optionally augmented). Built inside a ``tf.distribute`` strategy's
      scope (a model with distributed variables), the steps run data parallel, each global batch split across
      the replicas.

    ``training`` is the model's ``training`` argument in the loss (dropout / batch norm behaviour).
    """

    def __init__(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        weight_decay: float = 0.0,
        jit_compile: bool = False,
        *,
        training: bool = False,
    ):
        self.model, self.optimizer = model, optimizer
        self.weight_decay, self.training = float(weight_decay), bool(training)
        self.variables = list(model.trainable_variables)
        optimizer.build(self.variables)
        # numpy copies: also right for distributed (mirrored) variables
        self._fresh = [np.array(v) for v in self.variables]
        self._optimizer_start = [(v, np.array(v)) for v in optimizer.variables]
        self._strategy = tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
        self._full_batch = tf.function(self._full_batch_loop, jit_compile=jit_compile, reduce_retracing=True)
        self._batches = tf.function(self._batch_loop)
        self._predict = tf.function(lambda x: tf.argmax(model(x, training=False), axis=-1), reduce_retracing=True)

    # ---------------------------------------------------------------------------------- the compiled loops
    def _step(self, x, y, w, replicas: Optional[int] = None) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = classifier_loss(self.model, x, y, w, self.weight_decay, self.training)
            if replicas is not None:  # in a strategy: Keras sums the replicas' gradients, each adds its share
                loss = loss / replicas
        self.optimizer.apply_gradients(zip(tape.gradient(loss, self.variables), self.variables))
        return loss

    def _full_batch_loop(self, x, y, w, steps):
        loss = tf.constant(0.0)
        for _ in tf.range(steps):
            loss = self._step(x, y, w)
        return loss

    def _batch_loop(self, dataset):  # the whole loop in one graph: no per-step Python overhead
        for xb, yb, wb in dataset:
            if self._strategy is None:
                self._step(xb, yb, wb)
            else:
                self._strategy.run(self._replica_step, args=(xb, yb, wb))

    def _replica_step(self, x, y, w):
        return self._step(x, y, w, self._strategy.num_replicas_in_sync)

    # ---------------------------------------------------------------------------------- runs
    def restart(self) -> None:
        """Back to the initial weights and a fresh optimizer state."""
        self.load(self._fresh)
        for var, value in self._optimizer_start:
            var.assign(value)

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        steps: int,
        weights: Optional[np.ndarray] = None,
        *,
        check_finite: bool = True,
    ) -> float:
        """Restart, then ``steps`` full-batch steps on ``x`` (used as given); the final loss. A non-finite final
        loss raises ``bl.NonFiniteError`` unless ``check_finite=False``."""
        self.restart()
        w = None if weights is None else tf.constant(weights, tf.float32)
        loss = float(self._full_batch(tf.constant(x, tf.float32), tf.constant(y, tf.int64), w, tf.constant(steps)))
        if check_finite and not np.isfinite(loss):
            raise bl.NonFiniteError(f"training the classifier diverged (loss {loss})")
        return loss

    def fit_batches(
        self,
        x: np.ndarray,
        y: np.ndarray,
        weights: Optional[np.ndarray],
        *,
        steps: int,
        batch_size: int,
        scale: float,
        seed: int,
        augment: Optional[Callable] = None,
    ) -> keras.Model:
        """Restart, then ``steps`` steps on mini-batches of ``min(batch_size, len(x))`` examples drawn by
        ``indexed_batches`` (shuffle ``seed``, pixels times ``scale``, ``augment``), each weighted by
        ``weights`` (all ones when None); returns the model."""
        self.restart()
        w = np.ones(len(x), np.float32) if weights is None else np.asarray(weights, np.float32)
        if steps > 0:
            batches = indexed_batches(
                x, y, min(batch_size, len(x)), seed, scale, augment, with_index=False, weights=w, repeat=True
            ).take(steps)
            if self._strategy is not None:
                batches = self._strategy.experimental_distribute_dataset(batches)
            self._batches(batches)
        return self.model

    # ---------------------------------------------------------------------------------- weights, predictions
    def snapshot(self) -> List[tf.Tensor]:
        return [tf.identity(v) for v in self.variables]

    def load(self, values: Sequence) -> None:
        for var, value in zip(self.variables, values):
            var.assign(value)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._predict(tf.constant(x, tf.float32)).numpy()

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(x) == y)) if len(x) else float("nan")


def train_classifier(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    weights: Optional[np.ndarray],
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    scale: float,
    seed: int,
    augment: Optional[Callable] = None,
    training: bool = False,
) -> keras.Model:
    """``steps`` Adam steps on mini-batches of the (weighted) cross-entropy, from the model's current weights
    (one-off use of :meth:`ClassifierTrainer.fit_batches`)."""
    trainer = ClassifierTrainer(model, keras.optimizers.Adam(learning_rate), training=training)
    return trainer.fit_batches(
        x, y, weights, steps=steps, batch_size=batch_size, scale=scale, seed=seed, augment=augment
    )

"""Evaluation for importance learning: accuracies, weighted training of fresh classifiers, noise detection."""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from .. import distribute, precision
from .importance_data import indexed_batches


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


class Predictor:
    """Batched, compiled predictions of one model (one trace per distinct batch shape)."""

    def __init__(self, model: keras.Model, scale: float, batch_size: int = 1000):
        self.model, self.scale, self.batch_size = model, float(scale), int(batch_size)
        self._predict = tf.function(lambda x: tf.argmax(model(tf.cast(x, tf.float32) * self.scale,
                                                              training=False), axis=-1, output_type=tf.int32),
                                    reduce_retracing=True)

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = [self._predict(tf.constant(x[s:s + self.batch_size])).numpy()
               for s in range(0, len(x), self.batch_size)]
        return np.concatenate(out) if out else np.zeros(0, np.int32)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(x) == np.asarray(y))) if len(x) else float("nan")


class ClassifierTrainer:
    """Adam on the (weighted) cross-entropy over shuffled full batches of (x, y, w).

    One compiled training loop per model: training several classifiers in turn (the evaluation runs,
    from the same initial weights) resets the optimizer instead of tracing a new loop each time. Built
    inside a ``tf.distribute`` strategy's scope (a model with distributed variables), it trains data parallel:
    each global batch split across the replicas.
    """

    def __init__(self, model: keras.Model, learning_rate: float, training: bool = False):
        self.model = model
        self.optimizer = keras.optimizers.Adam(learning_rate)
        self.optimizer.build(model.trainable_variables)
        self._initial = [(v, np.array(v)) for v in self.optimizer.variables]
        variables = model.trainable_variables
        self._strategy = tf.distribute.get_strategy() if tf.distribute.has_strategy() else None

        def step(xb, yb, wb):
            with tf.GradientTape() as tape:
                loss = weighted_ce(model(xb, training=training), yb, wb)
                if self._strategy is not None:  # Keras sums the replicas' gradients: each adds its share
                    loss = loss / self._strategy.num_replicas_in_sync
            self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

        def replica_step(xb, yb, wb):
            self._strategy.run(step, args=(xb, yb, wb))

        @tf.function
        def run(dataset):  # the whole loop in one graph: no per-step Python overhead
            for xb, yb, wb in dataset:
                (step if self._strategy is None else replica_step)(xb, yb, wb)
        self._run = run

    def fit(self, x: np.ndarray, y: np.ndarray, weights: Optional[np.ndarray], *, steps: int, batch_size: int,
            scale: float, seed: int, augment: Optional[Callable] = None) -> keras.Model:
        """``steps`` Adam steps from a fresh optimizer state (the model's weights are the caller's business)."""
        for var, value in self._initial:
            var.assign(value)
        w = np.ones(len(x), np.float32) if weights is None else np.asarray(weights, np.float32)
        if steps > 0:
            batches = indexed_batches(x, y, min(batch_size, len(x)), seed, scale, augment, with_index=False,
                                      weights=w, repeat=True).take(steps)
            if self._strategy is not None:
                batches = self._strategy.experimental_distribute_dataset(batches)
            self._run(batches)
        return self.model


def train_classifier(model: keras.Model, x: np.ndarray, y: np.ndarray, weights: Optional[np.ndarray], *,
                     steps: int, batch_size: int, learning_rate: float, scale: float, seed: int,
                     augment: Optional[Callable] = None, training: bool = False) -> keras.Model:
    """``steps`` Adam steps on the (weighted) cross-entropy (one-off use of :class:`ClassifierTrainer`)."""
    return ClassifierTrainer(model, learning_rate, training).fit(x, y, weights, steps=steps, batch_size=batch_size,
                                                                 scale=scale, seed=seed, augment=augment)


def importance_of(logits: np.ndarray) -> np.ndarray:
    """a = (tanh(u) + 1) / 2, the original's parametrization of importance by its atanh logits."""
    return 0.5 * (np.tanh(np.asarray(logits, np.float64)) + 1.0)


def logits_of(importance: np.ndarray) -> np.ndarray:
    return np.arctanh(2.0 * np.asarray(importance, np.float64) - 1.0)


def noise_detection(importance: np.ndarray, flipped: np.ndarray, threshold: float = 0.1) -> Dict[str, float]:
    """How well low importance picks out flipped labels.

    ``noise_precision`` / ``noise_recall``: flag the n_flipped lowest-importance points (ties broken by
    index); with exactly n_flipped flags the two coincide. ``*_below_<threshold>``: flag a < threshold.
    """
    importance, flipped = np.asarray(importance, np.float64), np.asarray(flipped, bool)
    n_flipped = int(flipped.sum())
    out: Dict[str, float] = {}
    if n_flipped == 0:
        return {"noise_precision": float("nan"), "noise_recall": float("nan")}
    lowest = np.argsort(importance, kind="stable")[:n_flipped]
    caught = float(flipped[lowest].sum())
    out["noise_precision"] = caught / n_flipped
    out["noise_recall"] = caught / n_flipped
    flagged = importance < threshold
    tp = float(np.sum(flagged & flipped))
    out[f"noise_precision_below_{threshold:g}"] = tp / flagged.sum() if flagged.any() else float("nan")
    out[f"noise_recall_below_{threshold:g}"] = tp / n_flipped
    out[f"fraction_below_{threshold:g}"] = float(flagged.mean())
    out["mean_importance_clean"] = float(importance[~flipped].mean()) if (~flipped).any() else float("nan")
    out["mean_importance_flipped"] = float(importance[flipped].mean())
    return out


def accuracy_curves(history: Sequence[Dict], keys: Sequence[str]) -> Dict[str, tuple]:
    """(wall-clock without evaluation time, accuracy) per key, from the records that carry the key."""
    curves = {}
    for key in keys:
        rows = [r for r in history if key in r]
        if rows:
            curves[key] = ([r["seconds"] - r.get("eval_seconds", 0.0) for r in rows], [r[key] for r in rows])
    return curves

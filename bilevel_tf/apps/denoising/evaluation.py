"""Evaluation for importance learning: batched predictions, the lower level's accuracies during the bilevel
phase, noise detection, the importance parametrization, accuracy curves (a run's own evaluations, which read its
``Setup``, are in :mod:`.run`)."""

from __future__ import annotations

from typing import Dict, Sequence

import keras
import numpy as np
import tensorflow as tf


class Predictor:
    """Batched, compiled predictions of one model (one trace per distinct batch shape)."""

    def __init__(self, model: keras.Model, scale: float, batch_size: int = 1000):
        self.model, self.scale, self.batch_size = model, float(scale), int(batch_size)
        self._predict = tf.function(
            lambda x: tf.argmax(
                model(tf.cast(x, tf.float32) * self.scale, training=False), axis=-1, output_type=tf.int32
            ),
            reduce_retracing=True,
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = [
            self._predict(tf.constant(x[s : s + self.batch_size])).numpy() for s in range(0, len(x), self.batch_size)
        ]
        return np.concatenate(out) if out else np.zeros(0, np.int32)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(x) == np.asarray(y))) if len(x) else float("nan")


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

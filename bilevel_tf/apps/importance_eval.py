"""Evaluation for importance learning: batched predictions, the lower level's accuracies during the bilevel
phase, fresh classifiers trained on the learned weighting and the baselines' (with ``apps.classifier``), noise
detection, the importance parametrization, accuracy curves."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, Sequence

import keras
import numpy as np
import tensorflow as tf

from .classifier import ClassifierTrainer, weighted_ce  # noqa: F401  (weighted_ce re-exported)

if TYPE_CHECKING:
    from .importance import Setup


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


def lower_evaluation(setup: Setup) -> Callable[[], Dict[str, float]]:
    s, predictor = setup.splits, setup.predictor

    def evaluate() -> Dict[str, float]:
        a = setup.task.values()
        return {"lower_train_accuracy": predictor.accuracy(s.x_train, setup.noisy),  # noisy labels, as fig. 4a
                "lower_val_accuracy": predictor.accuracy(s.x_val, s.y_val),
                "lower_test_accuracy": predictor.accuracy(s.x_test, s.y_test),
                "mean_importance": float(a.mean()),
                "noise_precision": noise_detection(a, setup.flipped)["noise_precision"]}
    return evaluate


def evaluation_classifiers(setup: Setup, importance: np.ndarray, steps: int, baselines: bool) -> Dict[str, float]:
    """Fresh classifiers (same initial weights, data order seed and step budget) on different weightings."""
    s, spec, args = setup.splits, setup.spec, setup.args
    model = spec.classifier(args.model, s.input_shape)
    # every fit restarts from the model's initial weights and a fresh Adam
    trainer, predictor = ClassifierTrainer(model, keras.optimizers.Adam(spec.eval_lr)), Predictor(model, s.scale)
    x_tv = np.concatenate([s.x_train, s.x_val])
    y_tv = np.concatenate([setup.noisy, s.y_val])
    ones_val = np.ones(len(s.x_val), np.float32)
    if spec.selection_threshold is not None:
        learned = (importance > spec.selection_threshold).astype(np.float32)
    else:
        learned = importance.astype(np.float32)
    runs = {"test_accuracy": (x_tv, y_tv, np.concatenate([learned, ones_val])),
            "noisy_baseline_test_accuracy": (x_tv, y_tv, None)}
    if baselines:
        clean = ~setup.flipped
        runs["oracle_test_accuracy"] = (np.concatenate([s.x_train[clean], s.x_val]),
                                        np.concatenate([setup.noisy[clean], s.y_val]), None)
        runs["val_only_test_accuracy"] = (s.x_val, s.y_val, None)
    out = {}
    for key, (x, y, w) in runs.items():
        trainer.fit_batches(x, y, w, steps=steps, batch_size=args.batch_size, scale=s.scale, seed=args.seed + 2,
                            augment=setup.augment)
        out[key] = predictor.accuracy(s.x_test, s.y_test)
    if baselines:
        out["train_val_test_accuracy"] = out["noisy_baseline_test_accuracy"]
    if spec.selection_threshold is not None:
        out["selected_training_points"] = int(learned.sum())
    return out

"""Keras 3's update rules of Adam, SGD and RMSprop (their default constants) in float64 NumPy, for baselines
that step a known gradient outside TensorFlow (the robustness grid's ``exact`` row)."""

from __future__ import annotations

import numpy as np

KINDS = ("adam", "sgd", "rmsprop")


class KerasRule:
    """One optimizer of ``kind`` at ``learning_rate``, stepping a 1-d array: the same arithmetic as
    ``keras.optimizers.Adam`` (beta 0.9 / 0.999, epsilon 1e-7, bias-corrected step), ``SGD`` (no momentum) and
    ``RMSprop`` (rho 0.9, no momentum, epsilon 1e-7)."""

    def __init__(self, kind: str, learning_rate: float, size: int):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind, self.lr = kind, float(learning_rate)
        self.m, self.v, self.t = np.zeros(size), np.zeros(size), 0

    def step(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        self.t += 1
        if self.kind == "sgd":
            return x - self.lr * grad
        if self.kind == "rmsprop":
            self.v = 0.9 * self.v + 0.1 * grad * grad
            return x - self.lr * grad / (np.sqrt(self.v) + 1e-7)
        self.m += (grad - self.m) * 0.1
        self.v += (grad * grad - self.v) * 0.001
        alpha = self.lr * np.sqrt(1 - 0.999**self.t) / (1 - 0.9**self.t)
        return x - self.m * alpha / (np.sqrt(self.v) + 1e-7)

"""Regularization selection: one regularization weight per feature, exp(u_j), learned on validation data.

    g(u, v) = L_train(v) + 1/2 sum_j (exp(u_j) + mu0) v_j^2          (mu0 = 1e-4 keeps g strongly convex)
    f(u, v) = L_val(v)

with L the mean squared error / 2 (``kind="ridge"``: v*(u) in closed form) or the mean logistic loss of labels
in {-1, +1} (``kind="logistic"``, as the bilevel benchmark's regularization selection). The implicit
hypergradient is  grad F(u)_j = -exp(u_j) v*_j p_j  with  p = (H_vv g)^-1 grad_v f(v*).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np
import tensorflow as tf
from numpy.typing import DTypeLike

from . import reference
from .base import NumericalToyBilevel

KINDS = ("ridge", "logistic")
MU0 = 1e-4


class RegularizationSelection(NumericalToyBilevel):
    """The problem above on data ``x_train, y_train, x_val, y_val`` (labels +-1 for logistic)."""

    def __init__(self, data: Dict[str, np.ndarray], kind: str = "ridge", dtype: DTypeLike = np.float32):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
        self.kind = kind
        n_features = np.shape(data["x_train"])[1]
        super().__init__(data, n_features, n_features, dtype)

    # ------------------------------------------------------------------ TensorFlow losses
    def _loss(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        z = tf.linalg.matvec(x, self.v)
        if self.kind == "ridge":
            return 0.5 * tf.reduce_mean(tf.square(z - y))
        return tf.reduce_mean(tf.math.softplus(-y * z))

    def lower_loss(self, batch: Any = None) -> tf.Tensor:
        penalty = 0.5 * tf.reduce_sum((tf.exp(self.u) + MU0) * tf.square(self.v))
        return self._loss(self.data("x_train"), self.data("y_train")) + penalty

    def upper_loss(self, batch: Any = None) -> tf.Tensor:
        return self._loss(self.data("x_val"), self.data("y_val"))

    # ------------------------------------------------------------------ float64 reference
    def _loss_np(self, v: np.ndarray, x: np.ndarray, y: np.ndarray) -> Tuple[float, np.ndarray, np.ndarray]:
        z = x @ v
        n = len(y)
        if self.kind == "ridge":
            r = z - y
            return 0.5 * float(r @ r) / n, x.T @ r / n, x.T @ x / n
        s = reference.sigmoid(-y * z)
        return (float(np.mean(reference.log1pexp(-y * z))), -x.T @ (y * s) / n, (x.T * (s * (1 - s))) @ x / n)

    def lower_solution(self, u: np.ndarray) -> np.ndarray:
        x, y = self.np["x_train"], self.np["y_train"]
        reg = np.exp(u) + MU0

        def oracle(v: np.ndarray) -> Tuple[float, np.ndarray, np.ndarray]:
            value, grad, hess = self._loss_np(v, x, y)
            return value + 0.5 * float(reg @ v**2), grad + reg * v, hess + np.diag(reg)

        if self.kind == "ridge":
            _, _, hess = oracle(np.zeros(self.n_v))
            return np.linalg.solve(hess, x.T @ y / len(y))
        return reference.newton(oracle, getattr(self, "_v_warm", np.zeros(self.n_v)))

    def value_and_grad(self, u: np.ndarray) -> Tuple[float, np.ndarray]:
        v = self.lower_solution(u)
        self._v_warm = v
        value, grad_f, _ = self._loss_np(v, self.np["x_val"], self.np["y_val"])
        _, _, hess = self._loss_np(v, self.np["x_train"], self.np["y_train"])
        p = np.linalg.solve(hess + np.diag(np.exp(u) + MU0), grad_f)
        return value, -np.exp(u) * v * p


def regularization_data(
    seed: int, kind: str = "ridge", n_features: int = 10, n_train: int = 0, n_val: int = 0
) -> Dict[str, np.ndarray]:
    """Synthetic data: features with scales log-uniform in [0.3, 3], half of them irrelevant, noisy targets
    (ridge) or labels with 10% flipped (logistic); n_train = 2 n_features and n_val = 4 n_features unless given."""
    rng = np.random.default_rng(seed)
    n_train, n_val = n_train or 2 * n_features, n_val or 4 * n_features
    scales = np.exp(rng.uniform(np.log(0.3), np.log(3.0), n_features))
    beta = rng.normal(size=n_features) * (rng.random(n_features) < 0.5)
    x = rng.normal(size=(n_train + n_val, n_features)) * scales
    z = x @ beta / np.sqrt(n_features) + 0.5 * rng.normal(size=len(x))
    if kind == "logistic":
        z = np.where(rng.random(len(x)) < 0.1, -1.0, 1.0) * np.where(z >= 0, 1.0, -1.0)
    return dict(x_train=x[:n_train], y_train=z[:n_train], x_val=x[n_train:], y_val=z[n_train:])


def regularization_selection(
    seed: int, kind: str = "ridge", dtype: DTypeLike = np.float32, **sizes: int
) -> RegularizationSelection:
    return RegularizationSelection(regularization_data(seed, kind, **sizes), kind, dtype)

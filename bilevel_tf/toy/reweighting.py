"""Data reweighting with a linear model: one weight sigma(u_i) per training point, learned on clean
validation data, with a fraction of the training labels flipped.

    g(u, v) = 1/n sum_i sigma(u_i) l_i(v) + mu/2 ||v||^2      l_i = logistic loss of point i (labels +-1)
    f(u, v) = mean logistic loss on the validation set

The implicit hypergradient is  grad F(u)_i = -sigma'(u_i) <grad l_i(v*), p> / n  with  p = (H_vv g)^-1 grad_v f.
The best weights of flipped points go to zero (u_i -> -infinity): measure it by :meth:`suboptimality`.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np
import tensorflow as tf
from numpy.typing import DTypeLike

from . import reference
from .base import NumericalToyBilevel

MU = 1e-2


class Reweighting(NumericalToyBilevel):
    """The problem above on data ``x_train, y_train, x_val, y_val`` (labels +-1; ``flipped`` marks the noise)."""

    def __init__(self, data: Dict[str, np.ndarray], dtype: DTypeLike = np.float32):
        self.flipped = np.asarray(data.pop("flipped", np.zeros(len(data["y_train"]), bool)))
        super().__init__(data, np.shape(data["x_train"])[0], np.shape(data["x_train"])[1], dtype)

    def lower_loss(self, batch: Any = None) -> tf.Tensor:
        margins = self.data("y_train") * tf.linalg.matvec(self.data("x_train"), self.v)
        return tf.reduce_mean(tf.sigmoid(self.u) * tf.math.softplus(-margins)) + 0.5 * MU * tf.reduce_sum(
            tf.square(self.v)
        )

    def upper_loss(self, batch: Any = None) -> tf.Tensor:
        margins = self.data("y_val") * tf.linalg.matvec(self.data("x_val"), self.v)
        return tf.reduce_mean(tf.math.softplus(-margins))

    def _lower_oracle(self, w: np.ndarray) -> reference.Oracle:
        x, y = self.np["x_train"], self.np["y_train"]
        n = len(y)

        def oracle(v: np.ndarray) -> Tuple[float, np.ndarray, np.ndarray]:
            m = y * (x @ v)
            s = reference.sigmoid(-m)
            value = float(w @ reference.log1pexp(-m)) / n + 0.5 * MU * float(v @ v)
            grad = -x.T @ (w * y * s) / n + MU * v
            hess = (x.T * (w * s * (1 - s))) @ x / n + MU * np.eye(len(v))
            return value, grad, hess

        return oracle

    def value_and_grad(self, u: np.ndarray) -> Tuple[float, np.ndarray]:
        w = reference.sigmoid(u)
        oracle = self._lower_oracle(w)
        v = reference.newton(oracle, self._v_warm)
        self._v_warm = v
        xv, yv = self.np["x_val"], self.np["y_val"]
        mv = yv * (xv @ v)
        value = float(np.mean(reference.log1pexp(-mv)))
        grad_f = -xv.T @ (yv * reference.sigmoid(-mv)) / len(yv)
        p = np.linalg.solve(oracle(v)[2], grad_f)
        x, y = self.np["x_train"], self.np["y_train"]
        per_point = -(y * reference.sigmoid(-y * (x @ v)))[:, None] * x  # grad l_i(v), one row per point
        return value, -w * (1 - w) * (per_point @ p) / len(y)


def reweighting_data(
    seed: int, n_train: int = 100, n_features: int = 5, n_val: int = 100, flip: float = 0.3
) -> Dict[str, np.ndarray]:
    """Two Gaussian classes (means +-m along a random direction, a constant feature for the bias), ``flip`` of
    the training labels flipped; ``flipped`` marks them."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    direction = rng.normal(size=n_features - 1)
    direction /= np.linalg.norm(direction)
    x = rng.normal(size=(n, n_features - 1)) + 1.0 * y[:, None] * direction
    x = np.concatenate([x, np.ones((n, 1))], axis=1)
    flipped = rng.random(n_train) < flip
    y_train = np.where(flipped, -y[:n_train], y[:n_train])
    return dict(x_train=x[:n_train], y_train=y_train, x_val=x[n_train:], y_val=y[n_train:], flipped=flipped)


def reweighting(seed: int, dtype: DTypeLike = np.float32, **sizes: int) -> Reweighting:
    return Reweighting(reweighting_data(seed, **sizes), dtype)

"""The benchmark's two machine-learning problems on data scikit-learn ships (offline), as tasks (see ``tasks``).

- :class:`RegularizationTask`: regularization selection. L2-logistic regression on the breast-cancer data
  (569 x 30, standardized), one regularization strength exp(x_j) per feature:
  g(x, z) = 1/n sum_i log(1 + exp(-y_i a_i'z)) + 1/2 sum_j exp(x_j) z_j^2 on the training split,
  f(x, z) = the same logistic loss, unregularized, on the validation split. ``value`` is f at the exact lower
  solution z*(x) (L-BFGS to 1e-10, warm-started at the solver's z), the value function itself.
- :class:`DataCleaningTask`: data cleaning (Franceschi et al. 2017) on the 8 x 8 digits: a ``ratio`` of the
  training labels replaced by uniformly random ones, one weight sigmoid(x_i) per training sample,
  g(x, W) = 1/n sum_i sigmoid(x_i) CE(a_i W, y_i) + reg ||W||^2 (a linear model, reg = 0.2 as in the
  benchmark's MNIST problem), f(x, W) = CE on clean validation data. ``value`` is f at the solver's W; the
  test error and how many of the lowest-weighted half of the training samples are corrupted come with it.

Both start where the benchmark's objective starts: x0 = -2 (every entry), lower variables 0.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np
from scipy import optimize, special


def _splits(features: np.ndarray, labels: np.ndarray, sizes: Tuple[int, int], seed: int):
    """(train, validation, test) pairs after a seeded shuffle; features standardized with training statistics."""
    order = np.random.default_rng(seed).permutation(len(labels))
    n_train, n_val = sizes
    parts = np.split(order, [n_train, n_train + n_val])
    mean, std = features[parts[0]].mean(0), features[parts[0]].std(0) + 1e-8
    return [((features[p] - mean) / std, labels[p]) for p in parts]


class _TFVariables:
    """TensorFlow side of a task: variables at the start, losses as given, reset and read-out."""

    def __init__(self, start, upper_loss, lower_loss, dtype: str, sizes: Tuple[int, int]):
        import tensorflow as tf
        import bilevel_tf as bl

        self._start = [tf.constant(v, dtype) for v in start]
        self.upper = tf.Variable(self._start[0], name="outer_var")
        self.lower = [tf.Variable(v, name=f"inner_var_{i}") for i, v in enumerate(self._start[1:])]
        self._losses = (upper_loss, lower_loss)
        self._problem = bl.BilevelProblem(self.upper_loss, self.lower_loss, [self.upper], self.lower)
        self._sizes = sizes  # (n_upper, n_lower)

    def upper_loss(self, batch):
        return self._losses[0](self, batch)

    def lower_loss(self, batch):
        return self._losses[1](self, batch)

    def problem(self):
        return self._problem

    def finite_sum_problem(self):
        """The problem with ``bl.FiniteSum`` losses (batches: index vectors) for SABA: sample i's loss is the
        batch loss of the batch [i] (a mean over samples plus a regularizer, so the mean is unchanged)."""
        import tensorflow as tf
        import bilevel_tf as bl

        def finite_sum(loss, size):
            def per_sample(batch):
                indices = tf.range(size) if batch is None else batch
                return tf.vectorized_map(lambda i: loss(i[None]), indices)

            return bl.FiniteSum(per_sample, size, indices=lambda batch: batch)

        return bl.BilevelProblem(
            finite_sum(self.upper_loss, self._sizes[0]),
            finite_sum(self.lower_loss, self._sizes[1]),
            [self.upper],
            self.lower,
        )

    def reset(self) -> None:
        for var, value in zip([self.upper] + self.lower, self._start):
            var.assign(value)

    def values(self):
        lower = [v.numpy().astype(np.float64) for v in self.lower]
        return self.upper.numpy().astype(np.float64), (lower[0] if len(lower) == 1 else lower)


def _gather(tensor, batch):
    import tensorflow as tf

    return tensor if batch is None else tf.gather(tensor, batch)


class RegularizationTask:
    """Regularization selection on scikit-learn's breast-cancer data (module docstring)."""

    def __init__(self, n_train: int = 256, n_val: int = 128, seed: int = 0):
        from sklearn.datasets import load_breast_cancer

        features, labels = load_breast_cancer(return_X_y=True)
        (self.a_train, y_train), (self.a_val, y_val), (self.a_test, y_test) = _splits(
            features, 2.0 * labels - 1.0, (n_train, n_val), seed
        )
        self.y_train, self.y_val, self.y_test = y_train, y_val, y_test
        self.name, self.n_lower, self.n_upper = "regularization", n_train, n_val
        self.dim = features.shape[1]

    def start(self):
        return np.full(self.dim, -2.0), np.zeros(self.dim)

    def build(self, dtype: str = "float64"):
        import tensorflow as tf

        c = {k: tf.constant(getattr(self, k), dtype) for k in ("a_train", "y_train", "a_val", "y_val")}

        def logistic(a, y, z, batch):
            return tf.reduce_mean(tf.nn.softplus(-_gather(y, batch) * tf.linalg.matvec(_gather(a, batch), z)))

        def lower(t, batch):
            z = t.lower[0]
            return logistic(c["a_train"], c["y_train"], z, batch) + 0.5 * tf.reduce_sum(tf.exp(t.upper) * z * z)

        def upper(t, batch):
            return logistic(c["a_val"], c["y_val"], t.lower[0], batch)

        return _TFVariables(self.start(), upper, lower, dtype, (self.n_upper, self.n_lower))

    def inner_solution(self, x: np.ndarray, z_init: Optional[np.ndarray] = None) -> np.ndarray:
        a, y, alpha = self.a_train, self.y_train, np.exp(x)

        def loss_and_grad(z):
            margin = y * (a @ z)
            loss = np.mean(np.logaddexp(0.0, -margin)) + 0.5 * np.sum(alpha * z * z)
            grad = -(a.T @ (y * special.expit(-margin))) / len(y) + alpha * z
            return loss, grad

        z0 = np.zeros(self.dim) if z_init is None else np.asarray(z_init, np.float64)
        return optimize.minimize(
            loss_and_grad, z0, jac=True, method="L-BFGS-B", options=dict(gtol=1e-10, ftol=1e-14, maxiter=1000)
        ).x

    def evaluate(self, outer_var: np.ndarray, inner_var: np.ndarray) -> Dict[str, Any]:
        x, z = np.asarray(outer_var, np.float64), np.asarray(inner_var, np.float64)
        z_star = self.inner_solution(x, z)

        def val_loss(w):
            return float(np.mean(np.logaddexp(0.0, -self.y_val * (self.a_val @ w))))

        return dict(
            value=val_loss(z_star),
            upper_loss_at_z=val_loss(z),
            inner_distance=float(np.sum((z - z_star) ** 2)),
            test_error=float(np.mean(np.sign(self.a_test @ z_star) != self.y_test)),
        )


class DataCleaningTask:
    """Data cleaning on scikit-learn's digits (module docstring)."""

    def __init__(self, ratio: float = 0.5, n_train: int = 1024, n_val: int = 256, reg: float = 0.2, seed: int = 0):
        from sklearn.datasets import load_digits

        if not 0 <= ratio < 1:
            raise ValueError(f"ratio must be in [0, 1), got {ratio!r}")
        features, labels = load_digits(return_X_y=True)
        (self.a_train, y_train), (self.a_val, self.y_val), (self.a_test, self.y_test) = _splits(
            features, labels, (n_train, n_val), seed
        )
        rng = np.random.default_rng(seed + 1)
        self.corrupted = rng.random(n_train) < ratio
        self.y_train = np.where(self.corrupted, rng.integers(0, 10, n_train), y_train)
        self.name, self.n_lower, self.n_upper, self.reg = f"datacleaning[{ratio:g}]", n_train, n_val, reg

    def start(self):
        return np.full(self.n_lower, -2.0), np.zeros((self.a_train.shape[1], 10))

    def build(self, dtype: str = "float64"):
        import tensorflow as tf

        c = {k: tf.constant(getattr(self, k), dtype) for k in ("a_train", "a_val")}
        labels = {k: tf.constant(getattr(self, k), tf.int32) for k in ("y_train", "y_val")}

        def cross_entropy(a, y, w, batch):
            return tf.nn.sparse_softmax_cross_entropy_with_logits(_gather(y, batch), _gather(a, batch) @ w)

        def lower(t, batch):
            w, weights = t.lower[0], tf.sigmoid(_gather(t.upper, batch))
            return tf.reduce_mean(
                weights * cross_entropy(c["a_train"], labels["y_train"], w, batch)
            ) + self.reg * tf.reduce_sum(w * w)

        def upper(t, batch):
            return tf.reduce_mean(cross_entropy(c["a_val"], labels["y_val"], t.lower[0], batch))

        return _TFVariables(self.start(), upper, lower, dtype, (self.n_upper, self.n_lower))

    def evaluate(self, outer_var: np.ndarray, inner_var: np.ndarray) -> Dict[str, Any]:
        w = np.asarray(inner_var, np.float64)
        logits = self.a_val @ w
        val_loss = float(np.mean(special.logsumexp(logits, axis=1) - logits[np.arange(len(self.y_val)), self.y_val]))
        lowest = np.argsort(np.asarray(outer_var))[: self.n_lower // 2]
        return dict(
            value=val_loss,
            val_error=float(np.mean(logits.argmax(1) != self.y_val)),
            test_error=float(np.mean((self.a_test @ w).argmax(1) != self.y_test)),
            corrupted_in_lowest_half=float(self.corrupted[lowest].mean()),
        )

"""scikit-learn's bundled 8x8 handwritten digits (1797 images; offline) and a seeded split helper."""

from __future__ import annotations

import gzip
import importlib.util
import os
from typing import Optional, Tuple

import numpy as np

Split = Tuple[np.ndarray, np.ndarray]


def load_digits() -> Split:
    """The 1797 sklearn digits: images float32 (N, 8, 8, 1) in [0, 1] (pixel/16), labels int64 0..9."""
    table = _bundled_digits_table()
    if table is None:  # another layout of scikit-learn: its own loader
        from sklearn.datasets import load_digits as _sk_load_digits

        bunch = _sk_load_digits()
        images, target = bunch.images, bunch.target
    else:
        images, target = table[:, :-1].reshape(-1, 8, 8), table[:, -1]
    x = (np.asarray(images, dtype=np.float32) / 16.0)[..., None]
    return x, np.asarray(target, dtype=np.int64)


def _bundled_digits_table() -> Optional[np.ndarray]:
    """scikit-learn's digits.csv.gz (64 pixels and the label per row), read without importing scikit-learn,
    which loads SciPy (a second or more: a runner's checks before TensorFlow loads should answer at once)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", "digits.csv.gz")
    if not os.path.isfile(path):
        return None
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    return table if table.ndim == 2 and table.shape[1] == 65 else None


def train_val_test_split(
    x: np.ndarray, y: np.ndarray, n_val: int, n_test: int, seed: Optional[int] = 0
) -> Tuple[Split, Split, Split]:
    """Seeded random (unstratified) split into ``(train, val, test)`` pairs of sizes N-n_val-n_test, n_val, n_test."""
    x, y = np.asarray(x), np.asarray(y)
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x has {n} rows but y has {len(y)}")
    if n_val < 0 or n_test < 0 or n_val + n_test >= n:
        raise ValueError(
            f"n_val={n_val} and n_test={n_test} must be >= 0 and leave at least one of the {n} examples for training"
        )
    perm = np.random.default_rng(seed).permutation(n)
    val, test, train = perm[:n_val], perm[n_val : n_val + n_test], perm[n_val + n_test :]
    return (x[train], y[train]), (x[val], y[val]), (x[test], y[test])

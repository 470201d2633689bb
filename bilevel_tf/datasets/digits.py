"""scikit-learn's bundled 8x8 handwritten digits (1797 images; offline) and a seeded split helper."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

Split = Tuple[np.ndarray, np.ndarray]


def load_digits() -> Split:
    """The 1797 sklearn digits: images float32 (N, 8, 8, 1) in [0, 1] (pixel/16), labels int64 0..9."""
    from sklearn.datasets import load_digits as _sk_load_digits  # lazy: sklearn import is slowish

    bunch = _sk_load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[..., None]
    return x, np.asarray(bunch.target, dtype=np.int64)


def train_val_test_split(x: np.ndarray, y: np.ndarray, n_val: int, n_test: int,
                         seed: Optional[int] = 0) -> Tuple[Split, Split, Split]:
    """Seeded random (unstratified) split into ``(train, val, test)`` pairs of sizes N-n_val-n_test, n_val, n_test."""
    x, y = np.asarray(x), np.asarray(y)
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x has {n} rows but y has {len(y)}")
    if n_val < 0 or n_test < 0 or n_val + n_test >= n:
        raise ValueError(f"n_val={n_val} and n_test={n_test} must be >= 0 and leave at least one of the "
                         f"{n} examples for training")
    perm = np.random.default_rng(seed).permutation(n)
    val, test, train = perm[:n_val], perm[n_val:n_val + n_test], perm[n_val + n_test:]
    return (x[train], y[train]), (x[val], y[val]), (x[test], y[test])

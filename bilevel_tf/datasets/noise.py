"""Synthetic label noise for the data-denoising (importance learning) experiments."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


def _check(y: np.ndarray, fraction: float, num_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array of class ids, got {y.dtype} with shape {y.shape}")
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2 to flip labels, got {num_classes}")
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes - 1}], found values in [{y.min()}, {y.max()}]")
    return y


def _flip_at(
    y: np.ndarray, idx: np.ndarray, num_classes: int, rng: np.random.Generator
) -> Tuple[np.ndarray, np.ndarray]:
    # Adding an offset in 1..C-1 modulo C gives a uniformly random class different from the current one.
    y_noisy = y.copy()
    offsets = rng.integers(1, num_classes, size=len(idx))
    y_noisy[idx] = (y[idx] + offsets) % num_classes
    mask = np.zeros(len(y), dtype=bool)
    mask[idx] = True
    return y_noisy, mask


def flip_labels(
    y: np.ndarray, fraction: float, num_classes: int, seed: Optional[int] = 0
) -> Tuple[np.ndarray, np.ndarray]:
    """Flip exactly ``round(fraction * N)`` labels, chosen uniformly without replacement, each to a uniformly
    random different class. Returns ``(y_noisy, flipped_mask)``; ``y`` is not modified."""
    y = _check(y, fraction, num_classes)
    rng = np.random.default_rng(seed)
    n_flip = int(round(fraction * len(y)))
    idx = rng.choice(len(y), size=n_flip, replace=False)
    return _flip_at(y, idx, int(num_classes), rng)


def flip_first(
    y: np.ndarray, fraction: float, num_classes: int, seed: Optional[int] = 0
) -> Tuple[np.ndarray, np.ndarray]:
    """The original code's variant: flip the FIRST ``int(fraction * N)`` labels (to a random different class).
    Returns ``(y_noisy, flipped_mask)``."""
    y = _check(y, fraction, num_classes)
    idx = np.arange(int(fraction * len(y)))
    return _flip_at(y, idx, int(num_classes), np.random.default_rng(seed))

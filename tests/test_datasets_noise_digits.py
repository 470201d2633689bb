"""Label flipping (noise.py) and the bundled sklearn digits (digits.py)."""

import numpy as np
import pytest

from bilevel_tf.datasets import flip_first, flip_labels, load_digits, train_val_test_split


@pytest.mark.parametrize(
    "n,fraction,expected", [(1000, 0.25, 250), (1000, 0.5, 500), (7, 0.5, 4), (10, 0.0, 0), (3, 0.99, 3)]
)
def test_flip_labels_exact_count_and_always_different(n, fraction, expected):
    y = np.random.default_rng(0).integers(0, 10, n)
    y_before = y.copy()
    y_noisy, mask = flip_labels(y, fraction, 10, seed=1)
    np.testing.assert_array_equal(y, y_before)  # input untouched
    assert mask.dtype == bool and mask.sum() == expected
    assert np.all(y_noisy[mask] != y[mask]) and np.array_equal(y_noisy[~mask], y[~mask])
    np.testing.assert_array_equal(mask, y_noisy != y)
    assert y_noisy.dtype == y.dtype and y_noisy.min() >= 0 and y_noisy.max() <= 9


def test_flip_labels_seeded_and_uniform():
    y = np.zeros(20000, dtype=np.int64)
    a, ma = flip_labels(y, 0.45, 10, seed=3)
    b, mb = flip_labels(y, 0.45, 10, seed=3)
    c, mc = flip_labels(y, 0.45, 10, seed=4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ma, mb)
    assert not np.array_equal(ma, mc)
    counts = np.bincount(a[ma], minlength=10)
    assert counts[0] == 0 and counts[1:].min() > 900 and counts[1:].max() < 1100  # 9000 flips / 9 classes
    # flipped points are spread over the whole array, not the first ones
    assert ma[:10000].sum() > 4000 and ma[10000:].sum() > 4000


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        (dict(fraction=1.0), r"fraction must be in \[0, 1\), got 1.0"),
        (dict(fraction=-0.1), r"fraction must be in \[0, 1\), got -0.1"),
        (dict(num_classes=1), "num_classes must be an integer >= 2"),
        (dict(num_classes=3), r"labels must be in \[0, 2\], found values in \[0, 4\]"),
    ],
)
def test_flip_labels_validation(kwargs, msg):
    args = dict(y=np.arange(5), fraction=0.2, num_classes=5, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=msg):
        flip_labels(**args)
    with pytest.raises(ValueError, match=msg):
        flip_first(**args)


def test_flip_labels_rejects_one_hot():
    with pytest.raises(ValueError, match="1-D integer array"):
        flip_labels(np.eye(3, dtype=np.int64), 0.5, 3)


def test_flip_first_matches_original_variant():
    y = np.random.default_rng(5).integers(0, 10, 100)
    y_noisy, mask = flip_first(y, 0.29, 10, seed=0)
    n = int(0.29 * 100)  # 28: the original truncates
    assert n == 28 and mask[:n].all() and not mask[n:].any()
    assert np.all(y_noisy[:n] != y[:n]) and np.array_equal(y_noisy[n:], y[n:])


def test_load_digits():
    x, y = load_digits()
    assert x.shape == (1797, 8, 8, 1) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert y.dtype == np.int64 and set(np.unique(y)) == set(range(10))
    assert np.allclose(x * 16, np.round(x * 16))  # pixel / 16 of integer 0..16 intensities


def test_train_val_test_split():
    x = np.arange(100)[:, None] * np.ones((1, 3))
    y = np.arange(100)
    (xtr, ytr), (xv, yv), (xte, yte) = train_val_test_split(x, y, 20, 30, seed=2)
    assert (len(ytr), len(yv), len(yte)) == (50, 20, 30)
    assert sorted(np.concatenate([ytr, yv, yte]).tolist()) == list(range(100))
    np.testing.assert_array_equal(xv[:, 0], yv)
    again = train_val_test_split(x, y, 20, 30, seed=2)
    np.testing.assert_array_equal(again[1][1], yv)
    with pytest.raises(ValueError, match="n_val=60 and n_test=40"):
        train_val_test_split(x, y, 60, 40)

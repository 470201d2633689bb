"""SVHN: official .mat layout -> paper split -> HDF5 cache."""

import h5py
import numpy as np
import pytest
import scipy.io

from bilevel_tf.datasets import (
    DataFileMissingError,
    DataFormatError,
    load_svhn_h5,
    load_svhn_mat,
    preprocess_svhn,
    svhn_split_indices,
)


def _write_mat(path, digits, rng, label_dtype=np.uint8):
    """Official layout: X uint8 (32, 32, 3, N), y (N, 1) with 10 standing for digit 0."""
    n = len(digits)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = np.where(np.asarray(digits) == 0, 10, digits).reshape(n, 1).astype(label_dtype)
    scipy.io.savemat(path, {"X": x, "y": y})
    return np.transpose(x, (3, 0, 1, 2)), np.asarray(digits)


@pytest.fixture
def mats(tmp_path):
    rng = np.random.default_rng(0)
    train_digits = np.repeat(np.arange(10), 5)[rng.permutation(50)]
    test_digits = rng.integers(0, 10, 15)
    xtr, ytr = _write_mat(tmp_path / "train_32x32.mat", train_digits, rng)
    xte, yte = _write_mat(tmp_path / "test_32x32.mat", test_digits, rng, label_dtype=np.float64)
    return tmp_path, (xtr, ytr), (xte, yte)


def test_load_svhn_mat_layout_and_label_10(mats):
    folder, (xtr, ytr), (xte, yte) = mats
    assert 10 in scipy.io.loadmat(folder / "train_32x32.mat")["y"]
    x, y = load_svhn_mat(folder / "train_32x32.mat")
    assert x.shape == (50, 32, 32, 3) and x.dtype == np.uint8 and x.flags.c_contiguous
    assert y.dtype == np.int64 and y.min() == 0 and y.max() == 9
    np.testing.assert_array_equal(x, xtr)
    np.testing.assert_array_equal(y, ytr)
    _, y_test = load_svhn_mat(folder / "test_32x32.mat")  # float64 labels in the file
    np.testing.assert_array_equal(y_test, yte)


def test_split_sizes_of_the_real_dataset():
    counts = [4948, 13861, 10585, 8497, 7458, 6882, 5727, 5595, 5045, 4659]  # SVHN train per digit 0..9
    labels = np.repeat(np.arange(10), counts)[np.random.default_rng(1).permutation(73257)]
    assert len(labels) == 73257
    train_idx, val_idx = svhn_split_indices(labels, val_per_class=100, seed=0)
    assert (len(train_idx), len(val_idx), 26032) == (72257, 1000, 26032)
    assert np.intersect1d(train_idx, val_idx).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train_idx, val_idx])), np.arange(73257))
    np.testing.assert_array_equal(np.bincount(labels[val_idx]), np.full(10, 100))
    np.testing.assert_array_equal(svhn_split_indices(labels, 100, seed=0)[1], val_idx)
    assert not np.array_equal(svhn_split_indices(labels, 100, seed=1)[1], val_idx)


def test_split_too_few_per_class():
    with pytest.raises(ValueError, match="class 3 has only 2 training images, fewer than val_per_class=3"):
        svhn_split_indices(np.array([0, 0, 0, 3, 3]), val_per_class=3)


def test_preprocess_grey(mats):
    folder, (xtr, ytr), (xte, yte) = mats
    out = preprocess_svhn(
        folder / "train_32x32.mat", folder / "test_32x32.mat", folder / "out", seed=3, val_per_class=2
    )
    assert out == folder / "out" / "SVHN_single_grey_without_extra.h5"
    with h5py.File(out, "r") as f:
        assert sorted(f.keys()) == ["X_test", "X_train", "X_val", "y_test", "y_train", "y_val"]
        assert f["X_train"].dtype == np.float32 and f["y_train"].dtype == np.int64
    d = load_svhn_h5(out)
    assert d["X_train"].shape == (30, 32, 32, 1) and d["X_val"].shape == (20, 32, 32, 1)
    assert d["X_test"].shape == (15, 32, 32, 1)
    np.testing.assert_array_equal(np.bincount(d["y_val"], minlength=10), np.full(10, 2))
    np.testing.assert_array_equal(d["y_test"], yte)
    assert 0 <= d["X_train"].min() and d["X_train"].max() <= 255 and d["X_train"].max() > 1
    train_idx, val_idx = svhn_split_indices(ytr, 2, seed=3)
    grey = xtr.astype(np.float64) @ np.array([0.2989, 0.5870, 0.1140])
    np.testing.assert_allclose(d["X_train"][..., 0], grey[train_idx], rtol=1e-6)
    np.testing.assert_allclose(d["X_val"][..., 0], grey[val_idx], rtol=1e-6)
    np.testing.assert_array_equal(d["y_train"], ytr[train_idx])
    r, g, b = (float(v) for v in xte[4, 7, 9])
    assert d["X_test"][4, 7, 9, 0] == pytest.approx(0.2989 * r + 0.5870 * g + 0.1140 * b, rel=1e-6)


def test_preprocess_rgb(mats):
    folder, (xtr, ytr), _ = mats
    out = preprocess_svhn(folder / "train_32x32.mat", folder / "test_32x32.mat", folder, grey=False, val_per_class=1)
    assert out.name == "SVHN_single_without_extra.h5"
    d = load_svhn_h5(out)
    train_idx, val_idx = svhn_split_indices(ytr, 1, seed=0)
    assert d["X_train"].dtype == np.uint8 and d["X_train"].shape == (40, 32, 32, 3)
    np.testing.assert_array_equal(d["X_val"], xtr[val_idx])


def test_h5_with_one_hot_labels_like_the_original(tmp_path):
    rng = np.random.default_rng(4)
    ids = {s: rng.integers(0, 10, n) for s, n in (("train", 6), ("val", 3), ("test", 4))}
    with h5py.File(tmp_path / "orig.h5", "w") as f:
        for s, y in ids.items():
            f["X_" + s] = rng.random((len(y), 32, 32, 1)).astype(np.float32) * 255
            f["y_" + s] = np.eye(10)[y]  # sklearn OneHotEncoder output
    d = load_svhn_h5(tmp_path / "orig.h5")
    for s, y in ids.items():
        assert d["y_" + s].dtype == np.int64
        np.testing.assert_array_equal(d["y_" + s], y)


def test_h5_missing_dataset(tmp_path):
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["X_train"] = np.zeros((1, 32, 32, 1), np.float32)
    with pytest.raises(DataFormatError, match=r"missing datasets \['y_train', 'X_val', 'y_val', 'X_test', 'y_test'\]"):
        load_svhn_h5(tmp_path / "bad.h5")


def test_missing_files(tmp_path):
    with pytest.raises(DataFileMissingError) as e:
        load_svhn_mat(tmp_path / "train_32x32.mat")
    msg = str(e.value)
    assert msg.startswith(f"train_32x32.mat not found at {tmp_path / 'train_32x32.mat'}")
    assert "http://ufldl.stanford.edu/housenumbers/" in msg and "test_32x32.mat" in msg
    with pytest.raises(DataFileMissingError, match="SVHN_single_grey_without_extra.h5 not found at .*preprocess_svhn"):
        load_svhn_h5(tmp_path / "SVHN_single_grey_without_extra.h5")


@pytest.mark.parametrize("keep", [0, 10, 100, 0.5, -20])  # (the last <8 bytes are only padding)
def test_truncated_mat(mats, keep):
    folder = mats[0]
    raw = (folder / "train_32x32.mat").read_bytes()
    n = int(len(raw) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(raw) + keep)
    (folder / "cut.mat").write_bytes(raw[:n])
    with pytest.raises(DataFormatError, match=r"cut.mat: unreadable .mat file .*; expected an intact MATLAB"):
        load_svhn_mat(folder / "cut.mat")


def test_mat_with_wrong_variables(tmp_path):
    scipy.io.savemat(tmp_path / "w.mat", {"images": np.zeros((32, 32, 3, 2), np.uint8)})
    with pytest.raises(DataFormatError, match=r"variables \['images'\]; expected variables 'X'"):
        load_svhn_mat(tmp_path / "w.mat")
    scipy.io.savemat(tmp_path / "w.mat", {"X": np.zeros((2, 32, 32, 3), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(DataFormatError, match=r"'X' is uint8 \(2, 32, 32, 3\); expected uint8 'X' of shape \(32, 32"):
        load_svhn_mat(tmp_path / "w.mat")

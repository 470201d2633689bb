"""Dog-fish npz and HDF5 feature files."""

import numpy as np
import pytest

from bilevel_tf.datasets import (
    DataFileMissingError,
    DataFormatError,
    load_dogfish,
    load_dogfish_features_npy,
    load_features_h5,
    save_features_h5,
)


def _arrays(rng, one_hot):
    x_tr = rng.uniform(-1, 1, (2, 299, 299, 3)).astype(np.float32)
    x_te = rng.uniform(-1, 1, (1, 299, 299, 3)).astype(np.float32)
    y_tr, y_te = np.array([1, 0]), np.array([1])
    if one_hot:
        y_tr, y_te = np.eye(2)[y_tr], np.eye(2)[y_te]
    return dict(X_train=x_tr, Y_train=y_tr, X_test=x_te, Y_test=y_te)


@pytest.mark.parametrize("one_hot", [True, False])
def test_load_dogfish(tmp_path, one_hot):
    a = _arrays(np.random.default_rng(0), one_hot)
    np.savez(tmp_path / "dataset_dog-fish_train-900_test-300.npz", **a)
    for where in (tmp_path / "dataset_dog-fish_train-900_test-300.npz", tmp_path):
        (x_tr, y_tr), (x_te, y_te) = load_dogfish(where)
        np.testing.assert_array_equal(x_tr, a["X_train"])
        np.testing.assert_array_equal(x_te, a["X_test"])
        assert x_tr.dtype == np.float32 and -1 <= x_tr.min() and x_tr.max() <= 1
        assert y_tr.dtype == np.int64
        np.testing.assert_array_equal(y_tr, [1, 0])
        np.testing.assert_array_equal(y_te, [1])


def test_dogfish_missing_and_bad(tmp_path):
    with pytest.raises(DataFileMissingError) as e:
        load_dogfish(tmp_path)
    msg = str(e.value)
    assert msg.startswith(
        f"dataset_dog-fish_train-900_test-300.npz not found at {tmp_path / 'dataset_dog-fish_train-900_test-300.npz'}"
    )
    assert "0x550cd344825049bdbb865b887381823c" in msg
    a = _arrays(np.random.default_rng(1), True)
    del a["Y_test"]
    np.savez(tmp_path / "x.npz", **a)
    with pytest.raises(DataFormatError, match=r"missing arrays \['Y_test'\]"):
        load_dogfish(tmp_path / "x.npz")


def test_features_h5_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    arrays = dict(
        X_train=rng.random((5, 2048), dtype=np.float32),
        X_test=rng.random((3, 2048)),
        Y_train=np.array([0, 1, 1, 0, 1]),
        Y_test=np.array([1, 0, 0], dtype=np.int32),
    )
    path = save_features_h5(tmp_path / "sub" / "features.h5", **arrays)
    got = load_features_h5(path, required=("X_train", "X_test", "Y_train", "Y_test"))
    assert sorted(got) == sorted(arrays)
    for k, v in arrays.items():
        assert got[k].dtype == v.dtype
        np.testing.assert_array_equal(got[k], v)


def test_features_h5_missing_dataset_and_file(tmp_path):
    save_features_h5(tmp_path / "f.h5", X_train=np.zeros((2, 4)))
    with pytest.raises(
        DataFormatError,
        match=r"f.h5: missing datasets \['X_test'\] \(has \['X_train'\]\); "
        r"expected HDF5 datasets \['X_train', 'X_test'\]",
    ):
        load_features_h5(tmp_path / "f.h5")
    with pytest.raises(DataFileMissingError, match="nope.h5 not found at"):
        load_features_h5(tmp_path / "nope.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataFormatError, match="unreadable HDF5 file"):
        load_features_h5(tmp_path / "junk.h5")


def test_original_feature_npy(tmp_path):
    a, b = np.ones((3, 2048), np.float32), np.zeros((2, 2048), np.float32)
    np.save(tmp_path / "X_train_features_inception.npy", a)
    with pytest.raises(DataFileMissingError, match="X_test_features_inception.npy not found"):
        load_dogfish_features_npy(tmp_path)
    np.save(tmp_path / "X_test_features_inception.npy", b)
    x_tr, x_te = load_dogfish_features_npy(tmp_path)
    np.testing.assert_array_equal(x_tr, a)
    np.testing.assert_array_equal(x_te, b)

"""keras.datasets cache layouts (mnist.npz, fashion-mnist IDX .gz, CIFAR-10 python pickles) read offline."""

import gzip
import pickle

import numpy as np
import pytest

from bilevel_tf.datasets import (
    DataFileMissingError,
    DataFormatError,
    keras_cache_dirs,
    load_cifar10,
    load_fashion_mnist,
    load_mnist,
    read_idx,
)
from bilevel_tf.datasets._testing import py2_pickle_dumps, write_idx_gz


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty private keras cache, so the real ~/.keras is never consulted."""
    home = tmp_path / "keras_home"
    (home / "datasets").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home / "datasets"


def _mnist_arrays(rng, n_train=6, n_test=4):
    return dict(
        x_train=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, n_train).astype(np.uint8),
        x_test=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, n_test).astype(np.uint8),
    )


def test_cache_dir_follows_keras_home(keras_home):
    assert keras_cache_dirs() == [keras_home]


def test_mnist_from_keras_cache(keras_home):
    a = _mnist_arrays(np.random.default_rng(0))
    np.savez_compressed(keras_home / "mnist.npz", **a)
    (x_tr, y_tr), (x_te, y_te) = load_mnist()
    assert x_tr.shape == (6, 28, 28, 1) and x_te.shape == (4, 28, 28, 1)
    assert x_tr.dtype == np.uint8 and y_tr.dtype == np.int64 and y_te.dtype == np.int64
    np.testing.assert_array_equal(x_tr[..., 0], a["x_train"])
    np.testing.assert_array_equal(x_te[..., 0], a["x_test"])
    np.testing.assert_array_equal(y_tr, a["y_train"])
    np.testing.assert_array_equal(y_te, a["y_test"])


@pytest.mark.parametrize("sub", ["", "datasets"])
def test_mnist_data_dir_takes_priority(keras_home, tmp_path, sub):
    rng = np.random.default_rng(1)
    np.savez(keras_home / "mnist.npz", **_mnist_arrays(rng))
    mine = _mnist_arrays(rng, n_train=3, n_test=2)
    folder = tmp_path / "data" / sub
    folder.mkdir(parents=True)
    np.savez(folder / "mnist.npz", **mine)
    (x_tr, _), (_, y_te) = load_mnist(tmp_path / "data")
    np.testing.assert_array_equal(x_tr[..., 0], mine["x_train"])
    np.testing.assert_array_equal(y_te, mine["y_test"])


def test_mnist_falls_back_to_keras_cache(keras_home, tmp_path):
    np.savez(keras_home / "mnist.npz", **_mnist_arrays(np.random.default_rng(2)))
    (x_tr, _), _ = load_mnist(tmp_path / "empty")
    assert x_tr.shape == (6, 28, 28, 1)


def test_mnist_missing(keras_home, tmp_path):
    with pytest.raises(DataFileMissingError) as e:
        load_mnist(tmp_path / "nowhere")
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    assert msg.startswith(f"mnist.npz not found at {tmp_path / 'nowhere' / 'mnist.npz'}")
    assert str(keras_home / "mnist.npz") in msg
    assert "keras.datasets.mnist.load_data()" in msg and "--data-dir" in msg
    assert e.value.file_name == "mnist.npz"


def test_mnist_bad_keys_and_corrupt(keras_home):
    np.savez(keras_home / "mnist.npz", x_train=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(DataFormatError, match=r"missing arrays \['y_train', 'x_test', 'y_test'\]"):
        load_mnist()
    (keras_home / "mnist.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataFormatError, match="unreadable npz"):
        load_mnist()


def _write_fashion(folder, rng):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 5).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 3).astype(np.uint8),
    }
    for name, a in arrays.items():
        write_idx_gz(folder / name, a)
    return arrays


def test_idx_header_layout(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx_gz(tmp_path / "a.gz", a)
    raw = gzip.open(tmp_path / "a.gz").read()
    assert raw[:16] == bytes.fromhex("00000803 00000002 00000003 00000004".replace(" ", ""))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), a)


def test_fashion_mnist_from_keras_cache(keras_home):
    a = _write_fashion(keras_home / "fashion-mnist", np.random.default_rng(3))
    (x_tr, y_tr), (x_te, y_te) = load_fashion_mnist()
    assert x_tr.shape == (5, 28, 28, 1) and x_te.shape == (3, 28, 28, 1) and x_tr.dtype == np.uint8
    np.testing.assert_array_equal(x_tr[..., 0], a["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(y_te, a["t10k-labels-idx1-ubyte.gz"])
    assert y_tr.dtype == np.int64


def test_fashion_mnist_in_data_dir_directly(keras_home, tmp_path):
    a = _write_fashion(tmp_path / "fm", np.random.default_rng(4))
    (_, y_tr), _ = load_fashion_mnist(tmp_path / "fm")
    np.testing.assert_array_equal(y_tr, a["train-labels-idx1-ubyte.gz"])


def test_fashion_mnist_missing_one_file(keras_home):
    _write_fashion(keras_home / "fashion-mnist", np.random.default_rng(5))
    (keras_home / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataFileMissingError) as e:
        load_fashion_mnist()
    assert str(e.value).startswith(
        f"t10k-labels-idx1-ubyte.gz not found at {keras_home / 'fashion-mnist' / 't10k-labels-idx1-ubyte.gz'}"
    )
    assert "keras.datasets.fashion_mnist.load_data()" in str(e.value)


def test_fashion_mnist_truncated_idx(keras_home):
    _write_fashion(keras_home / "fashion-mnist", np.random.default_rng(6))
    p = keras_home / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    raw = gzip.open(p).read()
    with gzip.open(p, "wb") as f:
        f.write(raw[:-10])
    with pytest.raises(DataFormatError, match=r"IDX payload has 3910 bytes; expected 3920 bytes"):
        load_fashion_mnist()


def _write_cifar(folder, rng, n=4, py2=True):
    """The real files are Python-2 cPickle dicts with bytes keys; 3072 = 1024 R, 1024 G, 1024 B (row-major)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        d = {
            b"batch_label": b"batch",
            b"labels": labels,
            b"data": data,
            b"filenames": [b"img%d.png" % i for i in range(n)],
        }
        (folder / name).write_bytes(py2_pickle_dumps(d) if py2 else pickle.dumps(d, protocol=4))
        out[name] = (data, labels)
    return out


@pytest.mark.parametrize("layout", [["cifar-10-batches-py"], ["cifar-10-batches-py-target", "cifar-10-batches-py"]])
def test_cifar10_keras2_and_keras3_layouts(keras_home, layout):
    written = _write_cifar(keras_home.joinpath(*layout), np.random.default_rng(7))
    (x_tr, y_tr), (x_te, y_te) = load_cifar10()
    assert x_tr.shape == (20, 32, 32, 3) and x_te.shape == (4, 32, 32, 3)
    assert x_tr.dtype == np.uint8 and y_tr.dtype == np.int64
    data2, labels2 = written["data_batch_2"]
    np.testing.assert_array_equal(y_tr[4:8], labels2)
    # channels-last: pixel (row 1, col 2) of channel c is data[c*1024 + 1*32 + 2]
    for c in range(3):
        np.testing.assert_array_equal(x_tr[4:8, 1, 2, c], data2[:, c * 1024 + 32 + 2])
    np.testing.assert_array_equal(x_te.transpose(0, 3, 1, 2).reshape(4, -1), written["test_batch"][0])
    np.testing.assert_array_equal(y_te, written["test_batch"][1])


def test_cifar10_python3_pickles_in_data_dir(keras_home, tmp_path):
    written = _write_cifar(tmp_path / "d" / "cifar-10-batches-py", np.random.default_rng(8), py2=False)
    _, (_, y_te) = load_cifar10(tmp_path / "d")
    np.testing.assert_array_equal(y_te, written["test_batch"][1])


def test_cifar10_missing_and_bad_keys(keras_home):
    with pytest.raises(DataFileMissingError, match=r"^data_batch_1 not found at .*cifar-10-batches-py"):
        load_cifar10()
    folder = keras_home / "cifar-10-batches-py"
    _write_cifar(folder, np.random.default_rng(9))
    (folder / "test_batch").write_bytes(pickle.dumps({b"images": np.zeros((1, 3072), np.uint8)}))
    with pytest.raises(DataFormatError, match=r"pickle has keys \['images'\]; expected a dict with b'data'"):
        load_cifar10()
    (folder / "test_batch").write_bytes(b"\x80\x02}q\x00(U\x04")
    with pytest.raises(DataFormatError, match="cannot unpickle"):
        load_cifar10()


def test_pickle_with_foreign_globals_is_refused(keras_home):
    folder = keras_home / "cifar-10-batches-py"
    _write_cifar(folder, np.random.default_rng(10))
    (folder / "data_batch_3").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(DataFormatError, match="refusing to load global os.system"):
        load_cifar10()

"""MNIST, Fashion-MNIST and CIFAR-10 read from the files ``keras.datasets`` caches (never downloads).

Layouts (relative to a data folder, default ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``):

* ``mnist.npz`` with keys ``x_train, y_train, x_test, y_test``;
* ``fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` (gzipped IDX files);
* ``cifar-10-batches-py/{data_batch_1..5,test_batch}`` (Python pickles, keys ``b'data'`` (N, 3072) uint8 in
  CHW order and ``b'labels'``). Keras 3 extracts them under ``cifar-10-batches-py-target/`` (also searched).

Every loader returns ``(x_train, y_train), (x_test, y_test)``: uint8 images with a channel axis
(channels-last) and int64 labels of shape (N,).
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ._checks import DataFormat, as_array, check_split
from ._files import decode_keys, find_file_set, read_npz, reading, safe_pickle_load
from .errors import DIGITS_HINT, DataFormatError, PathLike, with_hint

Split = Tuple[np.ndarray, np.ndarray]
GREY_28 = DataFormat((28, 28, 1), (np.uint8,), num_classes=10)  # MNIST and Fashion-MNIST
CIFAR10 = DataFormat((32, 32, 3), (np.uint8,), num_classes=10)

_FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
_CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def keras_cache_dirs() -> List[Path]:
    """Folders keras.datasets caches into: ``$KERAS_HOME/datasets`` if set, else ``~/.keras/datasets``
    and keras' fallback ``/tmp/.keras/datasets``."""
    home = os.environ.get("KERAS_HOME")
    if home:
        return [Path(home).expanduser() / "datasets"]
    return [Path("~/.keras").expanduser() / "datasets", Path("/tmp/.keras/datasets")]


def _search_bases(data_dir: Optional[PathLike]) -> List[Path]:
    bases: List[Path] = []
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        bases += [d, d / "datasets"]
    return bases + keras_cache_dirs()


def _how_to_get(loader: str, cache_sub: str, manual: str, offline_hint: Optional[str]) -> str:
    return with_hint(
        f"Get it with keras.datasets.{loader}.load_data() on a machine with internet (it caches to "
        f"~/.keras/datasets/{cache_sub}) or {manual}, then copy it here or pass --data-dir pointing "
        f"to a folder holding it.",
        offline_hint,
    )


def _grey_split(
    x: np.ndarray, y: np.ndarray, path: Path, x_name: str, y_name: str, y_path: Optional[Path] = None
) -> Split:
    x = np.asarray(x)
    if x.ndim == 3:  # the files store (N, 28, 28); the loaders add the channel axis
        x = x[..., None]
    x, y = check_split(x, y, GREY_28, path, x_name, y_name, y_path)
    return np.ascontiguousarray(x), y


def load_mnist(data_dir: Optional[PathLike] = None, offline_hint: Optional[str] = DIGITS_HINT) -> Tuple[Split, Split]:
    """MNIST from ``mnist.npz``: images uint8 (N, 28, 28, 1), labels int64 (60000 train / 10000 test).

    ``offline_hint`` ends the missing-file message (None for callers without an offline alternative).
    """
    how = _how_to_get(
        "mnist", "", "download https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz", offline_hint
    )
    (path,) = find_file_set(_search_bases(data_dir), ["mnist.npz"], how)
    x_train, y_train, x_test, y_test = read_npz(path, ("x_train", "y_train", "x_test", "y_test"), "keras' mnist.npz")
    return (
        _grey_split(x_train, y_train, path, "x_train", "y_train"),
        _grey_split(x_test, y_test, path, "x_test", "y_test"),
    )


def read_idx(path: PathLike) -> np.ndarray:
    """Read a (gzipped if the name ends in .gz) IDX file: magic 0x0000TTDD, DD big-endian uint32 dims, data."""
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with reading(path, "unreadable file", "a gzipped IDX file"):
        with opener(path, "rb") as f:
            raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataFormatError(
            f"bad IDX magic 0x{raw[:4].hex()}", "magic 0x0000TTDD (TT = data type code, DD = number of dims)", path
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError("IDX header truncated", f"{ndim} dimension sizes after the magic", path)
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != count * dtype.itemsize:
        raise DataFormatError(
            f"IDX payload has {len(raw) - header} bytes", f"{count * dtype.itemsize} bytes for shape {dims}", path
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def load_fashion_mnist(
    data_dir: Optional[PathLike] = None, offline_hint: Optional[str] = DIGITS_HINT
) -> Tuple[Split, Split]:
    """Fashion-MNIST from the four gzipped IDX files: images uint8 (N, 28, 28, 1), labels int64.

    ``offline_hint`` ends the missing-file message (None for callers without an offline alternative).
    """
    how = _how_to_get(
        "fashion_mnist",
        "fashion-mnist/",
        "download the four *-ubyte.gz files from https://github.com/zalandoresearch/fashion-mnist "
        "into a fashion-mnist/ folder",
        offline_hint,
    )
    bases = [b / "fashion-mnist" for b in _search_bases(data_dir)]
    if data_dir is not None:
        bases.insert(1, Path(data_dir).expanduser())  # the files directly in data_dir
    paths = find_file_set(bases, _FASHION_FILES, how)
    xtr, ytr, xte, yte = (read_idx(p) for p in paths)
    return tuple(
        _grey_split(x, y, px, px.name, py.name, py)
        for x, y, px, py in ((xtr, ytr, paths[0], paths[1]), (xte, yte, paths[2], paths[3]))
    )


def _load_cifar_batch(path: Path) -> Split:
    d = decode_keys(safe_pickle_load(path, encoding="bytes"))
    if not isinstance(d, dict) or "data" not in d or "labels" not in d:
        got = sorted(map(str, d)) if isinstance(d, dict) else type(d).__name__
        raise DataFormatError(f"pickle has keys {got}", "a dict with b'data' and b'labels'", path)
    expected = "uint8 data of shape (N, 3072)"
    data = as_array(d["data"], path, "data", expected)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataFormatError(f"data is {data.dtype} {data.shape}", expected, path)
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # CHW rows -> NHWC
    return check_split(images, d["labels"], CIFAR10, path, "data", "labels")


def load_cifar10(data_dir: Optional[PathLike] = None, offline_hint: Optional[str] = DIGITS_HINT) -> Tuple[Split, Split]:
    """CIFAR-10 from the python-version batches: images uint8 (N, 32, 32, 3) channels-last, labels int64.

    ``offline_hint`` ends the missing-file message (None for callers without an offline alternative).
    """
    how = _how_to_get(
        "cifar10",
        "cifar-10-batches-py-target/cifar-10-batches-py/",
        "extract https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (folder cifar-10-batches-py)",
        offline_hint,
    )
    bases = []
    for b in _search_bases(data_dir):
        bases += [b / "cifar-10-batches-py", b / "cifar-10-batches-py-target" / "cifar-10-batches-py"]
    if data_dir is not None:
        bases.insert(1, Path(data_dir).expanduser())  # the batch files directly in data_dir
    paths = find_file_set(bases, _CIFAR_FILES, how)
    batches = [_load_cifar_batch(p) for p in paths]
    x_train = np.concatenate([b[0] for b in batches[:5]])
    y_train = np.concatenate([b[1] for b in batches[:5]])
    return (x_train, y_train), batches[5]


__all__ = ["load_mnist", "load_fashion_mnist", "load_cifar10", "keras_cache_dirs", "read_idx"]

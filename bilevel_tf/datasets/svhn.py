"""SVHN (cropped digits, format 2) from the official .mat files, the paper's split, and its HDF5 cache.

Source: http://ufldl.stanford.edu/housenumbers/ (``train_32x32.mat``: 73257 images, ``test_32x32.mat``: 26032;
the ``extra`` set is not used). Each .mat holds ``X`` uint8 (32, 32, 3, N) and ``y`` (N, 1) with 10 meaning 0.

The paper's preprocessing (original ``pre_process_svhn_data.py``): validation = 100 random images per class
taken out of train (1000 val, 72257 train), test = 26032; greyscale = RGB . [0.2989, 0.5870, 0.1140] kept in
0..255 as float32 (N, 32, 32, 1). The original stored one-hot labels; this module stores int64 class ids and
:func:`load_svhn_h5` accepts both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from ._checks import DataFormat, check_split
from ._files import read_h5, reading
from .errors import DIGITS_HINT, DataFileMissingError, DataFormatError, PathLike, with_hint

GREY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], dtype=np.float32)
H5_GREY = "SVHN_single_grey_without_extra.h5"
H5_RGB = "SVHN_single_without_extra.h5"
H5_KEYS = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")
MAT_FORMAT = DataFormat((32, 32, 3), (np.uint8,), num_classes=10)
#: the cache: grey float 0..255 (N, 32, 32, 1) or RGB (uint8 from preprocess_svhn)
H5_FORMAT = DataFormat((32, 32, (1, 3)), (np.uint8, np.floating), num_classes=10, value_range=(0.0, 255.0))
_MAT_SOURCE = (
    "Download train_32x32.mat and test_32x32.mat (format 2, cropped digits) from "
    "http://ufldl.stanford.edu/housenumbers/ on a machine with internet and copy them here "
    "(or pass --data-dir pointing to a folder holding them)."
)
_H5_SOURCE = (
    "Build it with bilevel_tf.datasets.preprocess_svhn(train_32x32.mat, test_32x32.mat, out_dir) from the "
    "official files at http://ufldl.stanford.edu/housenumbers/ (train_32x32.mat, test_32x32.mat)."
)


def load_svhn_mat(path: PathLike, offline_hint: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Read an official SVHN .mat: images uint8 (N, 32, 32, 3), labels int64 0..9 (10 -> 0).

    ``offline_hint`` ends the missing-file message (None by default: its caller builds the cache and has no
    offline alternative).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileMissingError(path.name, path, with_hint(_MAT_SOURCE, offline_hint))
    import scipy.io  # lazy

    with reading(path, "unreadable .mat file", "an intact MATLAB v5 file from the SVHN site (re-download it)"):
        d = scipy.io.loadmat(os.fspath(path))
    if "X" not in d or "y" not in d:
        raise DataFormatError(
            f"variables {sorted(k for k in d if not k.startswith('__'))}",
            "variables 'X' (32, 32, 3, N) and 'y' (N, 1)",
            path,
        )
    x, y = np.asarray(d["X"]), np.asarray(d["y"])
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataFormatError(f"'X' is {x.dtype} {x.shape}", "uint8 'X' of shape (32, 32, 3, N)", path)
    images = np.ascontiguousarray(np.transpose(x, (3, 0, 1, 2)))
    digits = np.where(y == 10, 0, y) if y.dtype.kind in "iuf" else y  # check_split refuses the others
    return check_split(images, digits, MAT_FORMAT, path, "'X'", "'y' (10 read as 0)")


def svhn_split_indices(
    labels: np.ndarray, val_per_class: int = 100, seed: Optional[int] = 0
) -> Tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``labels`` into ``(train_idx, val_idx)`` (both sorted): ``val_per_class`` random
    indices of every class present go to validation, the rest to training."""
    labels = np.asarray(labels).reshape(-1)
    if val_per_class < 0:
        raise ValueError(f"val_per_class must be >= 0, got {val_per_class}")
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < val_per_class:
            raise ValueError(
                f"class {c} has only {len(idx)} training images, fewer than val_per_class="
                f"{val_per_class}; lower val_per_class"
            )
        val.append(rng.choice(idx, size=val_per_class, replace=False))
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    train_mask = np.ones(len(labels), dtype=bool)
    train_mask[val_idx] = False
    return np.flatnonzero(train_mask), val_idx.astype(np.int64)


def to_grey(images: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """RGB (N, H, W, 3) -> float32 (N, H, W, 1) via dot with [0.2989, 0.5870, 0.1140], kept in 0..255."""
    images = np.asarray(images)
    out = np.empty(images.shape[:-1] + (1,), dtype=np.float32)
    for s in range(0, len(images), chunk):  # chunked so a full float copy of the RGB set is never made
        out[s : s + chunk, ..., 0] = images[s : s + chunk].astype(np.float32) @ GREY_WEIGHTS
    return out


def preprocess_svhn(
    train_mat: PathLike,
    test_mat: PathLike,
    out_dir: PathLike,
    seed: Optional[int] = 0,
    grey: bool = True,
    val_per_class: int = 100,
) -> Path:
    """Build the paper's SVHN cache from the official .mat files and return its path.

    Writes ``SVHN_single_grey_without_extra.h5`` (grey float32 0..255, (N, 32, 32, 1)) or, with
    ``grey=False``, ``SVHN_single_without_extra.h5`` (RGB uint8) holding X_train, y_train, X_val, y_val,
    X_test, y_test with int64 class ids (the original wrote one-hot labels).
    """
    import h5py  # lazy

    x_train_all, y_train_all = load_svhn_mat(train_mat)
    x_test, y_test = load_svhn_mat(test_mat)
    train_idx, val_idx = svhn_split_indices(y_train_all, val_per_class, seed)
    convert = to_grey if grey else (lambda a: a)
    arrays = {
        "X_train": convert(x_train_all[train_idx]),
        "y_train": y_train_all[train_idx],
        "X_val": convert(x_train_all[val_idx]),
        "y_val": y_train_all[val_idx],
        "X_test": convert(x_test),
        "y_test": y_test,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / (H5_GREY if grey else H5_RGB)
    with h5py.File(out, "w") as f:
        for k in H5_KEYS:
            f.create_dataset(k, data=arrays[k])
        f.attrs["labels"] = "int64 class ids 0..9 (digit 0 = class 0)"
        f.attrs["pixels"] = "grey float32 0..255" if grey else "RGB uint8 0..255"
        f.attrs["split"] = f"val = {val_per_class} random train images per class, seed={seed}"
    return out


def load_svhn_h5(path: PathLike, offline_hint: Optional[str] = DIGITS_HINT) -> Dict[str, np.ndarray]:
    """Load an SVHN cache written by :func:`preprocess_svhn` or the original script.

    Returns a dict with X_train, y_train, X_val, y_val, X_test, y_test; labels are int64 ids (one-hot
    input is converted), images are returned as stored (grey float32 0..255 or RGB uint8). ``offline_hint``
    ends the missing-file message (None for callers without an offline alternative).
    """
    path = Path(path)
    raw = read_h5(path, H5_KEYS, with_hint(_H5_SOURCE, offline_hint), "preprocess_svhn")
    out = {}
    for split in ("train", "val", "test"):
        out[f"X_{split}"], out[f"y_{split}"] = check_split(
            raw[f"X_{split}"], raw[f"y_{split}"], H5_FORMAT, path, f"X_{split}", f"y_{split}"
        )
    return out

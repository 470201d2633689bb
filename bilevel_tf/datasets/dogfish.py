"""Dog-fish data of Koh & Liang (clean-label poisoning) and HDF5 storage for extracted features."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np

from ._files import read_h5
from .errors import DataFileMissingError, DataFormatError, PathLike

DOGFISH_FILE = "dataset_dog-fish_train-900_test-300.npz"
FEATURE_FILES = ("X_train_features_inception.npy", "X_test_features_inception.npy")
_SOURCE = ("Download it from Koh & Liang's influence-function release on CodaLab (bundle "
           "0x550cd344825049bdbb865b887381823c, file dataset_dog-fish_train-900_test-300.npz) on a machine "
           "with internet and copy it here (or pass --data-dir pointing to a folder holding it).")


def _ids(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=1).astype(np.int64)
    return y.reshape(-1).astype(np.int64)


def load_dogfish(path: PathLike) -> Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    """Read the dog-fish npz (a file, or a folder holding it) -> ``(x_train, y_train), (x_test, y_test)``:
    images (N, 299, 299, 3) in [-1, 1] as stored, labels int64 ids (one-hot is converted)."""
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / DOGFISH_FILE
    if not path.is_file():
        raise DataFileMissingError(path.name, path, _SOURCE)
    keys = ("X_train", "Y_train", "X_test", "Y_test")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise DataFormatError(f"missing arrays {missing} (has {sorted(f.files)})", f"arrays {list(keys)}",
                                      path)
            x_tr, y_tr, x_te, y_te = (f[k] for k in keys)
    except DataFormatError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataFormatError(f"unreadable npz ({e})", "the dog-fish .npz from CodaLab", path) from e
    y_tr, y_te = _ids(y_tr), _ids(y_te)
    for name, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        if x.ndim != 4 or len(x) != len(y):
            raise DataFormatError(f"X_{name} {x.shape} with {len(y)} labels", "images (N, H, W, 3) and N labels",
                                  path)
    return (x_tr, y_tr), (x_te, y_te)


def load_dogfish_features_npy(data_dir: PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """Read the original code's ``X_{train,test}_features_inception.npy`` (N, 2048) from ``data_dir``."""
    out = []
    for name in FEATURE_FILES:
        p = Path(data_dir) / name
        if not p.is_file():
            raise DataFileMissingError(name, p, "Extract InceptionV3 (ImageNet, GAP) features of the dog-fish "
                                       "images first (the original's extract_inception_features.py).")
        out.append(np.load(p, allow_pickle=False))
    return out[0], out[1]


def save_features_h5(path: PathLike, **arrays: np.ndarray) -> Path:
    """Write each keyword array as an HDF5 dataset of that name (file overwritten); returns the path."""
    import h5py  # lazy

    if not arrays:
        raise ValueError("save_features_h5 needs at least one array, e.g. X_train=..., X_test=...")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for name, a in arrays.items():
            f.create_dataset(name, data=np.asarray(a))
    return path


def load_features_h5(path: PathLike, required: Sequence[str] = ("X_train", "X_test")) -> Dict[str, np.ndarray]:
    """Read every dataset of an HDF5 file written by :func:`save_features_h5` into a dict;
    DataFormatError if one of ``required`` is absent."""
    return read_h5(path, required, "Create it with bilevel_tf.datasets.save_features_h5 (e.g. InceptionV3 "
                   "features of the dog-fish images).", "save_features_h5")

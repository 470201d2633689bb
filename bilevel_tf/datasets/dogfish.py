"""Dog-fish data of Koh & Liang (clean-label poisoning) and HDF5 storage for extracted features."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ._checks import DataFormat, check_images, check_split
from ._files import read_h5, read_npy, read_npz
from .errors import SMOKE_HINT, DataFileMissingError, PathLike, with_hint

DOGFISH_FILE = "dataset_dog-fish_train-900_test-300.npz"
FEATURE_FILES = ("X_train_features_inception.npy", "X_test_features_inception.npy")
#: Inception-preprocessed images (299x299 in the release, smaller in smoke runs); labels dog / fish
IMAGES = DataFormat((None, None, 3), (np.floating,), num_classes=2, value_range=(-1.0, 1.0))
FEATURES = DataFormat((None,), (np.floating,), num_classes=2, kind="features")  # (N, 2048) from InceptionV3
_SOURCE = (
    "Download it from Koh & Liang's influence-function release on CodaLab (bundle "
    "0x550cd344825049bdbb865b887381823c, file dataset_dog-fish_train-900_test-300.npz) on a machine "
    "with internet and copy it here (or pass --data-dir pointing to a folder holding it)."
)


def load_dogfish(
    path: PathLike, offline_hint: Optional[str] = SMOKE_HINT
) -> Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    """Read the dog-fish npz (a file, or a folder holding it) -> ``(x_train, y_train), (x_test, y_test)``:
    images (N, 299, 299, 3) in [-1, 1] as stored, labels int64 ids (one-hot is converted).
    ``offline_hint`` ends the missing-file message (None for callers without an offline alternative)."""
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / DOGFISH_FILE
    if not path.is_file():
        raise DataFileMissingError(path.name, path, with_hint(_SOURCE, offline_hint))
    keys = ("X_train", "Y_train", "X_test", "Y_test")
    x_tr, y_tr, x_te, y_te = read_npz(path, keys, "the dog-fish .npz from CodaLab")
    return (
        check_split(x_tr, y_tr, IMAGES, path, "X_train", "Y_train"),
        check_split(x_te, y_te, IMAGES, path, "X_test", "Y_test"),
    )


def load_dogfish_features_npy(data_dir: PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """Read the original code's ``X_{train,test}_features_inception.npy`` (N, 2048) from ``data_dir``."""
    out = []
    for name in FEATURE_FILES:
        p = Path(data_dir) / name
        if not p.is_file():
            raise DataFileMissingError(
                name,
                p,
                "Extract InceptionV3 (ImageNet, GAP) features of the dog-fish "
                "images first (the original's extract_inception_features.py).",
            )
        out.append(check_images(read_npy(p, "InceptionV3 features (N, 2048)"), FEATURES, p, name))
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
    DataFormatError if one of ``required`` is absent, an ``X_*`` is not finite float features (N, D) or a
    ``Y_*`` is not dog-fish labels matching its ``X_*``."""
    arrays = read_h5(
        path,
        required,
        "Create it with bilevel_tf.datasets.save_features_h5 (e.g. InceptionV3 features of the dog-fish images).",
        "save_features_h5",
    )
    for name in [k for k in arrays if k.startswith("X_")]:  # checked only: arrays are returned as stored
        label_name = "Y_" + name[2:]
        if label_name in arrays:
            check_split(arrays[name], arrays[label_name], FEATURES, path, name, label_name)
        else:
            check_images(arrays[name], FEATURES, path, name)
    return arrays

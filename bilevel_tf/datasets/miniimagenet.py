"""Mini-ImageNet from Ren et al.'s ``mini-imagenet-cache-{train,val,test}.pkl`` (few-shot-ssl-public).

Each pickle is a dict ``{'image_data': uint8 (N, 84, 84, 3), 'class_dict': {class_name: [indices]}}``
(64/16/20 classes x 600 images). Python-2 pickles (bytes keys / py2 strings) are read too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ._checks import DataFormat, check_images, integer_values
from ._files import decode_keys, safe_pickle_load
from .errors import DIGITS_HINT, DataFileMissingError, DataFormatError, PathLike, with_hint

IMAGES = DataFormat((84, 84, 3), (np.uint8,), num_classes=100)  # 64 / 16 / 20 classes in train / val / test
_SOURCE = (
    "Get the mini-imagenet-cache-{train,val,test}.pkl pickles of Ren et al. (https://github.com/renmengye/"
    "few-shot-ssl-public, 'mini-imagenet' data link in its README) on a machine with internet and copy them "
    "here (the original code expects them in dataset_miniimagenet/)."
)


def _load_dict(path: Path) -> dict:
    data = safe_pickle_load(path)
    if not isinstance(data, dict):
        raise DataFormatError(f"pickle holds a {type(data).__name__}", "a dict with image_data and class_dict", path)
    return decode_keys(data)


def _labels(class_dict: dict, n_images: int, path: Path) -> np.ndarray:
    """Sorted class names -> 0..C-1 for every image; the index lists must partition 0..n_images-1."""
    labels = np.full(n_images, -1, dtype=np.int64)
    for label, name in enumerate(sorted(class_dict, key=str)):
        idx = integer_values(
            class_dict[name], path, f"class_dict[{name!r}]", "image index", "integer indices into image_data"
        )
        if idx.size and (idx.min() < 0 or idx.max() >= n_images):
            raise DataFormatError(
                f"class {name!r} indexes images outside [0, {n_images})", "indices into image_data", path
            )
        if np.any(labels[idx] != -1):
            raise DataFormatError(f"class {name!r} shares images with another class", "disjoint index lists", path)
        labels[idx] = label
    unlabelled = int(np.sum(labels < 0))
    if unlabelled:
        raise DataFormatError(
            f"{unlabelled} of {n_images} images belong to no class in class_dict",
            "class_dict covering every image",
            path,
        )
    return labels


def load_miniimagenet_split(path: PathLike, offline_hint: Optional[str] = DIGITS_HINT) -> Tuple[np.ndarray, np.ndarray]:
    """Read one Mini-ImageNet cache pickle -> images uint8 (N, 84, 84, 3) (never copied to float) and int64
    labels: sorted class names of ``class_dict`` -> 0..C-1. ``offline_hint`` ends the missing-file message."""
    path = Path(path)
    if not path.is_file():
        raise DataFileMissingError(path.name, path, with_hint(_SOURCE, offline_hint))
    data = _load_dict(path)
    missing = [k for k in ("image_data", "class_dict") if k not in data]
    if missing:
        raise DataFormatError(
            f"missing keys {missing} (has {sorted(map(str, data))})", "keys 'image_data' and 'class_dict'", path
        )
    images = check_images(data["image_data"], IMAGES, path, "image_data")
    class_dict = decode_keys(data["class_dict"])
    if not isinstance(class_dict, dict) or not class_dict:
        raise DataFormatError("class_dict is empty or not a dict", "{class_name: list of image indices}", path)
    return images, _labels(class_dict, len(images), path)

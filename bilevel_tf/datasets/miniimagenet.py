"""Mini-ImageNet from Ren et al.'s ``mini-imagenet-cache-{train,val,test}.pkl`` (few-shot-ssl-public).

Each pickle is a dict ``{'image_data': uint8 (N, 84, 84, 3), 'class_dict': {class_name: [indices]}}``
(64/16/20 classes x 600 images). Python-2 pickles (bytes keys / py2 strings) are read too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np

from ._files import decode_keys, safe_pickle_load
from .errors import DataFileMissingError, DataFormatError, PathLike

_SOURCE = ("Get the mini-imagenet-cache-{train,val,test}.pkl pickles of Ren et al. (https://github.com/renmengye/"
           "few-shot-ssl-public, 'mini-imagenet' data link in its README) on a machine with internet and copy them "
           "here (the original code expects them in dataset_miniimagenet/).")


def _load_dict(path: Path) -> dict:
    try:
        data = safe_pickle_load(path)
    except UnicodeDecodeError:  # Python-2 pickle: raw py2 strings are not ASCII text
        data = safe_pickle_load(path, encoding="bytes")
    if not isinstance(data, dict):
        raise DataFormatError(f"pickle holds a {type(data).__name__}", "a dict with image_data and class_dict", path)
    return decode_keys(data)


def load_miniimagenet_split(path: PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """Read one Mini-ImageNet cache pickle -> images uint8 (N, 84, 84, 3) (never copied to float) and int64
    labels: sorted class names of ``class_dict`` -> 0..C-1."""
    path = Path(path)
    if not path.is_file():
        raise DataFileMissingError(path.name, path, _SOURCE)
    data = _load_dict(path)
    missing = [k for k in ("image_data", "class_dict") if k not in data]
    if missing:
        raise DataFormatError(f"missing keys {missing} (has {sorted(map(str, data))})",
                              "keys 'image_data' and 'class_dict'", path)
    images = data["image_data"]
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        desc = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise DataFormatError(f"image_data is {desc}", "uint8 array (N, 84, 84, 3)", path)
    class_dict = decode_keys(data["class_dict"])
    if not isinstance(class_dict, dict) or not class_dict:
        raise DataFormatError("class_dict is empty or not a dict", "{class_name: list of image indices}", path)
    labels = np.full(len(images), -1, dtype=np.int64)
    for label, name in enumerate(sorted(class_dict)):
        idx = np.asarray(class_dict[name], dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(images)):
            raise DataFormatError(f"class {name!r} indexes images outside [0, {len(images)})",
                                  "indices into image_data", path)
        if np.any(labels[idx] != -1):
            raise DataFormatError(f"class {name!r} shares images with another class", "disjoint index lists", path)
        labels[idx] = label
    unlabelled = int(np.sum(labels < 0))
    if unlabelled:
        raise DataFormatError(f"{unlabelled} of {len(images)} images belong to no class in class_dict",
                              "class_dict covering every image", path)
    return images, labels

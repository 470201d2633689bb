"""Omniglot for few-shot learning, in the original code's cached format.

The original reads ``x_omniglot_1.npy`` (float32 (N, 28, 28, 1), ink = 1 - pixel/255) and ``y_omniglot_1.npy``
(int32 class ids), built from the MAML-style ``omniglot_resized/<alphabet>/<character>/*.png`` folder (the 50
alphabets of images_background + images_evaluation, resized to 28x28): every (character, rotation in
0/90/180/270) pair is its own class, the first 1200 characters (4800 classes) are meta-train, the remaining
423 characters (1692 classes) meta-test. Unlike the original (``os.listdir`` order) characters are SORTED by
(alphabet, character) so the split is reproducible.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ._checks import DataFormat, check_split
from ._files import read_npy, reading
from .errors import DIGITS_HINT, DataFileMissingError, DataFormatError, PathLike, with_hint

X_FILE = "x_omniglot_1.npy"
Y_FILE = "y_omniglot_1.npy"
RESIZED_DIR = "omniglot_resized"
IMAGE_SIZE = 28
CHARACTERS = 1623  # 964 of images_background + 659 of images_evaluation
_SOURCE = (
    "Either put the original code's cache {x} and {y} there, or an {r}/ folder (alphabet/character/*.png) "
    "to build them from: download images_background.zip and images_evaluation.zip from "
    "https://github.com/brendenlake/omniglot (python/), merge both sets' alphabets into one folder and "
    "resize the PNGs to 28x28 as in MAML's omniglot_resized (load_omniglot resizes larger PNGs itself)."
)


def list_omniglot_characters(root: PathLike) -> List[Path]:
    """Character folders ``root/<alphabet>/<character>`` sorted by (alphabet, character); hidden entries skipped."""
    root = Path(root)
    if not root.is_dir():
        raise DataFileMissingError(root.name, root, _SOURCE.format(x=X_FILE, y=Y_FILE, r=RESIZED_DIR))

    def subdirs(p: Path) -> List[Path]:
        return sorted(c for c in p.iterdir() if c.is_dir() and not c.name.startswith("."))

    return [char for alphabet in subdirs(root) for char in subdirs(alphabet)]


def _read_png(path: Path, size: int) -> np.ndarray:
    from PIL import Image  # lazy

    expected = f"a square PNG of at least {size}x{size} pixels (omniglot_resized: 28x28, the originals: 105x105)"
    with reading(path, "unreadable image", expected):
        with Image.open(path) as im:
            kind, (width, height) = im.format, im.size
            grey = im.convert("L")  # decodes the pixels: a damaged file fails here
    if kind != "PNG" or width != height or width < size:
        raise DataFormatError(f"{kind or 'unknown'} image of {width}x{height} pixels", expected, path)
    if grey.size != (size, size):
        grey = grey.resize((size, size), resample=Image.LANCZOS)
    return np.asarray(grey, dtype=np.uint8)


def load_omniglot_folders(root: PathLike, size: int = IMAGE_SIZE) -> Tuple[np.ndarray, np.ndarray]:
    """Read ``root/<alphabet>/<character>/*.png`` (sorted) -> images float32 (N, size, size, 1) with ink = 1
    (``1 - pixel/255``) and int64 character ids 0..n_characters-1 (index in sorted order)."""
    chars = list_omniglot_characters(root)
    images, ids = [], []
    for cid, char in enumerate(chars):
        pngs = sorted(p for p in char.iterdir() if p.suffix.lower() == ".png")
        if not pngs:
            raise DataFormatError("character folder holds no .png files", "28x28 greyscale PNGs", char)
        for p in pngs:
            images.append(_read_png(p, size))
            ids.append(cid)
    if not images:
        raise DataFormatError("no <alphabet>/<character>/ folders found", "root/<alphabet>/<character>/*.png", root)
    x = 1.0 - np.stack(images).astype(np.float32) / 255.0
    return x[..., None], np.asarray(ids, dtype=np.int64)


def rotate_classes(
    x: np.ndarray, char_ids: np.ndarray, rotations: Sequence[int] = (0, 90, 180, 270)
) -> Tuple[np.ndarray, np.ndarray]:
    """Make each (character, rotation) its own class: id = char_id * len(rotations) + rotation_index.

    Output is ordered by character, then rotation, then image. Rotations (degrees, multiples of 90) use
    np.rot90 (counter-clockwise, equal to the original's scipy ``rotate(img, angle)`` for these angles).
    """
    for r in rotations:
        if r % 90:
            raise ValueError(f"rotations must be multiples of 90 degrees, got {r}")
    char_ids = np.asarray(char_ids)
    order = np.argsort(char_ids, kind="stable")
    chars, starts = np.unique(char_ids[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    n_rot = len(rotations)
    x_out = np.empty((len(x) * n_rot,) + tuple(x.shape[1:]), dtype=np.float32)  # filled in place (~0.4 GB)
    y_out = np.empty(len(x) * n_rot, dtype=np.int32)
    pos = 0
    for c, s, e in zip(chars, starts, ends):
        idx = order[s:e]
        for ri, r in enumerate(rotations):
            x_out[pos : pos + len(idx)] = np.rot90(x[idx], k=(r // 90) % 4, axes=(1, 2))
            y_out[pos : pos + len(idx)] = c * n_rot + ri
            pos += len(idx)
    return x_out, y_out


def build_omniglot_arrays(
    root: PathLike, out_dir: PathLike, rotations: Sequence[int] = (0, 90, 180, 270)
) -> Tuple[np.ndarray, np.ndarray]:
    """Build and save the original's ``x_omniglot_1.npy`` (float32 (N, 28, 28, 1)) and ``y_omniglot_1.npy``
    (int32) in ``out_dir`` from an omniglot_resized-style folder; returns ``(x, y)``."""
    x, char_ids = load_omniglot_folders(root)
    x, y = rotate_classes(x, char_ids, rotations)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / X_FILE, x)
    np.save(out_dir / Y_FILE, y)
    return x, y


def load_omniglot(
    data_dir: PathLike,
    n_train_characters: int = 1200,
    n_rotations: int = 4,
    rotations: Optional[Sequence[int]] = None,
    offline_hint: Optional[str] = DIGITS_HINT,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load (building if needed) the Omniglot cache -> ``(x, y, train_classes, test_classes)``.

    Reads ``data_dir/x_omniglot_1.npy`` and ``y_omniglot_1.npy``; if they are missing but
    ``data_dir/omniglot_resized/`` exists, builds them there first. Classes ``< n_train_characters *
    n_rotations`` are meta-train, the rest meta-test. ``rotations`` (default: the first ``n_rotations`` of
    0/90/180/270) is only used when building. ``offline_hint`` ends the missing-file message.
    """
    data_dir = Path(data_dir)
    if rotations is None:
        rotations = (0, 90, 180, 270)[:n_rotations]
    elif len(rotations) != n_rotations:
        raise ValueError(f"{len(rotations)} rotations given but n_rotations={n_rotations}")
    xp, yp = data_dir / X_FILE, data_dir / Y_FILE
    if xp.is_file() and yp.is_file():
        x, y = read_npy(xp, "the original's x_omniglot_1.npy"), read_npy(yp, "the original's y_omniglot_1.npy")
    elif (data_dir / RESIZED_DIR).is_dir():
        x, y = build_omniglot_arrays(data_dir / RESIZED_DIR, data_dir, rotations)
    else:
        missing = xp if not xp.is_file() else yp
        how = with_hint(_SOURCE.format(x=X_FILE, y=Y_FILE, r=RESIZED_DIR), offline_hint)
        raise DataFileMissingError(missing.name, missing, how, [missing, data_dir / RESIZED_DIR])
    # ink = 1 - pixel/255 in [0, 1]; class id = character * n_rotations + rotation index
    cache = DataFormat((IMAGE_SIZE, IMAGE_SIZE, 1), (np.floating,), CHARACTERS * n_rotations, value_range=(0.0, 1.0))
    x, y = check_split(x, y, cache, xp, X_FILE, Y_FILE, yp)
    classes = np.unique(y)
    n_train = n_train_characters * n_rotations
    train_classes, test_classes = classes[classes < n_train], classes[classes >= n_train]
    if len(train_classes) == 0 or len(test_classes) == 0:
        raise ValueError(
            f"n_train_characters={n_train_characters} leaves an empty meta-train or meta-test set "
            f"({len(classes)} classes = {len(classes) // n_rotations} characters x {n_rotations})"
        )
    return x, y, train_classes, test_classes

"""Data for the importance-learning (data denoising) runners: splits, label noise and tf.data streams.

Images stay in their stored dtype (uint8 for MNIST/CIFAR-10, float32 for SVHN and digits) and are
converted to float32 inside the pipelines, so a full float copy of a large training set never exists.
The streams shuffle example INDICES and gather the images in a ``map``: the shuffle buffer (and so a
checkpoint of the iterator) holds integers only, and each batch carries the indices the per-example
importance variable needs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Optional, Tuple

import numpy as np

from ... import datasets

if TYPE_CHECKING:  # TensorFlow is imported where it is used: the runners parse their flags without it
    import tensorflow as tf

NUM_CLASSES = 10
#: ImageDataGenerator(rotation_range=40, width/height_shift_range=0.2, zoom_range=0.2,
#: horizontal_flip=True, fill_mode='nearest') of the original CIFAR-10 runners. Its shear_range=0.2 is an
#: angle in DEGREES in Keras' generator (a shear of tan(0.2 deg) = 0.0035), i.e. invisible, so it is left out.
CIFAR_AUGMENTATION = dict(rotation_degrees=40.0, shift=0.2, zoom=0.2, horizontal_flip=True)


@dataclass(frozen=True)
class Sizes:
    n_train: int
    n_val: int
    n_test: int


@dataclass
class Splits:
    """Clean data split; ``scale`` maps stored pixel values to the network's input range."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    scale: float
    source: str

    @property
    def input_shape(self) -> Tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


#: the paper's data per data-set name: (loader(data_dir) -> ((x_tr, y_tr), (x_te, y_te)), pixel scale)
_KERAS_LOADERS: Dict[str, Tuple[Callable, float]] = {
    "mnist": (datasets.load_mnist, 1 / 255.0),
    "fashion_mnist": (datasets.load_fashion_mnist, 1 / 255.0),
    "cifar10": (datasets.load_cifar10, 1 / 255.0),
}
#: shapes and stored dtypes of the real data, for --synthetic-data timing runs
REAL_SHAPES = {
    "mnist": ((28, 28, 1), np.uint8, 1 / 255.0),
    "fashion_mnist": ((28, 28, 1), np.uint8, 1 / 255.0),
    "cifar10": ((32, 32, 3), np.uint8, 1 / 255.0),
    "svhn": ((32, 32, 1), np.float32, 1.0),
    "digits": ((8, 8, 1), np.float32, 1.0),
}


def _take(x: np.ndarray, y: np.ndarray, start: int, n: int, what: str) -> Tuple[np.ndarray, np.ndarray]:
    if start + n > len(x):
        raise ValueError(f"{what}: need {n} examples from position {start}, but only {len(x)} are available")
    return x[start : start + n], y[start : start + n]


def load_splits(
    name: str, sizes: Sizes, *, data_dir: Optional[str] = None, seed: int = 0, svhn_dir: Optional[str] = None
) -> Splits:
    """The paper's split of data set ``name``.

    MNIST / Fashion-MNIST / CIFAR-10 follow the original runners: train = the first ``n_train`` images of
    the official training set, val = the next ``n_val``, test = the first ``n_test`` official test images.
    SVHN reads the HDF5 cache of ``pre_process_svhn_data.py`` (its train/val/test split). ``digits`` is a
    seeded random split of scikit-learn's 1797 bundled images (offline demo).
    """
    if name in _KERAS_LOADERS:
        loader, scale = _KERAS_LOADERS[name]
        (x_all, y_all), (x_te, y_te) = loader(data_dir)
        x_tr, y_tr = _take(x_all, y_all, 0, sizes.n_train, f"{name} train")
        x_va, y_va = _take(x_all, y_all, sizes.n_train, sizes.n_val, f"{name} validation")
        x_te, y_te = _take(x_te, y_te, 0, sizes.n_test, f"{name} test")
        return Splits(x_tr, y_tr, x_va, y_va, x_te, y_te, scale, name)
    if name == "svhn":
        folder = Path(data_dir or svhn_dir or ".")
        d = datasets.load_svhn_h5(folder / datasets.svhn.H5_GREY)
        x_tr, y_tr = _take(d["X_train"], d["y_train"], 0, min(sizes.n_train, len(d["X_train"])), "svhn train")
        x_va, y_va = _take(d["X_val"], d["y_val"], 0, min(sizes.n_val, len(d["X_val"])), "svhn validation")
        x_te, y_te = _take(d["X_test"], d["y_test"], 0, min(sizes.n_test, len(d["X_test"])), "svhn test")
        # The original fed the grey values unscaled (0..255); so do we (scale 1).
        return Splits(np.asarray(x_tr), y_tr, np.asarray(x_va), y_va, np.asarray(x_te), y_te, 1.0, name)
    if name == "digits":
        x, y = datasets.load_digits()
        n_test = min(sizes.n_test, len(x) - sizes.n_train - sizes.n_val)
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = datasets.train_val_test_split(x, y, sizes.n_val, n_test, seed=seed)
        x_tr, y_tr = x_tr[: sizes.n_train], y_tr[: sizes.n_train]
        return Splits(x_tr, y_tr, x_va, y_va, x_te, y_te, 1.0, name)
    raise ValueError(f"unknown data set {name!r}")


def synthetic_splits(name: str, sizes: Sizes, seed: int = 0) -> Splits:
    """Random images and labels of the real shapes and dtypes of ``name`` (timing runs, no files needed)."""
    shape, dtype, scale = REAL_SHAPES[name]
    rng = np.random.default_rng(seed)

    def images(n):
        if dtype == np.uint8:
            return rng.integers(0, 256, size=(n,) + shape, dtype=np.uint8)
        return (rng.random((n,) + shape, dtype=np.float32) / scale).astype(np.float32)

    def labels(n):
        return rng.integers(0, NUM_CLASSES, size=n).astype(np.int64)

    return Splits(
        images(sizes.n_train),
        labels(sizes.n_train),
        images(sizes.n_val),
        labels(sizes.n_val),
        images(sizes.n_test),
        labels(sizes.n_test),
        scale,
        f"synthetic {name}",
    )


def shrink(splits: Splits, n_train: int, n_val: int, n_test: int) -> Splits:
    """The first examples of every split (``--smoke`` runs)."""
    return Splits(
        splits.x_train[:n_train],
        splits.y_train[:n_train],
        splits.x_val[:n_val],
        splits.y_val[:n_val],
        splits.x_test[:n_test],
        splits.y_test[:n_test],
        splits.scale,
        splits.source,
    )


# --------------------------------------------------------------------------------------------- pipelines
def augmentation(
    rotation_degrees: float, shift: float, zoom: float, horizontal_flip: bool
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """Random affine augmentation as Keras' ImageDataGenerator: ONE combined warp per image (rotation,
    shift, independent x/y zoom, optional horizontal flip; bilinear, 'nearest' fill) with
    ``keras.ops.image.affine_transform``.

    The random parameters come from stateless ops seeded by a per-batch seed tensor: Keras' random
    preprocessing layers draw from a SeedGenerator *variable*, which makes a tf.data iterator
    unserializable ("ReadVariableOp is stateful"), so ``bl.fit`` could not checkpoint the pipeline.
    """
    import tensorflow as tf
    import keras

    def augment(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        n = tf.shape(images)[0]
        h, w = tf.cast(tf.shape(images)[1], tf.float32), tf.cast(tf.shape(images)[2], tf.float32)
        r = tf.random.stateless_uniform([n, 6], seed=seed)
        theta = (2.0 * r[:, 0] - 1.0) * (rotation_degrees * np.pi / 180.0)
        ty, tx = (2.0 * r[:, 1] - 1.0) * shift * h, (2.0 * r[:, 2] - 1.0) * shift * w
        zx, zy = 1.0 + (2.0 * r[:, 3] - 1.0) * zoom, 1.0 + (2.0 * r[:, 4] - 1.0) * zoom
        flip = tf.where(r[:, 5] < 0.5, -1.0, 1.0) if horizontal_flip else tf.ones([n])
        # input = A (output - c) + c + t with A = R(theta) diag(flip * zx, zy): the output-to-input map
        cos, sin = tf.cos(theta), tf.sin(theta)
        a00, a01, a10, a11 = cos * flip * zx, -sin * zy, sin * flip * zx, cos * zy
        cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
        b0 = cx + tx - (a00 * cx + a01 * cy)
        b1 = cy + ty - (a10 * cx + a11 * cy)
        zeros = tf.zeros([n])
        transform = tf.stack([a00, a01, b0, a10, a11, b1, zeros, zeros], axis=1)
        return keras.ops.image.affine_transform(images, transform, interpolation="bilinear", fill_mode="nearest")

    return augment


def indexed_batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    seed: int,
    scale: float,
    augment: Optional[Callable] = None,
    with_index: bool = True,
    weights: Optional[np.ndarray] = None,
    repeat: bool = False,
    cycle: bool = False,
) -> tf.data.Dataset:
    """Shuffled full batches ``(index, images, labels)`` (or ``(images, labels[, weights])``).

    Reshuffled every pass with a fixed seed, ``drop_remainder`` so every batch has the same shape (the
    compiled step never retraces), prefetched. ``repeat`` repeats after batching, so no batch mixes passes
    (each validation batch is drawn without replacement, as the original's). ``cycle`` yields the same
    batches as ``.repeat()`` on the one-pass stream (augmentation seeds restart every pass) but repeats
    BEFORE the asynchronous map/prefetch: an iterator checkpointed while those buffers had already hit the
    end of a pass restores with another shuffle order for the next pass (TensorFlow 2.21), so a resumed
    ``bl.fit`` would diverge from an uninterrupted run; with ``cycle`` every resume point is exact.
    """
    import tensorflow as tf

    n = len(x)
    if batch_size > n:
        raise ValueError(f"batch size {batch_size} is larger than the {n} examples available; lower --batch-size")
    # Eager tensors captured by the map are passed by reference (a numpy array would be copied into the graph).
    xs, ys = tf.constant(x), tf.constant(y, tf.int32)
    ws = None if weights is None else tf.constant(weights, tf.float32)

    def gather(idx, random=None):
        images = tf.cast(tf.gather(xs, idx), tf.float32) * scale
        if augment is not None:
            images = augment(images, tf.stack([random, tf.constant(seed, tf.int64)]))
        out = (images, tf.gather(ys, idx))
        if ws is not None:
            out += (tf.gather(ws, idx),)
        return ((tf.cast(idx, tf.int32),) + out) if with_index else out

    ds = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    if repeat:
        ds = ds.repeat()
    if augment is not None:  # a checkpointable stream of per-batch seeds for the stateless augmentation
        ds = tf.data.Dataset.zip(ds, tf.data.Dataset.random(seed=seed))
    if cycle:
        ds = ds.repeat()
    return ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, n // batch_size)


def epochs_to_steps(epochs: float, n: int, batch_size: int) -> int:
    return max(1, int(math.ceil(epochs * n / batch_size)))


def default_svhn_dir() -> str:
    """Where ``data_denoising/svhn/pre_process_svhn_data.py`` writes the HDF5 cache (next to the runner)."""
    return os.fspath(Path(__file__).resolve().parents[3] / "data_denoising" / "svhn")

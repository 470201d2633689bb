"""The MNIST / digits data of the data-augmentation attacks: flat images, splits, poison start points."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from bilevel_tf import datasets
from bilevel_tf.runner import experiment

DATASETS = ("mnist", "digits")
Split = Tuple[np.ndarray, np.ndarray]


# ================================================================================================ data
@dataclass
class PoisonData:
    """One data-augmentation attack setting: flat images in [0, 1], integer labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    poison_x0: np.ndarray  # the poison's start images
    poison_y: np.ndarray  # the poison's fixed (wrong) labels
    eval_sets: Dict[str, Split]  # metric name -> (x, y) scored by accuracy after retraining
    image_shape: Tuple[int, int]
    targeted: bool
    num_classes: int = 10

    def sizes(self) -> Dict[str, int]:
        return dict(
            train=len(self.x_train),
            val=len(self.x_val),
            poison=len(self.poison_x0),
            **{name: len(x) for name, (x, _) in self.eval_sets.items()},
        )


def load_flat_images(dataset: str, data_dir: Optional[str]) -> Tuple[Split, Optional[Split]]:
    """``(train split, test split or None)`` as float32 (N, pixels) in [0, 1] and int64 labels."""
    if dataset == "mnist":
        (x, y), (xt, yt) = datasets.load_mnist(data_dir)
        return (_flat(x / 255.0), y), (_flat(xt / 255.0), yt)
    if dataset == "digits":
        x, y = datasets.load_digits()
        return (_flat(x), y), None
    raise ValueError(f"unknown dataset {dataset!r}; choose one of {list(DATASETS)}")


def _flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).reshape(len(x), -1)


def _image_shape(x: np.ndarray) -> Tuple[int, int]:
    side = int(round(np.sqrt(x.shape[1])))
    return side, side


def wrong_labels(y: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random different class for every label."""
    return (y + rng.integers(1, num_classes, size=len(y))) % num_classes


def untargeted_data(
    dataset: str, data_dir: Optional[str], n_train: int, n_val: int, n_test: int, num_poison: int, seed: int
) -> PoisonData:
    """The original's split: shuffle, then consecutive train / validation / test blocks of the training split
    (MNIST) or of all 1797 digits; the poison starts as the first training images with random wrong labels."""
    (x, y), _ = load_flat_images(dataset, data_dir)
    if n_train + n_val + n_test > len(x):
        raise experiment.UsageError(
            f"{dataset} has {len(x)} images, fewer than {n_train}+{n_val}+{n_test} "
            "requested by --train-points/--val-points/--test-points"
        )
    if not 0 < num_poison <= n_train:
        raise experiment.UsageError(
            f"--num-poison must be in 1..{n_train} (it starts from training images), got {num_poison}"
        )
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    x, y = x[perm], y[perm]
    blocks = np.cumsum([n_train, n_val, n_test])
    (x_tr, x_val, x_te), (y_tr, y_val, y_te) = np.split(x, blocks)[:3], np.split(y, blocks)[:3]
    return PoisonData(
        x_tr,
        y_tr,
        x_val,
        y_val,
        x_tr[:num_poison].copy(),
        wrong_labels(y_tr[:num_poison], 10, rng),
        {"test_accuracy": (x_te, y_te)},
        _image_shape(x),
        targeted=False,
    )


def balanced_subset(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator, num_classes: int = 10) -> Split:
    """``n // num_classes`` random examples of every class (fewer where a class has fewer), shuffled."""
    idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[: n // num_classes] for c in range(num_classes)])
    idx = rng.permutation(idx)
    return x[idx], y[idx]


def targeted_data(
    dataset: str,
    data_dir: Optional[str],
    n_train: int,
    n_val: int,
    n_test: int,
    num_poison: int,
    source: int,
    target: int,
    seed: int,
) -> PoisonData:
    """The original's targeted split: balanced train from the first 2*n_train pool images, balanced
    validation from the rest and balanced test from the test split, both restricted to ``source`` images
    relabeled ``target``; the poison starts from training ``target`` and ``source`` images with the two
    labels swapped. Digits have no test split: the last third of the shuffled images serves as one."""
    (x, y), test = load_flat_images(dataset, data_dir)
    if source == target or not (0 <= source < 10 and 0 <= target < 10):
        raise experiment.UsageError(
            f"--source-class and --target-class must be two different classes in 0..9, got {source} and {target}"
        )
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    x, y = x[perm], y[perm]
    if test is None:
        cut = 2 * len(x) // 3
        test, (x, y) = (x[cut:], y[cut:]), (x[:cut], y[:cut])
    x_tr, y_tr = balanced_subset(x[: 2 * n_train], y[: 2 * n_train], n_train, rng)
    x_val, y_val = balanced_subset(x[2 * n_train :], y[2 * n_train :], n_val, rng)
    x_te, y_te = balanced_subset(*test, n_test, rng)
    n_t, n_s = num_poison // 2, num_poison - num_poison // 2
    idx_t, idx_s = np.flatnonzero(y_tr == target)[:n_t], np.flatnonzero(y_tr == source)[:n_s]
    if len(idx_t) < n_t or len(idx_s) < n_s or num_poison < 1:
        raise experiment.UsageError(
            f"--num-poison {num_poison} needs {n_t} {target}s and {n_s} {source}s in the "
            f"training set, which has {len(idx_t)} and {len(idx_s)}"
        )
    order = rng.permutation(num_poison)
    poison_x0 = np.concatenate([x_tr[idx_t], x_tr[idx_s]])[order]
    poison_y = np.concatenate([np.full(n_t, source), np.full(n_s, target)])[order].astype(np.int64)
    val_src, test_src = y_val == source, y_te == source
    return PoisonData(
        x_tr,
        y_tr,
        x_val[val_src],
        np.full(val_src.sum(), target, np.int64),
        poison_x0,
        poison_y,
        {
            "test_accuracy": (x_te, y_te),
            "attack_success_rate": (x_te[test_src], np.full(test_src.sum(), target, np.int64)),
        },
        _image_shape(x),
        targeted=True,
    )

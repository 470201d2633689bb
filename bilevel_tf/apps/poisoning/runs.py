"""The attacks up to their run folder, without TensorFlow: the data files and the folder (finished run, another
configuration, in use) are checked at once; the attacks themselves (``augmentation``, ``clean_label``) load
TensorFlow after that."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from bilevel_tf import datasets
from bilevel_tf.runner import experiment, run_folder

from .config import FEATURES_FILE, SMOKE_IMAGES
from .data import PoisonData


def run_data_augmentation_attack(args, data: PoisonData) -> Dict[str, Any]:
    """Pre-train, attack (bl.fit, resumable), retrain on clean + poison, compare with label flipping
    (:func:`augmentation.attack_in_folder`); writes results.json, the poison (poison.npz) and figures;
    returns the metrics."""
    fingerprint = experiment.fingerprint(data.y_train, data.poison_y, data.x_train[:256])

    def in_folder(run: run_folder.Run) -> Dict[str, Any]:
        from .augmentation import attack_in_folder  # TensorFlow loads here, after the folder's checks

        return attack_in_folder(args, data, run)

    return run_folder.Run.once(args, in_folder, data=fingerprint)


@dataclass
class CleanLabelInputs:
    """The dog-fish images and their feature rows (smoke: the first SMOKE_IMAGES of each split)."""

    arrays: Tuple[np.ndarray, ...]  # x_train, y_train, x_test, y_test, f_train, f_test
    features_path: Path


def run_clean_label_attack(args, default_data_dir: str) -> Dict[str, Any]:
    """The clean-label attack (:func:`clean_label.attack_in_folder`) on the dog-fish images and their feature
    file; both are read (and the run folder opened) before TensorFlow loads, except for a smoke run's first
    start, which extracts its features with the seeded network first."""
    data_dir, features_path = clean_label_paths(args, default_data_dir)
    (x_tr, y_tr), (x_te, y_te) = datasets.load_dogfish(data_dir)
    x_tr, y_tr, x_te, y_te = smoke_subset(args, x_tr, y_tr, x_te, y_te)
    network = None
    if args.smoke and not features_path.is_file():
        experiment.start_tensorflow(args)
        from .features import feature_network

        network = feature_network(args, x_tr.shape[1:])  # first: random weights depend on the seed only
        datasets.save_features_h5(
            features_path, X_train=network.extract(x_tr), Y_train=y_tr, X_test=network.extract(x_te), Y_test=y_te
        )
    feats = datasets.load_features_h5(features_path, required=("X_train", "X_test"))
    f_tr, f_te = smoke_subset(args, *(np.asarray(feats[k], np.float32) for k in ("X_train", "X_test")))
    if len(f_tr) != len(x_tr) or len(f_te) != len(x_te):
        raise datasets.DataFormatError(
            f"{len(f_tr)}/{len(f_te)} feature rows for {len(x_tr)}/{len(x_te)} images",
            "one feature row per dog-fish image",
            features_path,
        )
    inputs = CleanLabelInputs((x_tr, y_tr, x_te, y_te, f_tr, f_te), features_path)

    def in_folder(run: run_folder.Run) -> Dict[str, Any]:
        from .clean_label import attack_in_folder  # TensorFlow loads here, after the folder's checks

        return attack_in_folder(args, run, inputs, network)

    return run_folder.Run.once(args, in_folder, data=experiment.fingerprint(y_tr, y_te, f_tr[:64]))


def clean_label_paths(args, default_data_dir: str) -> Tuple[Path, Path]:
    """(folder of the dog-fish npz, feature file); --smoke without --data-dir writes tiny images first."""
    data_dir = Path(args.data_dir) if args.data_dir else Path(default_data_dir)
    if args.smoke and not args.data_dir:
        data_dir = Path(write_smoke_dogfish(os.path.join(args.out, "smoke_data"), seed=args.seed))
    features = Path(args.features) if getattr(args, "features", None) else data_dir / FEATURES_FILE
    return data_dir, features


def smoke_subset(args, *arrays: np.ndarray) -> List[np.ndarray]:
    return [a[:SMOKE_IMAGES] for a in arrays] if args.smoke else list(arrays)


def write_smoke_dogfish(folder: str, size: int = 75, n_train: int = 8, n_test: int = 4, seed: int = 0) -> str:
    """A tiny dog-fish npz in the real format (labels one-hot, images in [-1, 1]); the classes differ in
    brightness so that even random features separate them."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = np.arange(n) % 2
        x = np.clip(rng.normal(0.0, 0.3, (n, size, size, 3)) + np.where(y == 1, 0.4, -0.4)[:, None, None, None], -1, 1)
        return x.astype(np.float32), np.eye(2, dtype=np.float32)[y]

    (x_tr, y_tr), (x_te, y_te) = split(n_train), split(n_test)
    os.makedirs(folder, exist_ok=True)
    np.savez(os.path.join(folder, datasets.dogfish.DOGFISH_FILE), X_train=x_tr, Y_train=y_tr, X_test=x_te, Y_test=y_te)
    return folder

"""Both clean-label scripts end to end on tiny generated dog-fish images with a random-weight InceptionV3
(75x75, its minimum input), in-process: feature extraction to HDF5, then the attack reading them."""

import json
from pathlib import Path

import numpy as np
import pytest

from bilevel_tf import datasets
from bilevel_tf.apps import poisoning
from runner_utils import assert_solver_config, run_runner

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"

EXTRACT = "clean_label/extract_inception_features.py"
ATTACK = "clean_label/test_bilevel_clean_label_attack.py"


@pytest.fixture(scope="module")
def dogfish(tmp_path_factory) -> Path:
    """A real-format npz: one-hot labels, 75x75x3 images in [-1, 1], classes differing in brightness."""
    folder = tmp_path_factory.mktemp("dogfish")
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 8), ("test", 4)):
        y = np.arange(n) % 2
        x = np.clip(rng.normal(0, 0.3, (n, 75, 75, 3)) + np.where(y == 1, 0.4, -0.4)[:, None, None, None], -1, 1)
        arrays[f"X_{split}"], arrays[f"Y_{split}"] = x.astype(np.float32), np.eye(2)[y]
    np.savez(folder / "dataset_dog-fish_train-900_test-300.npz", **arrays)
    return folder


@pytest.fixture(scope="module")
def features(dogfish, tmp_path_factory):
    out = tmp_path_factory.mktemp("extract")
    result = run_runner(EXTRACT, ["--data-dir", str(dogfish), "--random-weights", "--smoke"], out)
    return result, dogfish / poisoning.FEATURES_FILE


def test_extraction_writes_features_that_round_trip(features, dogfish):
    result, path = features
    m = result["metrics"]
    assert m["h5_round_trip"] is True and m["output"] == str(path)
    assert (m["num_train"], m["num_test"], m["feature_dim"], m["image_shape"]) == (8, 4, 2048, [75, 75, 3])
    stored = datasets.load_features_h5(path, required=("X_train", "X_test", "Y_train", "Y_test"))
    (x_tr, y_tr), _ = datasets.load_dogfish(dogfish)
    np.testing.assert_array_equal(stored["Y_train"], y_tr)
    assert stored["X_train"].shape == (8, 2048) and stored["X_train"].dtype == np.float32
    assert np.all(stored["X_train"] >= 0) and stored["X_train"].std() > 0  # ReLU + average pooling


def test_attack_smoke_end_to_end(features, dogfish, tmp_path):
    _, path = features  # the same --seed (0) builds the same random network
    result = run_runner(
        ATTACK,
        ["--data-dir", str(dogfish), "--features", str(path), "--random-weights", "--smoke"],
        tmp_path / "attack",
    )
    m, out = result["metrics"], tmp_path / "attack"
    assert_solver_config(result, "penalty")
    assert m["num_targets"] == 2 and m["num_train"] == 8 and 0 <= m["clean_test_accuracy"] <= 1
    for key in ("success_curve", "baseline_success_curve"):
        curve = m[key]
        assert curve["radius"] == [1.0, 2.0]
        assert curve["success_rate"] == sorted(curve["success_rate"])  # more budget never hurts
        assert all(0 <= d <= r + 1e-3 for d, r in zip(curve["average_distortion"], curve["radius"]))
    assert len(m["pgd_success_curve"]["success_rate"]) == 2
    records = [json.loads(line) for line in (out / "targets.jsonl").read_text().splitlines()]
    assert [r["target"] for r in records] == [r["target"] for r in result["history"]]
    for r in records:
        assert r["base_label"] != r["target_label"]
        for d_r, d in r["bilevel"]["distortions"].items():  # every poison tried stayed in its eps-ball
            assert d <= float(d_r) + 1e-3
        with np.load(out / "images" / f"target_{r['target']}.npz") as f:
            assert f["poison"].shape == (75, 75, 3) and -1 <= f["poison"].min() and f["poison"].max() <= 1
    assert result["seconds_per_upper_iteration"] > 0
    for name in ("success_vs_distortion.png", "poison_images.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name


def test_missing_images_and_weights_give_clear_errors(dogfish, tmp_path, monkeypatch):
    with pytest.raises(datasets.DataFileMissingError, match="dataset_dog-fish_train-900_test-300.npz not found"):
        run_runner(EXTRACT, ["--data-dir", str(tmp_path), "--random-weights"], tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        run_runner(EXTRACT, ["--data-dir", str(dogfish), "--weights", str(tmp_path / "no.h5")], tmp_path / "out")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_cache"))  # ImageNet weights: never downloaded
    with pytest.raises(FileNotFoundError, match="ImageNet weights for InceptionV3 not found"):
        run_runner(ATTACK, ["--data-dir", str(dogfish), "--smoke"], tmp_path / "out")

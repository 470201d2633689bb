"""Smoke runs of the MNIST poisoning runners (offline digits, in-process): outputs, constraint, resume."""

from pathlib import Path

import numpy as np
import pytest

from runner_utils import assert_solver_config, run_runner

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    """No cached data sets or weights: the runs below are also the check that --smoke alone runs offline."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "no_keras_cache"))


UNTARGETED = "data_poisoning/untargeted/test_bilevel_poisoning_untargeted.py"
TARGETED = "data_poisoning/targeted/test_bilevel_poisoning_targeted.py"
TIMING = "data_poisoning/time_upper_iterations.py"


def _check(out: Path, result: dict, method: str, keys):
    assert result["method"] == method and result["dataset"] == "digits"
    assert_solver_config(result, method)
    m = result["metrics"]
    for key in keys:
        assert 0.0 <= m[key] <= 1.0, key
    assert 0.0 <= m["poison_min"] <= m["poison_max"] <= 1.0  # the box constraint held
    assert m["num_poison"] == 6 and m["mean_abs_pixel_change"] > 0  # the poison moved
    assert result["seconds_per_upper_iteration"] > 0
    assert [h["step"] for h in result["history"]] == [3]  # --smoke: 3 upper iterations, log every 10
    for name in ("poison_images.png", "upper_loss.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    with np.load(out / "poison.npz") as f:
        assert f["learned"].shape == f["start"].shape == (6, 64)
        assert np.all(f["labels"] >= 0) and not np.allclose(f["learned"], f["start"])


@pytest.mark.parametrize("method", ["penalty", "approxgrad", "rmd"])
def test_untargeted_smoke(tmp_path, method):
    result = run_runner(UNTARGETED, ["--smoke", "--method", method], tmp_path)  # offline: digits
    _check(tmp_path, result, method, ["clean_test_accuracy", "poisoned_test_accuracy", "label_flip_test_accuracy"])
    assert result["metrics"]["sizes"] == dict(train=100, val=100, poison=6, test_accuracy=200)
    assert result["config"]["lr_u"] == {"penalty": 0.1, "approxgrad": 0.01, "rmd": 0.01}[method]


def test_targeted_smoke_and_resume(tmp_path):
    args = ["--smoke"]  # offline: digits
    result = run_runner(TARGETED, args, tmp_path)
    keys = [
        "clean_test_accuracy",
        "attack_success_rate",
        "clean_attack_success_rate",
        "label_flip_attack_success_rate",
        "poisoned_test_accuracy",
    ]
    _check(tmp_path, result, "penalty", keys)
    assert result["metrics"]["sizes"]["train"] == 100 and result["metrics"]["sizes"]["attack_success_rate"] == 20
    assert result["config"]["lam"] == 1.0 and result["config"]["lr_v"] == 1e-4
    first = np.load(tmp_path / "poison.npz")["learned"]
    # the same command again resumes from the final checkpoint: no new upper iteration, the same poison
    again = run_runner(TARGETED, args, tmp_path)
    assert again["history"] == result["history"] and (tmp_path / "checkpoints" / "bilevel").is_dir()
    np.testing.assert_array_equal(np.load(tmp_path / "poison.npz")["learned"], first)
    assert again["metrics"]["attack_success_rate"] == result["metrics"]["attack_success_rate"]


def test_mnist_missing_gives_a_clear_error(tmp_path, monkeypatch):
    from bilevel_tf.datasets import DataFileMissingError

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(DataFileMissingError, match="mnist.npz"):
        run_runner(UNTARGETED, ["--smoke", "--data-dir", str(tmp_path / "nothing")], tmp_path / "out")


def test_timing_script_smoke(tmp_path):
    result = run_runner(TIMING, ["--smoke", "--no-clean-label"], tmp_path)
    timings = result["metrics"]["mnist_seconds_per_upper_iteration"]
    assert sorted(timings) == ["approxgrad", "penalty", "rmd"]
    assert all(0 < s < 10 for per_t in timings.values() for s in per_t.values())
    assert (tmp_path / "seconds_per_upper_iteration.png").is_file()

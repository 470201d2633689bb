"""Both few-shot runners end to end (--smoke, in-process): offline digits, tiny real-format Omniglot PNG trees and
Mini-ImageNet pickles, resume from a checkpoint, and the missing-data error."""

import pickle

import numpy as np
import pytest
from PIL import Image
from runner_utils import assert_solver_config, load_runner, run_runner

from bilevel_tf.datasets import DataFileMissingError
from bilevel_tf.datasets._testing import py2_pickle_dumps

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    """No cached data sets or weights: the runs below are also the check that --smoke alone runs offline."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "no_keras_cache"))


OMNIGLOT = "few_shot/omniglot/test_bilevel_few_shot_learning_omniglot.py"
MINIIMAGENET = "few_shot/miniimagenet/test_bilevel_few_shot_learning_miniimagenet.py"


def _check_results(out, result, method, dataset, iterations, start=0):
    assert result["experiment"].startswith("few_shot/") and result["method"] == method
    assert result["dataset"] == dataset
    assert_solver_config(result, method)
    m = result["metrics"]
    for key in ("test_accuracy", "meta_train_test_accuracy", "untrained_test_accuracy"):
        assert 0.0 <= m[key] <= 1.0
        assert 0.0 <= m[key + "_ci95"] <= 1.0
    assert m["test_tasks"] == 4 and m["meta_iterations"] == iterations
    curve = [h for h in result["history"] if "meta_test_test_accuracy" in h]
    assert [h["step"] for h in curve] == list(range(start + 2, iterations + 1, 2))  # --eval-every 2
    assert all(h["seconds"] - h["eval_seconds"] > 0 and np.isfinite(h["upper_loss"]) for h in curve)
    assert curve[-1]["meta_test_test_accuracy"] == pytest.approx(m["test_accuracy"])  # same tasks, same point
    assert result["seconds_per_upper_iteration"] > 0
    assert (out / "accuracy_vs_time.png").stat().st_size > 0
    assert (out / "representation.weights.h5").is_file()


def test_omniglot_digits_penalty_resume_is_exact(tmp_path, capsys):
    out = tmp_path / "run"
    first = run_runner(OMNIGLOT, ["--smoke", "--dataset", "digits", "--meta-iterations", "2"], out)
    _check_results(out, first, "penalty", "digits", 2)
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("[few_shot/omniglot] method=penalty 5-way 1-shot test_accuracy="), summary
    resumed = run_runner(OMNIGLOT, ["--smoke", "--dataset", "digits"], out)  # 4 iterations: continues at 3
    _check_results(out, resumed, "penalty", "digits", 4)
    assert [h["step"] for h in resumed["history"]] == [2, 4]  # the whole run: step 2 restored, then step 4
    assert resumed["history"][0] == first["history"][0]
    assert resumed["metrics"]["untrained_test_accuracy"] == first["metrics"]["untrained_test_accuracy"]
    # same tasks and head draws as an uninterrupted run (episodes and head resets depend on the step only)
    straight = run_runner(OMNIGLOT, ["--smoke"], tmp_path / "straight")  # offline: digits
    assert resumed["history"][-1]["upper_loss"] == pytest.approx(straight["history"][-1]["upper_loss"], rel=1e-4)
    assert resumed["metrics"]["test_accuracy"] == straight["metrics"]["test_accuracy"]


def _omniglot_tree(root, n_alphabets=2, n_chars=3, n_images=4):
    rng = np.random.default_rng(0)
    for a in range(n_alphabets):
        for c in range(n_chars):
            folder = root / "omniglot_resized" / f"alphabet{a}" / f"character{c:02d}"
            folder.mkdir(parents=True)
            stroke = rng.random((28, 28)) < 0.15
            for i in range(n_images):
                jitter = rng.random((28, 28)) < 0.03
                Image.fromarray(np.where(stroke ^ jitter, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")


def test_omniglot_real_format_png_tree_approxgrad(tmp_path):
    _omniglot_tree(tmp_path / "data")
    args = ["--smoke", "--method", "approxgrad", "--data-dir", str(tmp_path / "data"), "--train-characters", "3"]
    result = run_runner(OMNIGLOT, args, tmp_path / "run")
    _check_results(tmp_path / "run", result, "approxgrad", "omniglot", 4)
    x = np.load(tmp_path / "data" / "x_omniglot_1.npy")  # the original's cache, built from the PNG tree
    assert x.shape == (6 * 4 * 4, 28, 28, 1)


def _pickle_split(rng, n_classes, n_images):
    images = rng.integers(0, 256, (n_classes * n_images, 84, 84, 3), dtype=np.uint8)
    classes = {f"n{c:08d}": list(range(c * n_images, (c + 1) * n_images)) for c in range(n_classes)}
    return {"image_data": images, "class_dict": classes}


def test_miniimagenet_real_format_pickles(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    (data / "mini-imagenet-cache-train.pkl").write_bytes(py2_pickle_dumps(_pickle_split(rng, 6, 4)))
    (data / "mini-imagenet-cache-test.pkl").write_bytes(pickle.dumps(_pickle_split(rng, 5, 4), protocol=4))
    result = run_runner(MINIIMAGENET, ["--smoke", "--data-dir", str(data)], tmp_path / "run")
    _check_results(tmp_path / "run", result, "penalty", "miniimagenet", 4)
    assert result["config"]["n_way"] == 5 and result["config"]["meta_batch"] == 2


@pytest.mark.parametrize(
    "runner, missing", [(OMNIGLOT, "x_omniglot_1.npy"), (MINIIMAGENET, "mini-imagenet-cache-train.pkl")]
)
def test_missing_data_names_the_file(tmp_path, runner, missing, capsys):
    module = load_runner(runner)
    argv = ["--smoke", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run")]
    with pytest.raises(DataFileMissingError, match=missing):
        module.main(argv)
    from bilevel_tf.runner import experiment

    with pytest.raises(SystemExit) as exit_info:
        experiment.run_main(module.main, argv)
    assert exit_info.value.code == 2 and missing in capsys.readouterr().err
    assert not (tmp_path / "run" / "results.json").exists()


def test_too_many_ways_for_digits_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="--n-way 20 is larger than the 12 meta-test classes"):
        run_runner(OMNIGLOT, ["--smoke", "--dataset", "digits", "--n-way", "20"], tmp_path)
    assert not (tmp_path / "results.json").exists()

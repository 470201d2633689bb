"""Bad input at the runner and loader level: every case fails fast with one line saying what is wrong and
what is expected, and a failed run leaves the files already in its output folder untouched.

(The library API's own argument checks are in test_bad_input.py.)
"""

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from bilevel_tf.runner import experiment
from bilevel_tf import models
from bilevel_tf.datasets import DataFileMissingError, DataFormatError
from runner_utils import load_runner

LARGE = "data_denoising/mnist_large_scale/test_bilevel_importance_learning_mnist.py"
SMALL = "data_denoising/mnist_small_scale/test_bilevel_importance_learning_mnist.py"
SVHN = "data_denoising/svhn/test_bilevel_importance_learning_svhn.py"
PREPROCESS = "data_denoising/svhn/pre_process_svhn_data.py"
HYPER = "data_denoising/hyper_cleaning/data_hyper_clean.py"
UNTARGETED = "data_poisoning/untargeted/test_bilevel_poisoning_untargeted.py"
TARGETED = "data_poisoning/targeted/test_bilevel_poisoning_targeted.py"
CLEAN_LABEL = "clean_label/test_bilevel_clean_label_attack.py"
OMNIGLOT = "few_shot/omniglot/test_bilevel_few_shot_learning_omniglot.py"
MINIIMAGENET = "few_shot/miniimagenet/test_bilevel_few_shot_learning_miniimagenet.py"
DIGITS = ["--smoke", "--dataset", "digits"]


def _main(runner, args, out):
    return load_runner(runner).main(list(args) + ["--out", str(out), "--verbose", "0"])


def _files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ flags rejected when parsed (exit status 2)
FLAG_CASES = [
    # noise levels outside [0, 1)
    (LARGE, DIGITS + ["--noise", "1.0"], "argument --noise: must be a number in [0, 1), got '1.0'"),
    (LARGE, DIGITS + ["--noise", "-0.1"], "argument --noise: must be a number in [0, 1), got '-0.1'"),
    (HYPER, DIGITS + ["--pollute_rate", "1.5"], "argument --pollute_rate: must be a number in [0, 1), got '1.5'"),
    # negative or zero counts
    (LARGE, DIGITS + ["--epochs", "-1"], "--epochs must be >= 1, got -1"),
    (UNTARGETED, DIGITS + ["--inner-steps", "0"], "--inner-steps must be >= 1, got 0"),
    (UNTARGETED, DIGITS + ["--num-poison", "-3"], "argument --num-poison: must be an integer >= 1, got '-3'"),
    (UNTARGETED, DIGITS + ["--full-epochs", "-1"], "argument --full-epochs: must be an integer >= 0, got '-1'"),
    (LARGE, DIGITS + ["--batch-size", "0"], "argument --batch-size: must be an integer >= 1, got '0'"),
    (LARGE, DIGITS + ["--pretrain-epochs", "-2"], "argument --pretrain-epochs: must be an integer >= 0, got '-2'"),
    (LARGE, DIGITS + ["--eval-every", "0"], "argument --eval-every: must be an integer >= 1, got '0'"),
    (UNTARGETED, DIGITS + ["--checkpoint-every", "0"], "argument --checkpoint-every: must be an integer >= 1, got '0'"),
    (UNTARGETED, DIGITS + ["--seed", "-1"], "argument --seed: must be an integer in [0, 4294967295], got '-1'"),
    (
        HYPER,
        DIGITS + ["--outer_itr", "0"],
        "argument --outer_itr/--outer-itr/--upper-iterations: must be an integer >= 1, got '0'",
    ),
    (CLEAN_LABEL, ["--smoke", "--num-targets", "-1"], "argument --num-targets: must be an integer >= 0, got '-1'"),
    (OMNIGLOT, DIGITS + ["--k-shot", "0"], "--k-shot must be >= 1, got 0"),
    (PREPROCESS, ["--val-per-class", "-1"], "argument --val-per-class: must be an integer >= 0, got '-1'"),
    # unknown choices
    (LARGE, DIGITS + ["--method", "newton"], "argument --method: invalid choice: 'newton'"),
    (OMNIGLOT, ["--smoke", "--dataset", "imagenet"], "argument --dataset: invalid choice: 'imagenet'"),
]


@pytest.mark.parametrize("runner, args, message", FLAG_CASES, ids=[" ".join(c[1][-2:]) for c in FLAG_CASES])
def test_bad_flag_exits_2_with_one_line(runner, args, message, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        if runner == PREPROCESS:  # a data-preparation script: no --out
            load_runner(runner).main(args + ["--data-dir", str(tmp_path), "--out-dir", str(out)])
        else:
            _main(runner, args, out)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err  # no usage dump
    assert not out.exists() or not any(out.rglob("*.json"))  # no results, no checkpoint fingerprint


# ------------------------------------------------------------------ sizes the data cannot satisfy (N, K too large)
SIZE_CASES = [
    (
        UNTARGETED,
        ["--dataset", "digits", "--train-points", "100", "--num-poison", "500"],
        "--num-poison must be in 1..100 (it starts from training images), got 500",
    ),
    (
        UNTARGETED,
        ["--dataset", "digits", "--train-points", "2000"],
        "digits has 1797 images, fewer than 2000+300+1197 requested by --train-points/--val-points/--test-points",
    ),
    (
        TARGETED,
        DIGITS + ["--source-class", "3", "--target-class", "3"],
        "--source-class and --target-class must be two different classes in 0..9, got 3 and 3",
    ),
    (
        TARGETED,
        DIGITS + ["--target-class", "10"],  # a label out of range
        "--source-class and --target-class must be two different classes in 0..9, got 8 and 10",
    ),
    (
        OMNIGLOT,
        DIGITS + ["--n-way", "30"],
        "--n-way 30 is larger than the 28 meta-train classes of the digits data set",
    ),
    (
        OMNIGLOT,
        DIGITS + ["--k-shot", "200"],
        "--k-shot 200 + --query 2 = 202 images per class, "
        "but the smallest meta-train class of the digits data set has ",
    ),
    (
        LARGE,
        ["--dataset", "digits", "--batch-size", "5000"],
        "--batch-size 5000 is larger than the 1000 training examples of digits; expected at most 1000",
    ),
]


@pytest.mark.parametrize("runner, args, message", SIZE_CASES, ids=[" ".join(c[1][-2:]) for c in SIZE_CASES])
def test_sizes_larger_than_the_data(runner, args, message, tmp_path):
    with pytest.raises(experiment.UsageError) as error:
        _main(runner, args, tmp_path)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "results.json").exists()


def test_run_main_prints_a_usage_error_as_one_line(tmp_path, capsys):
    argv = ["--dataset", "digits", "--train-points", "100", "--num-poison", "500", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        experiment.run_main(load_runner(UNTARGETED).main, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: --num-poison must be in 1..100 (it starts from training images), got 500\n"


# ------------------------------------------------------------------ missing and corrupt data files
def _svhn_h5(path: Path, **replace):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 60), ("val", 20), ("test", 30)):
        arrays[f"X_{split}"] = rng.random((n, 32, 32, 1), dtype=np.float32) * 255
        arrays[f"y_{split}"] = np.tile(np.arange(10), n // 10).astype(np.int64)
    arrays.update(replace)
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            if value is not None:
                f.create_dataset(key, data=value)
    return path


@pytest.mark.parametrize(
    "replace, message",
    [
        (dict(y_test=None), r"missing datasets \['y_test'\] \(has \[.*\]\); expected HDF5 datasets \['X_train'"),
        (
            dict(y_train=np.tile(np.arange(1, 11), 6)),
            r"label 10 at index 9 of y_train is outside 0..9; expected integer class ids 0..9",
        ),
        (
            dict(X_train=np.zeros((60, 32, 32), np.float32)),
            r"X_train is float32 \(60, 32, 32\); expected uint8 or float images \(N, 32, 32, 1\|3\) with values in "
            r"\[0, 255\]",
        ),
    ],
    ids=["h5-missing-dataset", "h5-labels-out-of-range", "h5-wrong-image-shape"],
)
def test_svhn_cache_in_the_wrong_layout(replace, message, tmp_path):
    h5 = _svhn_h5(tmp_path / "SVHN_single_grey_without_extra.h5", **replace)
    with pytest.raises(DataFormatError, match=message) as error:
        _main(SVHN, ["--smoke", "--data-dir", str(tmp_path), "--batch-size", "10"], tmp_path / "run")
    assert str(error.value).startswith(str(h5)) and "\n" not in str(error.value)


def test_truncated_svhn_mat_keeps_the_existing_cache(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(0)
    for name in ("train_32x32.mat", "test_32x32.mat"):
        scipy_io.savemat(
            tmp_path / name,
            {"X": rng.integers(0, 256, (32, 32, 3, 20), dtype=np.uint8), "y": np.tile(np.arange(1, 11), 2)[:, None]},
        )
    data = (tmp_path / "train_32x32.mat").read_bytes()
    (tmp_path / "train_32x32.mat").write_bytes(data[: len(data) // 2])  # an interrupted download
    cache = _svhn_h5(tmp_path / "SVHN_single_grey_without_extra.h5")
    before = cache.read_bytes()
    with pytest.raises(
        DataFormatError,
        match=r"train_32x32.mat: unreadable .mat file .*; expected an intact MATLAB "
        r"v5 file from the SVHN site \(re-download it\)",
    ):
        load_runner(PREPROCESS).main(["--data-dir", str(tmp_path), "--out-dir", str(tmp_path)])
    assert cache.read_bytes() == before


def test_miniimagenet_pickle_with_wrong_keys(tmp_path):
    images = np.zeros((8, 84, 84, 3), np.uint8)
    (tmp_path / "mini-imagenet-cache-train.pkl").write_bytes(pickle.dumps({"image_data": images, "labels": [0] * 8}))
    with pytest.raises(
        DataFormatError,
        match=r"mini-imagenet-cache-train.pkl: missing keys \['class_dict'\] "
        r"\(has \['image_data', 'labels'\]\); expected keys 'image_data' and "
        r"'class_dict'",
    ):
        _main(MINIIMAGENET, ["--smoke", "--data-dir", str(tmp_path)], tmp_path / "run")


def test_miniimagenet_class_indices_out_of_range(tmp_path):
    images = np.zeros((8, 84, 84, 3), np.uint8)
    split = {"image_data": images, "class_dict": {"n01": [0, 1, 2, 3], "n02": [4, 5, 6, 12]}}
    (tmp_path / "mini-imagenet-cache-train.pkl").write_bytes(pickle.dumps(split))
    with pytest.raises(
        DataFormatError,
        match=r"class 'n02' indexes images outside \[0, 8\); expected indices into "
        r"image_data",
    ):
        _main(MINIIMAGENET, ["--smoke", "--data-dir", str(tmp_path)], tmp_path / "run")


def test_omniglot_cache_with_the_wrong_image_shape(tmp_path):
    np.save(tmp_path / "x_omniglot_1.npy", np.zeros((8, 28, 28), np.float32))  # channel axis missing
    np.save(tmp_path / "y_omniglot_1.npy", np.arange(8, dtype=np.int32))
    with pytest.raises(
        DataFormatError,
        match=r"x_omniglot_1.npy: x_omniglot_1.npy is float32 \(8, 28, 28\); "
        r"expected float images \(N, 28, 28, 1\)",
    ):
        _main(OMNIGLOT, ["--smoke", "--data-dir", str(tmp_path)], tmp_path / "run")


def test_clean_label_features_file_without_test_features(tmp_path):
    features = tmp_path / "features.h5"
    with h5py.File(features, "w") as f:
        f.create_dataset("X_train", data=np.zeros((8, 2048), np.float32))
    with pytest.raises(
        DataFormatError,
        match=r"features.h5: missing datasets \['X_test'\] \(has \['X_train'\]\); "
        r"expected HDF5 datasets \['X_train', 'X_test'\]",
    ):
        _main(CLEAN_LABEL, ["--smoke", "--random-weights", "--features", str(features)], tmp_path / "run")


def test_missing_mnist_names_the_file_and_where_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # never find a real cache
    argv = ["--smoke", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "run")]
    with pytest.raises(DataFileMissingError, match=r"^mnist.npz not found at .*empty"):
        load_runner(SMALL).main(argv)
    with pytest.raises(SystemExit) as exit_info:
        experiment.run_main(load_runner(SMALL).main, argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: mnist.npz not found at") and "keras.datasets.mnist.load_data()" in err


@pytest.mark.parametrize("build", [models.cifar10_cnn, models.svhn_cnn, models.omniglot_encoder])
def test_image_model_rejects_a_shape_without_channels(build):
    with pytest.raises(
        ValueError,
        match=r"input_shape must be \(height, width, channels\) \(channels-last\), "
        r"got \(32, 32\)",
    ):
        build(input_shape=(32, 32))


# ------------------------------------------------------------------ a failed run overwrites nothing
def _previous_run(out: Path) -> dict:
    (out / "checkpoints" / "bilevel").mkdir(parents=True)
    (out / "results.json").write_text('{"metrics": {"test_accuracy": 0.9}}\n')
    (out / "checkpoints" / "bilevel" / "ckpt-5.index").write_bytes(b"\x00\x01 an earlier run's checkpoint")
    (out / "history.csv").write_text("step,upper_loss\n5,0.1\n")
    return _files(out)


@pytest.mark.parametrize(
    "runner, args, error",
    [
        (LARGE, DIGITS + ["--fresh", "--noise", "1.0"], SystemExit),  # rejected before --fresh deletes anything
        (UNTARGETED, ["--dataset", "digits", "--train-points", "100", "--num-poison", "500"], experiment.UsageError),
        (SVHN, ["--smoke", "--data-dir", "<empty>"], DataFileMissingError),
        # --fresh empties the checkpoint folder only when training is about to use it
        (SVHN, ["--smoke", "--fresh", "--data-dir", "<empty>"], DataFileMissingError),
        (
            UNTARGETED,
            ["--dataset", "digits", "--fresh", "--train-points", "100", "--num-poison", "500"],
            experiment.UsageError,
        ),
    ],
    ids=["bad-flag", "too-many-poison-points", "missing-data", "missing-data-fresh", "too-many-poison-points-fresh"],
)
def test_failed_run_leaves_the_output_folder_byte_identical(runner, args, error, tmp_path):
    out = tmp_path / "run"
    before = _previous_run(out)
    args = [str(tmp_path / "empty") if a == "<empty>" else a for a in args]
    with pytest.raises(error):
        _main(runner, args, out)
    after = _files(out)
    assert {k: after[k] for k in before} == before  # results.json, checkpoints and logs untouched
    if error is SystemExit:
        assert after == before  # nothing written at all

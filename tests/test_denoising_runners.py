"""Smoke runs of the data-denoising runners (offline digits, in-process) and their output files."""

import json
from pathlib import Path

import numpy as np
import pytest

from runner_utils import assert_solver_config, run_runner

from bilevel_tf.solvers.penalty_schedules import DEFAULT_SCHEDULE

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"

SMALL = "data_denoising/mnist_small_scale/test_bilevel_importance_learning_mnist.py"
LARGE = "data_denoising/mnist_large_scale/test_bilevel_importance_learning_mnist.py"
CIFAR = "data_denoising/cifar10/test_bilevel_importance_learning_cifar10.py"
SVHN = "data_denoising/svhn/test_bilevel_importance_learning_svhn.py"
HYPER = "data_denoising/hyper_cleaning/data_hyper_clean.py"
PREPROCESS = "data_denoising/svhn/pre_process_svhn_data.py"


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    """No cached data sets or weights: the runs below are also the check that --smoke alone runs offline."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "no_keras_cache"))


DENOISING_METRICS = (
    "test_accuracy",
    "noisy_baseline_test_accuracy",
    "bilevel_test_accuracy",
    "noise_precision",
    "noise_recall",
    "pretrain_test_accuracy",
)


def _check_outputs(out: Path, result: dict, method: str):
    assert result["method"] == method
    assert set(result) >= {
        "experiment",
        "method",
        "dataset",
        "config",
        "metrics",
        "history",
        "seconds_per_upper_iteration",
    }
    for name in ("importance_histogram.png", "accuracy_vs_time.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG" and (out / name).stat().st_size > 5000, name
    rows = (out / "history.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) > 2
    assert result["seconds_per_upper_iteration"] > 0
    assert_solver_config(result, method)


def _check_denoising(out: Path, result: dict, method: str, epochs: int = 2):
    _check_outputs(out, result, method)
    m = result["metrics"]
    for key in DENOISING_METRICS:
        assert 0.0 <= m[key] <= 1.0, key
    # smoke sizes: 100 train (25 per batch), 50 val, 100 test
    assert (m["n_train"], m["n_val"], m["n_test"]) == (100, 50, 100)
    assert m["upper_iterations"] == epochs * 4
    flipped = round(result["config"]["noise"] * 100)
    assert m["n_flipped"] == flipped
    history = result["history"]
    evaluated = [r for r in history if "lower_test_accuracy" in r]
    assert evaluated[0]["step"] == 0 and evaluated[-1]["step"] == epochs * 4
    assert [r["epoch"] for r in history if "epoch" in r] == list(range(1, epochs + 1))
    # renormalised after every epoch: mean importance 0.5 (then clipped to [1e-5, 0.99999], as the original)
    assert 0.25 < evaluated[-1]["mean_importance"] <= 0.5 + 1e-3
    assert m["step_traces"] == 1  # fixed batch shapes: the compiled upper iteration never retraces


@pytest.mark.parametrize(
    "runner,method,model",
    [
        (SMALL, "penalty", "paper"),
        (LARGE, "penalty", "mlp"),
        (LARGE, "approxgrad", "mlp"),
        (SVHN, "rmd", "paper"),
        (CIFAR, "gd", "mlp"),
        (SMALL, "implicit", "mlp"),
    ],
)
def test_denoising_runner_smoke(tmp_path, runner, method, model):
    # SVHN with model=paper: the original's CNN (on 8x8 digits) in the unrolled RMD loop
    result = run_runner(runner, ["--smoke", "--method", method, "--model", model], tmp_path)  # offline: digits
    _check_denoising(tmp_path, result, method)
    assert result["config"]["model"] == model and result["dataset"] == "digits"
    if runner == SMALL and method == "penalty":  # final step of the original: retrain on {a > 0.9} + val
        assert result["config"]["selection_threshold"] == 0.9
        assert 0 <= result["metrics"]["selected_training_points"] <= 100
        # valid JSON without NaN; digits (not the paper's data) runs the library's default schedule with its own
        # lr_u, and the table's original-schedule constants are left out
        text = (tmp_path / "results.json").read_text()
        hp = json.loads(text)["config"]["hyperparams"]
        assert "NaN" not in text and "c_rho" not in hp
        assert (hp["schedule"], hp["lr_u"]) == (DEFAULT_SCHEDULE, 0.3)
    if method == "gd":  # f does not depend on u directly: naive alternation never moves the importance
        assert result["metrics"]["noise_precision"] == result["metrics"]["warm_start_noise_precision"]


MODERN = ("soba", "amigo", "stocbio", "f2sa", "bome")  # the denoising table's modern rows (SABA: not offered)


@pytest.mark.parametrize("method", MODERN)
def test_denoising_runner_offers_the_modern_solvers(tmp_path, method):
    """Each modern solver runs the digits demo end to end from its table row: ApproxGrad's learning rates,
    Adam on v and its copies, plain SGD steps on the linear system."""
    result = run_runner(LARGE, ["--smoke", "--method", method], tmp_path)
    _check_denoising(tmp_path, result, method)
    solver = result["config"]["solver"]
    assert solver["upper_optimizer"]["config"]["learning_rate"] == pytest.approx(0.3)  # digits' approxgrad row
    assert solver["lower_optimizer"]["class_name"] == "Adam"
    assert solver["lower_optimizer"]["config"]["learning_rate"] == pytest.approx(1e-3)
    adam_slot = {"f2sa": "penalty_optimizer", "bome": "inner_optimizer"}.get(method)  # the copies of v: Adam
    if adam_slot:
        assert solver[adam_slot]["class_name"] == "Adam", solver[adam_slot]
    if method in ("soba", "amigo"):  # the linear system: plain SGD steps
        assert solver["linear_optimizer"]["class_name"] == "SGD"
        assert solver["linear_optimizer"]["config"]["learning_rate"] == pytest.approx(0.01)
    assert solver.get("neumann_step", 0.01) == pytest.approx(0.01)  # StocBiO's eta, the same step
    if method == "f2sa":  # a small fixed penalty weight (see the table)
        assert (solver["lam_init"], solver["lam_growth"], solver["lam_max"]) == (3.0, 0.0, 3.0)


def test_cifar_runner_with_augmentation_and_baselines(tmp_path):
    result = run_runner(CIFAR, ["--smoke", "--baselines", "--augment"], tmp_path)  # the digits demo's is off
    _check_denoising(tmp_path, result, "penalty")
    assert result["config"]["augment"] is True and result["config"]["model"] == "mlp"
    m = result["metrics"]
    for key in ("oracle_test_accuracy", "val_only_test_accuracy", "train_val_test_accuracy"):
        assert 0.0 <= m[key] <= 1.0
    assert m["train_val_test_accuracy"] == m["noisy_baseline_test_accuracy"]


def test_resume_continues_and_refuses_another_configuration(tmp_path, capsys):
    first = run_runner(LARGE, ["--smoke", "--dataset", "digits", "--upper-iterations", "3"], tmp_path, verbose=1)
    assert first["metrics"]["upper_iterations"] == 3
    out = capsys.readouterr().out  # what each long phase is
    assert "warm start: 2 steps training the classifier" in out and "tracing and compiling" in out
    assert "evaluating: training 2 classifiers for " in out and "resuming" not in out
    resumed = run_runner(LARGE, ["--smoke", "--dataset", "digits"], tmp_path, verbose=1)
    assert resumed["metrics"]["upper_iterations"] == 8
    out = capsys.readouterr().out
    assert "resuming from step 3 of 8" in out and "warm start" not in out  # the checkpoint holds the warm start
    steps = [r["step"] for r in resumed["history"]]
    assert steps[0] == 0 and max(steps) == 8  # the whole run's history: the first part was restored
    assert resumed["history"][: len(first["history"])] == first["history"]
    assert resumed["metrics"]["warm_start_noise_precision"] == first["metrics"]["warm_start_noise_precision"]
    # K upper iterations replace the epochs' count (2 epochs x 4 batches here), also beyond it
    longer = run_runner(LARGE, ["--smoke", "--dataset", "digits", "--upper-iterations", "10"], tmp_path)
    assert (
        longer["metrics"]["upper_iterations"] == 10
        and longer["history"][: len(resumed["history"]) - 1] == resumed["history"][:-1]
    )
    with pytest.raises(ValueError, match="another configuration"):
        run_runner(LARGE, ["--smoke", "--dataset", "digits", "--noise", "0.4"], tmp_path)


@pytest.mark.parametrize(
    "method,extra",
    [("vpbgd", []), ("gpbgd", ["--net", "MLP"]), ("rhg", ["--K", "2"]), ("penalty", [])]
    + [(m, []) for m in ("saba",) + MODERN],
)
def test_hyper_cleaning_smoke(tmp_path, method, extra):
    result = run_runner(HYPER, ["--smoke", "--method", method] + extra, tmp_path)
    _check_outputs(tmp_path, result, method)
    m = result["metrics"]
    for key in (
        "test_accuracy",
        "noisy_baseline_test_accuracy",
        "f1",
        "cleaner_precision",
        "cleaner_recall",
        "noise_precision",
        "noise_recall",
    ):
        assert 0.0 <= m[key] <= 1.0, key
    assert m["n_train"] == 1000 and m["n_dirty"] == 500
    assert 0.5 < m["labels_unchanged"] < 0.6  # half redrawn uniformly over 10 classes: ~55% unchanged
    assert result["history"][-1]["step"] == 20
    if method == "rhg":
        assert result["config"]["T"] == 5 and result["config"]["K"] == 2
        assert result["config"]["solver"]["truncation"] == 2 and result["config"]["solver"]["inner_steps"] == 5
    if method in MODERN + ("saba",):  # the runner's MODERN row: plain SGD, lrx = 1, lry = 0.1, 2 inner steps
        solver = result["config"]["solver"]
        assert solver["upper_optimizer"]["class_name"] == "SGD" and solver["inner_steps"] == 2
        assert solver["upper_optimizer"]["config"]["learning_rate"] == pytest.approx(1.0)
        assert solver["lower_optimizer"]["config"]["learning_rate"] == pytest.approx(0.1)


def test_svhn_preprocessing_and_runner_on_real_format_files(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(0)
    for name, n in (("train_32x32.mat", 80), ("test_32x32.mat", 30)):
        labels = np.tile(np.arange(1, 11), n // 10)[:, None]  # 10 = digit 0, as the official files
        scipy_io.savemat(tmp_path / name, {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8), "y": labels})
    from runner_utils import load_runner

    path = load_runner(PREPROCESS).main(
        ["--data-dir", str(tmp_path), "--out-dir", str(tmp_path), "--val-per-class", "2"]
    )
    assert Path(path).name == "SVHN_single_grey_without_extra.h5"
    result = run_runner(
        SVHN, ["--smoke", "--data-dir", str(tmp_path), "--batch-size", "10", "--model", "mlp"], tmp_path / "run"
    )
    m = result["metrics"]
    assert (m["n_train"], m["n_val"], m["n_test"]) == (60, 20, 30)
    assert result["dataset"] == "svhn" and 0.0 <= m["test_accuracy"] <= 1.0


def test_missing_paper_data_names_the_file(tmp_path, capsys):
    from runner_utils import load_runner
    from bilevel_tf.runner import experiment

    with pytest.raises(SystemExit) as e:
        experiment.run_main(load_runner(SVHN).main, ["--smoke", "--data-dir", str(tmp_path), "--out", str(tmp_path)])
    assert e.value.code == 2
    assert "SVHN_single_grey_without_extra.h5" in capsys.readouterr().err


def test_schedule_original_keeps_the_papers_constants(tmp_path):
    run_runner(SMALL, ["--smoke", "--dataset", "digits", "--schedule", "original"], tmp_path)
    hp = json.loads((tmp_path / "results.json").read_text())["config"]["hyperparams"]
    assert (hp["schedule"], hp["lr_u"], hp["rho"], hp["c_rho"], hp["lr_decay"]) == ("original", 3.0, 1e-2, 1.1, 0.9)

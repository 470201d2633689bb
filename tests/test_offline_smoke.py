"""Every experiment runner's `--smoke --out DIR`, with no other flag, runs offline (no data file, no
downloaded weights) and records the full configuration of the solver it used in results.json; running it again,
or with another seed, is answered before TensorFlow loads."""
import json

import pytest

from runner_utils import ROOT, SOLVER_CLASSES, load_runner
from test_fast_errors import SECONDS, run_guarded

pytestmark = pytest.mark.slow

PAPER_RUNNERS = (
    "data_denoising/mnist_small_scale/test_bilevel_importance_learning_mnist.py",
    "data_denoising/mnist_large_scale/test_bilevel_importance_learning_mnist.py",
    "data_denoising/cifar10/test_bilevel_importance_learning_cifar10.py",
    "data_denoising/svhn/test_bilevel_importance_learning_svhn.py",
    "data_denoising/hyper_cleaning/data_hyper_clean.py",
    "few_shot/omniglot/test_bilevel_few_shot_learning_omniglot.py",
    "few_shot/miniimagenet/test_bilevel_few_shot_learning_miniimagenet.py",
    "data_poisoning/targeted/test_bilevel_poisoning_targeted.py",
    "data_poisoning/untargeted/test_bilevel_poisoning_untargeted.py",
    "clean_label/test_bilevel_clean_label_attack.py",
    "synthetic_examples/pbgd_toy.py",
    "synthetic_examples/test_synthetic.py",
)


def test_every_experiment_runner_is_listed():
    found = {str(p.relative_to(ROOT)) for folder in ("data_denoising", "few_shot", "data_poisoning", "clean_label",
                                                     "synthetic_examples")
             for p in (ROOT / folder).rglob("*.py") if "/time_" not in str(p) and "pre_process" not in p.name
             and "extract_" not in p.name}
    assert found == set(PAPER_RUNNERS)


@pytest.mark.parametrize("runner", PAPER_RUNNERS)
def test_smoke_alone_runs_offline_and_records_the_solver(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "no_keras_cache"))  # no cached data sets or weights
    load_runner(runner).main(["--smoke", "--out", str(tmp_path), "--verbose", "0"])
    # the same command again, and another seed, are answered before TensorFlow loads (tests/test_fast_errors.py)
    finished, seconds = run_guarded(runner, ["--smoke", "--out", tmp_path, "--verbose", "0"], cwd=tmp_path)
    assert finished.returncode == 0 and "already holds the finished run" in finished.stdout, finished.stderr[-2000:]
    assert seconds < SECONDS, f"{seconds:.2f} s"
    other, seconds = run_guarded(runner, ["--smoke", "--out", tmp_path, "--verbose", "0", "--seed", "7"], cwd=tmp_path)
    assert other.returncode == 2 and other.stderr.startswith(f"error: {tmp_path} holds a run of another "
                                                             "configuration") and "seed: " in other.stderr, other.stderr
    assert seconds < SECONDS, f"{seconds:.2f} s"
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["metrics"], runner
    solver = result["config"]["solver"]
    configs = solver.values() if "class" not in solver else [solver]  # the synthetic sweep: one per method
    for config in configs:
        assert config["class"] in SOLVER_CLASSES.values(), config
        assert config["inner_steps"] >= 1
        for level in ("upper_optimizer", "lower_optimizer"):
            assert config[level]["config"]["learning_rate"] > 0, (runner, level)

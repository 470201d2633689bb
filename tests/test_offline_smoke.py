"""Every experiment runner's `--smoke --out DIR`, with no other flag, runs offline (no data file, no
downloaded weights) and records the full configuration of the solver it used in results.json; running it again,
or with another seed, is answered before TensorFlow loads."""

import json
import re

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


#: runners whose `--smoke` alone (no --dataset, no --data-dir, KERAS_HOME empty) already runs in the family's
#: own tests, which also check results.json and the solver's recorded configuration
SMOKE_ALONE_ELSEWHERE = {
    PAPER_RUNNERS[0]: "test_denoising_runners.py::test_denoising_runner_smoke",
    PAPER_RUNNERS[1]: "test_denoising_runners.py::test_denoising_runner_smoke",
    PAPER_RUNNERS[2]: "test_denoising_runners.py::test_cifar_runner_with_augmentation_and_baselines",
    PAPER_RUNNERS[3]: "test_denoising_runners.py::test_denoising_runner_smoke",
    PAPER_RUNNERS[4]: "test_denoising_runners.py::test_hyper_cleaning_smoke",
    PAPER_RUNNERS[5]: "test_few_shot_runners.py::test_omniglot_digits_penalty_resume_is_exact",
    PAPER_RUNNERS[7]: "test_poisoning_runners.py::test_targeted_smoke_and_resume",
    PAPER_RUNNERS[8]: "test_poisoning_runners.py::test_untargeted_smoke",
    PAPER_RUNNERS[10]: "test_synthetic_runner.py::test_pbgd_toy_smoke",
    PAPER_RUNNERS[11]: "test_synthetic_runner.py::test_synthetic_runner_smoke_and_resume",
}
#: the rest run here (their family tests name the data)
SMOKE_ALONE_HERE = [r for r in PAPER_RUNNERS if r not in SMOKE_ALONE_ELSEWHERE]


def test_every_experiment_runner_is_listed():
    found = {
        str(p.relative_to(ROOT))
        for folder in ("data_denoising", "few_shot", "data_poisoning", "clean_label", "synthetic_examples")
        for p in (ROOT / folder).rglob("*.py")
        if "/time_" not in str(p) and "pre_process" not in p.name and "extract_" not in p.name
    }
    assert found == set(PAPER_RUNNERS)
    assert SMOKE_ALONE_HERE == [PAPER_RUNNERS[6], PAPER_RUNNERS[9]]  # Mini-ImageNet and clean-label


@pytest.mark.parametrize("runner", sorted(SMOKE_ALONE_ELSEWHERE))
def test_the_smoke_run_elsewhere_passes_smoke_alone(runner):
    """The named test (decorators included) names the runner and passes it a --smoke that names no data, in a
    module whose fixture empties KERAS_HOME."""
    module_name, test_name = SMOKE_ALONE_ELSEWHERE[runner].split("::")
    source = (ROOT / "tests" / module_name).read_text()
    head, tail = source.split(f"\ndef {test_name}(", 1)
    region = head[head.rindex("\n\n") :] + tail.split("\ndef ", 1)[0]
    constant = next(name for name, value in re.findall(r'^(\w+) = "([^"]+)"', source, re.M) if value == runner)
    smoke_lists = re.findall(r'\[("--smoke"[^\]]*)\]', region)
    assert constant in region and any("--dataset" not in a and "--data-dir" not in a for a in smoke_lists), test_name
    assert 'setenv("KERAS_HOME"' in source, module_name


@pytest.mark.parametrize("runner", SMOKE_ALONE_HERE)
def test_smoke_alone_runs_offline_and_records_the_solver(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "no_keras_cache"))  # no cached data sets or weights
    load_runner(runner).main(["--smoke", "--out", str(tmp_path), "--verbose", "0"])
    # the same command again, and another seed, are answered before TensorFlow loads (tests/test_fast_errors.py)
    finished, seconds = run_guarded(runner, ["--smoke", "--out", tmp_path, "--verbose", "0"], cwd=tmp_path)
    assert finished.returncode == 0 and "already holds the finished run" in finished.stdout, finished.stderr[-2000:]
    assert seconds < SECONDS, f"{seconds:.2f} s"
    other, seconds = run_guarded(runner, ["--smoke", "--out", tmp_path, "--verbose", "0", "--seed", "7"], cwd=tmp_path)
    assert (
        other.returncode == 2
        and other.stderr.startswith(f"error: {tmp_path} holds a run of another configuration")
        and "seed: " in other.stderr
    ), other.stderr
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

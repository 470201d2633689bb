"""--seed N --deterministic: two runs of a runner give identical results.json metrics (and loss curves)."""

import pytest
from tensorflow.python.framework import config as tf_config

from runner_utils import run_runner

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"

DENOISING = "data_denoising/mnist_large_scale/test_bilevel_importance_learning_mnist.py"
POISONING = "data_poisoning/untargeted/test_bilevel_poisoning_untargeted.py"


@pytest.fixture
def restore_op_determinism():
    # --deterministic switches TensorFlow's op determinism on for the whole process (TF has no public switch
    # back): restore the previous state so the tests that follow run as they would alone.
    before = tf_config.is_op_determinism_enabled()
    yield
    if not before:
        tf_config.disable_op_determinism()


def _curves(history):
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in history]


@pytest.mark.parametrize(
    "runner, args, other_seed",
    [
        (DENOISING, ["--smoke", "--dataset", "digits"], False),  # shuffled tf.data streams, warm start, evaluation
        (POISONING, ["--smoke", "--dataset", "digits", "--epochs", "3"], True),
    ],
    ids=["denoising", "poisoning"],
)
def test_two_seeded_deterministic_runs_agree(runner, args, other_seed, tmp_path, restore_op_determinism):
    flags = args + ["--seed", "7", "--deterministic"]
    first = run_runner(runner, flags, tmp_path / "a")
    second = run_runner(runner, flags, tmp_path / "b")
    assert first["config"]["deterministic"] is True and first["config"]["seed"] == 7
    assert first["metrics"] == second["metrics"]  # exactly, every metric
    assert _curves(first["history"]) == _curves(second["history"])
    if other_seed:  # the comparison has teeth: another seed changes the run
        other = run_runner(runner, args + ["--seed", "8", "--deterministic"], tmp_path / "c")
        assert _curves(other["history"]) != _curves(first["history"])

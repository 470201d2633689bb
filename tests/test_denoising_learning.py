"""The README demo learns: on the bundled digits with 25% flipped labels, Penalty's learned importance beats
the uniform-weight noisy baseline and gives flipped points low weight (fixed seeds)."""

import pytest
from runner_utils import run_runner

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"

LARGE = "data_denoising/mnist_large_scale/test_bilevel_importance_learning_mnist.py"


def test_penalty_importance_beats_noisy_baseline_on_digits(tmp_path):
    result = run_runner(LARGE, ["--dataset", "digits", "--seed", "0"], tmp_path)
    m = result["metrics"]
    assert result["config"]["noise"] == 0.25 and m["n_flipped"] == 250
    # the classifier trained with the learned weights beats uniform weights on the same noisy data
    assert m["test_accuracy"] >= m["noisy_baseline_test_accuracy"] + 0.02
    # the 250 lowest-weighted points are mostly the flipped ones (chance: 0.25), better than the warm start
    assert m["noise_precision"] >= 0.8
    assert m["noise_precision"] > m["warm_start_noise_precision"]
    assert m["mean_importance_flipped"] < 0.2 < 0.5 < m["mean_importance_clean"]
    # the lower-level net itself learns the clean validation set (fig. 4a: val accuracy -> 1)
    evaluated = [r for r in result["history"] if "lower_val_accuracy" in r]
    assert evaluated[-1]["lower_val_accuracy"] > evaluated[0]["lower_val_accuracy"]

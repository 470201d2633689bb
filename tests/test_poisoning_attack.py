"""The untargeted attack on real offline data (bundled digits, logistic regression): Penalty's learned
poison must hurt the retrained classifier clearly more than the same points with flipped labels."""

import pytest
import numpy as np

from runner_utils import run_runner

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"

UNTARGETED = "data_poisoning/untargeted/test_bilevel_poisoning_untargeted.py"


def test_penalty_poison_beats_label_flipping_on_digits(tmp_path):
    # 30 poison points on 300 training digits; 300 upper iterations (T = 20) instead of 5000 and 2000
    # retraining steps instead of 10000. eps_0 = 0.01: with the original's tolerance test the schedule
    # fires (and decays both learning rates by 0.9) at almost every early iteration when eps_0 = 1, which
    # only pays off over the paper's 5000 iterations.
    args = [
        "--dataset",
        "digits",
        "--num-poison",
        "30",
        "--epochs",
        "300",
        "--full-epochs",
        "2000",
        "--eps",
        "0.01",
        "--seed",
        "0",
    ]
    result = run_runner(UNTARGETED, args, tmp_path)
    m = result["metrics"]
    clean, flipped, poisoned = m["clean_test_accuracy"], m["label_flip_test_accuracy"], m["poisoned_test_accuracy"]
    assert clean > 0.92
    assert flipped > clean - 0.04  # 30 flipped labels barely matter ...
    assert poisoned < flipped - 0.05  # ... the optimized poison clearly does (measured: -8.8 points)
    with np.load(tmp_path / "poison.npz") as f:  # the poison stayed a valid image
        assert f["learned"].min() >= 0.0 and f["learned"].max() <= 1.0
        assert np.abs(f["learned"] - f["start"]).mean() > 0.05
    upper = [h["upper_loss"] for h in result["history"]]
    assert upper[-1] < upper[0]  # f = -validation loss went down: validation loss up

"""The schedule presets reproduce, number for number, what the runners produced before the default changed
(values recorded from the code of commit 8093d34 on this machine's TensorFlow; timings left out)."""

import pytest
import json
from pathlib import Path

from runner_utils import run_runner

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"

DATA = Path(__file__).resolve().parent / "data"
SYNTHETIC = "synthetic_examples/test_synthetic.py"
DEMO = "data_denoising/mnist_large_scale/test_bilevel_importance_learning_mnist.py"


def _without_timings(x):
    if isinstance(x, dict):
        return {k: _without_timings(v) for k, v in x.items() if k != "seconds_per_upper_iteration"}
    if isinstance(x, list):
        return [_without_timings(v) for v in x]
    return x


def test_synthetic_runner_cells_are_unchanged(tmp_path):
    result = run_runner(SYNTHETIC, ["--smoke"], tmp_path)
    expected = json.loads((DATA / "synthetic_smoke_metrics.json").read_text())
    assert _without_timings(result["metrics"]) == expected


def test_digits_demo_with_the_original_schedule_is_unchanged(tmp_path):
    result = run_runner(DEMO, ["--dataset", "digits", "--schedule", "original"], tmp_path)
    expected = json.loads((DATA / "digits_demo_original_metrics.json").read_text())
    assert {k: result["metrics"][k] for k in expected} == expected
    assert result["config"]["hyperparams"]["schedule"] == "original"

"""Cheap errors answer at once: a runner checks its data files (and, in test_offline_smoke.py, its run folder:
a finished run, another configuration) before TensorFlow loads. Each check runs in a child process whose
TensorFlow or Keras import fails (test_fast_help.GUARD), within a time bound."""

import json
import os
import subprocess
import sys
import time

import pytest

from runner_utils import ROOT
from test_fast_help import GUARD

#: a cheap error's bound (the issue's; they take ~0.5 s on a loaded 2-core machine, TensorFlow alone 5-10 s)
SECONDS = 2.0
#: runner -> the first file of its paper data (its default data set) it looks for in --data-dir
PAPER_DATA = {
    "data_denoising/mnist_small_scale/test_bilevel_importance_learning_mnist.py": "mnist.npz",
    "data_denoising/mnist_large_scale/test_bilevel_importance_learning_mnist.py": "mnist.npz",
    "data_denoising/cifar10/test_bilevel_importance_learning_cifar10.py": "data_batch_1",
    "data_denoising/svhn/test_bilevel_importance_learning_svhn.py": "SVHN_single_grey_without_extra.h5",
    "data_denoising/hyper_cleaning/data_hyper_clean.py": "mnist.npz",
    "few_shot/omniglot/test_bilevel_few_shot_learning_omniglot.py": "x_omniglot_1.npy",
    "few_shot/miniimagenet/test_bilevel_few_shot_learning_miniimagenet.py": "mini-imagenet-cache-train.pkl",
    "data_poisoning/targeted/test_bilevel_poisoning_targeted.py": "mnist.npz",
    "data_poisoning/untargeted/test_bilevel_poisoning_untargeted.py": "mnist.npz",
    "clean_label/test_bilevel_clean_label_attack.py": "dataset_dog-fish_train-900_test-300.npz",
}


def run_guarded(runner: str, args, cwd=None):
    """``python <runner> args`` where importing TensorFlow or Keras fails (test_fast_help.GUARD, one runner in its
    own child, so the time bound includes Python's start-up); (result with the runner's exit status, stdout and
    stderr, wall-clock seconds)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-c", GUARD, json.dumps([str(a) for a in args]), str(ROOT / runner)],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    seconds = time.perf_counter() - start
    if child.returncode != 0:  # the guard itself failed
        return child, seconds
    outcome = json.loads(child.stdout.splitlines()[-1])[str(ROOT / runner)]
    code, err = outcome["code"], outcome["err"]
    if isinstance(code, str):  # an exception other than SystemExit, e.g. the guard's ImportError
        code, err = 1, err + code
    return subprocess.CompletedProcess(child.args, 0 if code is None else code, outcome["out"], err), seconds


@pytest.mark.parametrize("runner", list(PAPER_DATA))
def test_a_missing_data_file_is_reported_before_tensorflow_loads(runner, tmp_path):
    empty = tmp_path / "no_data"
    empty.mkdir()
    name = PAPER_DATA[runner]
    result, seconds = run_guarded(runner, ["--data-dir", empty, "--out", tmp_path / "out"])
    assert "imported before the flags were parsed" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {name} not found at {empty}"), lines
    assert seconds < SECONDS, f"{seconds:.2f} s"
    assert not (tmp_path / "out" / "run.json").exists()  # the run folder was not touched

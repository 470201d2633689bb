"""Crash safety: a runner killed with SIGKILL at a random step after a checkpoint, then started again with the
same flags, ends with the same results.json metrics AND the same complete history as an uninterrupted run with
the same seed; running it once more changes nothing.

The killed run is a real process (``python <runner> ...``, killed by a watcher thread as soon as the chosen
checkpoint is on disk). The uninterrupted reference and the rerun call the runner's ``main`` in the pytest
process (TensorFlow is loaded there already: a new process costs ~8 s of imports each), so the rerun starts
from nothing but the files the killed process left. Both runners checkpoint every upper iteration; the
denoising one also checkpoints its shuffled tf.data stream mid-epoch.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from runner_utils import ROOT, run_runner

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"

COMMON = ["--checkpoint-every", "1", "--seed", "3", "--deterministic"]
RUNNERS = {
    # 1000 digits, batch 50: 20 upper iterations per epoch, 40 in all
    "denoising": (
        "data_denoising/mnist_large_scale/test_bilevel_importance_learning_mnist.py",
        [
            "--dataset",
            "digits",
            "--epochs",
            "2",
            "--batch-size",
            "50",
            "--inner-steps",
            "10",
            "--pretrain-epochs",
            "1",
            "--eval-epochs",
            "1",
        ],
        40,
    ),
    # full-batch attack on 100 digits with 6 poison points, 60 upper iterations
    "poisoning": (
        "data_poisoning/untargeted/test_bilevel_poisoning_untargeted.py",
        [
            "--dataset",
            "digits",
            "--epochs",
            "60",
            "--inner-steps",
            "20",
            "--full-epochs",
            "200",
            "--train-points",
            "100",
            "--val-points",
            "100",
            "--test-points",
            "200",
            "--num-poison",
            "6",
            "--log-every",
            "1",
        ],
        60,
    ),
}
KILL_SEED = 2024
#: where the kill may land (upper iterations, [low, high)): for denoising the last steps of the first epoch, where
#: the prefetched training stream has already reached the end of its pass when the checkpoint is written (resuming
#: from there diverged before denoising.data.indexed_batches(cycle=True))
KILL_RANGE = {"denoising": (17, 20), "poisoning": (3, 48)}
KILLS_SURVIVED = []


@pytest.fixture
def restore_op_determinism():
    before = tf_config.is_op_determinism_enabled()  # --deterministic switches it on for the whole process
    yield
    if not before:
        tf_config.disable_op_determinism()


def _latest_step(folder) -> int:
    steps = [int(name[5:-6]) for name in os.listdir(folder) if name.startswith("ckpt-") and name.endswith(".index")]
    return max(steps, default=0)


TIMINGS = ("seconds", "eval_seconds", "step_seconds")


def _assert_same_history(resumed: list, reference: list) -> None:
    assert [r["step"] for r in resumed] == [r["step"] for r in reference]
    for a, b in zip(resumed, reference):
        _assert_same_metrics(
            {k: v for k, v in a.items() if k not in TIMINGS}, {k: v for k, v in b.items() if k not in TIMINGS}
        )


def _assert_same_metrics(resumed: dict, reference: dict) -> None:
    assert resumed.keys() == reference.keys()
    for key, expected in reference.items():
        value = resumed[key]
        if isinstance(expected, float) and isinstance(value, float):
            assert value == pytest.approx(expected, abs=1e-6, rel=0), key
        else:
            assert value == expected, key


class KilledRun:
    """``python <runner> ...`` in a subprocess, SIGKILLed by a watcher thread once a checkpoint of upper
    iteration >= ``kill_step`` is on disk."""

    def __init__(self, name: str, tmp_path):
        self.name = name
        self.runner, self.args, self.total = RUNNERS[name]
        self.kill_step = int(np.random.default_rng([KILL_SEED, list(RUNNERS).index(name)]).integers(*KILL_RANGE[name]))
        self.out = tmp_path / name / "killed"
        self.folder = str(self.out / "checkpoints" / "bilevel")
        self.command = (
            [sys.executable, str(ROOT / self.runner)] + self.args + COMMON + ["--out", str(self.out), "--verbose", "0"]
        )
        self.env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg")
        self.cwd = tmp_path / name
        self.cwd.mkdir()
        self.log = self.cwd / "killed.log"
        self.killed_after = None

    def start(self) -> None:
        with open(self.log, "wb") as log:
            self.child = subprocess.Popen(
                self.command, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
            )
        self.watcher = threading.Thread(target=self._watch, daemon=True)
        self.watcher.start()

    def _watch(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while self.child.poll() is None and time.monotonic() < deadline:
            if os.path.isdir(self.folder) and _latest_step(self.folder) >= self.kill_step:
                self.child.send_signal(signal.SIGKILL)
                self.killed_after = _latest_step(self.folder)
                return
            time.sleep(0.005)  # a step takes tens of milliseconds
        if self.child.poll() is None:
            self.child.kill()

    def wait_killed(self) -> int:
        """Join the watcher; check the run died by SIGKILL after a checkpoint; return the step it resumes from."""
        self.watcher.join()
        self.child.wait()
        assert self.child.returncode == -signal.SIGKILL, self.log.read_text()[-2000:]
        assert self.killed_after is not None and not (self.out / "results.json").exists()
        restored = tf.train.latest_checkpoint(self.folder)  # the state file may lag the newest index by one
        self.restored_step = int(restored.rsplit("-", 1)[1])
        assert 1 <= self.restored_step < self.total
        return self.restored_step


def test_sigkill_then_rerun_matches_an_uninterrupted_run(tmp_path, restore_op_determinism):
    # Both runners at once: a new process spends seconds importing TensorFlow on one core, so two children keep
    # both cores busy while the references run in-process.
    runs = [KilledRun(name, tmp_path) for name in RUNNERS]
    for run in runs:
        run.start()
    try:
        references = {
            run.name: run_runner(run.runner, run.args + COMMON, tmp_path / run.name / "reference") for run in runs
        }
    except BaseException:
        for run in runs:
            run.child.kill()
        raise
    for run in runs:
        run.wait_killed()
    for run in runs:
        resumed = run_runner(run.runner, run.args + COMMON, run.out)  # the same flags, the killed run's folder
        _assert_same_metrics(resumed["metrics"], references[run.name]["metrics"])
        _assert_same_history(resumed["history"], references[run.name]["history"])  # the whole run's
        before = {p.name: p.read_bytes() for p in run.out.iterdir() if p.is_file()}
        again = run_runner(run.runner, run.args + COMMON, run.out)  # finished: nothing to do, nothing lost
        assert again["history"] == resumed["history"]
        assert {p.name: p.read_bytes() for p in run.out.iterdir() if p.is_file()} == before
        KILLS_SURVIVED.append(run.name)
        print(
            f"{run.name}: SIGKILL after checkpoint {run.killed_after} (target {run.kill_step}), resumed from "
            f"{run.restored_step}: metrics equal to the uninterrupted run's"
        )
    print(f"kills survived: {len(KILLS_SURVIVED)}")
    assert len(KILLS_SURVIVED) == len(RUNNERS)

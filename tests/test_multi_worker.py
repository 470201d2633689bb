"""Real multi-worker training: two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy, one TF_CONFIG
each, free ports picked here) give the same numbers as one process on the same global batches, only the chief
writes, a job whose worker 1 is SIGKILLed after a checkpoint stops on the chief in one line and resumes when both
are started again, and a worker that never starts is waited for, then given up on.

The single-process references run in the pytest process while the workers run (TensorFlow is loaded there
already; the two children keep the machine's cores busy meanwhile). Every wait is bounded.
"""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from runner_utils import ROOT, run_runner

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"

RUNNER = "data_denoising/mnist_small_scale/test_bilevel_importance_learning_mnist.py"
# 100 digits (--smoke), global batch 10: 10 upper iterations per epoch, 20 in all; each worker gets 5 of every 10
FLAGS = [
    "--dataset",
    "digits",
    "--smoke",
    "--batch-size",
    "10",
    "--inner-steps",
    "2",
    "--checkpoint-every",
    "2",
    "--seed",
    "3",
]
TOTAL = 20
KILL_STEP = 6  # SIGKILL worker 1 once the chief's checkpoint of this upper iteration is on disk
TIMEOUT = 240.0  # seconds for one start of the two workers (they take ~30 s each here)
COMPARED = ("upper_loss", "lower_loss", "penalty", "rho", "lam")


def _free_ports(count: int):
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    except OSError as e:
        pytest.skip(f"this platform cannot open local TCP ports on 127.0.0.1 ({e}); a multi-worker job needs them")
    finally:
        for s in sockets:
            s.close()


class Workers:
    """``command`` started as worker 0 (the chief) and worker 1 of a two-worker cluster on fresh local ports."""

    def __init__(self, command, folder, name: str):
        self.command, self.folder, self.name = command, folder, name
        ports = _free_ports(2)
        cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
        self.tmpdirs = [folder / f"{name}_tmp{i}" for i in range(2)]
        self.logs = [folder / f"{name}_worker{i}.log" for i in range(2)]
        self.children = []
        for i in range(2):
            self.tmpdirs[i].mkdir(parents=True)
            env = dict(
                os.environ,
                PYTHONPATH=str(ROOT),
                TF_CPP_MIN_LOG_LEVEL="3",
                MPLBACKEND="Agg",
                TMPDIR=str(self.tmpdirs[i]),
                CUDA_VISIBLE_DEVICES="",
                TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
            )
            with open(self.logs[i], "wb") as log:
                self.children.append(
                    subprocess.Popen(command, env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
                )

    def log_tail(self) -> str:
        return "\n".join(f"--- worker {i}:\n{p.read_text()[-1500:]}" for i, p in enumerate(self.logs))

    def kill(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)

    def wait(self, timeout: float = TIMEOUT):
        deadline = time.monotonic() + timeout
        try:
            for child in self.children:
                child.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.name}: the workers did not finish within {timeout:.0f} s\n{self.log_tail()}")
        return [child.returncode for child in self.children]


def _latest_step(folder) -> int:
    if not os.path.isdir(folder):
        return 0
    steps = [int(n[5:-6]) for n in os.listdir(folder) if n.startswith("ckpt-") and n.endswith(".index")]
    return max(steps, default=0)


def _kill_after_checkpoint(workers: Workers, folder, step: int, timeout: float = TIMEOUT):
    """Watcher thread body: SIGKILL worker 1 as soon as checkpoint ``step`` (or a later one) is on disk (the chief
    must then stop by itself); both, if that never happens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and all(c.poll() is None for c in workers.children):
        if _latest_step(folder) >= step:
            workers.children[1].send_signal(signal.SIGKILL)
            return
        time.sleep(0.005)
    workers.kill()


def _error_lines(text: str):
    return [line for line in text.splitlines() if line.startswith("error:")]


def _close(value, expected):
    return value == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_two_workers_equal_one_process_and_resume_after_sigkill(tmp_path):
    out = tmp_path / "job"
    command = (
        [sys.executable, str(ROOT / RUNNER)]
        + FLAGS
        + ["--strategy", "multi_worker", "--out", str(out), "--verbose", "0"]
    )
    folder = out / "checkpoints" / "bilevel"
    t0 = time.monotonic()
    first = Workers(command, tmp_path, "first")
    watcher = threading.Thread(target=_kill_after_checkpoint, args=(first, str(folder), KILL_STEP), daemon=True)
    watcher.start()
    try:
        reference = run_runner(RUNNER, FLAGS, tmp_path / "single")  # one process, the same global batches
    except BaseException:
        first.kill()
        raise
    watcher.join(TIMEOUT)
    codes = first.wait()
    assert codes == [1, -signal.SIGKILL], f"expected worker 1 killed after a checkpoint\n{first.log_tail()}"
    # the chief noticed the lost peer and stopped in one line (exit status 1), without a traceback
    chief_log = first.logs[0].read_text()
    errors = _error_lines(chief_log)
    assert len(errors) == 1 and "a worker of the cluster stopped answering" in errors[0], first.log_tail()
    assert "start every worker again with the same command" in errors[0] and "Traceback" not in chief_log
    assert not (out / "results.json").exists()
    import tensorflow as tf

    restored = int(tf.train.latest_checkpoint(str(folder)).rsplit("-", 1)[1])
    assert 2 <= restored < TOTAL  # the state file may still name the checkpoint before the newest index

    # before the kill: the chief's logged trajectory is the single process's
    by_step = {r["step"]: r for r in reference["history"] if "upper_loss" in r}
    with open(out / "history.csv") as f:
        rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
    assert len(rows) >= 2 and all(int(r["step"]) <= TOTAL for r in rows)
    for row in rows:
        expected = by_step[int(row["step"])]
        for key in COMPARED:
            assert _close(row[key], expected[key]), (int(row["step"]), key, row[key], expected[key])

    # both started again with the same command: the job continues from the chief's checkpoint
    second = Workers(command, tmp_path, "second")
    assert second.wait() == [0, 0], second.log_tail()
    seconds = time.monotonic() - t0
    resumed = json.loads((out / "results.json").read_text())
    steps = [r["step"] for r in resumed["history"] if "upper_loss" in r]
    # the whole run's history (what the checkpoint restored, then the rest), each step once
    assert steps == sorted(set(steps)) and min(steps) <= restored < max(steps) == TOTAL
    for record in resumed["history"]:
        if "upper_loss" in record:
            for key in COMPARED:
                assert _close(record[key], by_step[record["step"]][key]), (record["step"], key)
    for key, expected in reference["metrics"].items():
        value = resumed["metrics"][key]
        assert _close(value, expected) if isinstance(expected, float) else value == expected, key
    # only the chief writes: worker 1 printed its notice and deleted its temporary checkpoint folder
    assert "the chief writes the results" in second.logs[1].read_text()
    assert not [n for n in os.listdir(second.tmpdirs[1]) if n.startswith("bilevel_tf_worker")]
    print(f"two-worker job: killed after checkpoint {restored}, resumed, equal to one process; {seconds:.0f} s")


def test_library_api_two_workers_equal_one_process(tmp_path):
    import multi_worker_job as job

    command = [sys.executable, str(ROOT / "tests" / "multi_worker_job.py"), str(tmp_path / "job")]
    (tmp_path / "job").mkdir()
    cluster = Workers(command, tmp_path, "api")
    try:
        reference = job.fit(None, None)
    except BaseException:
        cluster.kill()
        raise
    assert cluster.wait() == [0, 0], cluster.log_tail()
    result = json.loads((tmp_path / "job" / "final.json").read_text())
    assert result["chief"] and result["iterations"] == job.STEPS
    assert np.any(np.asarray(reference["importance"]) != 0)  # the upper variable moved
    np.testing.assert_allclose(result["importance"], reference["importance"], rtol=1e-4, atol=1e-6)
    for a, b in zip(result["weights"], reference["weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for key in ("upper_loss", "lower_loss"):
        assert _close(result["logs"][key], reference["logs"][key])
    # the chief wrote the real checkpoints; worker 1's temporary folder is gone
    assert _latest_step(tmp_path / "job" / "checkpoints") == job.STEPS
    assert not [n for n in os.listdir(cluster.tmpdirs[1]) if n.startswith("bilevel_tf_worker")]


def test_a_worker_that_never_starts_is_waited_for_and_given_up_on(tmp_path):
    ports = _free_ports(2)
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        TF_CPP_MIN_LOG_LEVEL="3",
        CUDA_VISIBLE_DEVICES="",
        BILEVEL_TF_WORKER_TIMEOUT="3",
        TF_CONFIG=json.dumps(
            {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": 0}}
        ),
    )
    command = (
        [sys.executable, str(ROOT / RUNNER)] + FLAGS + ["--strategy", "multi_worker", "--out", str(tmp_path / "job")]
    )
    t0 = time.monotonic()
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 2, result.stdout[-1500:] + result.stderr[-1500:]
    assert (
        f"waiting for the 2 workers of TF_CONFIG (127.0.0.1:{ports[0]}, 127.0.0.1:{ports[1]}) to join; "
        "gives up after 3 s (BILEVEL_TF_WORKER_TIMEOUT)" in result.stdout
    )
    errors = _error_lines(result.stderr)
    assert len(errors) == 1 and "not every worker of TF_CONFIG" in errors[0] and "within 3 s" in errors[0]
    assert not (tmp_path / "job" / "results.json").exists()
    print(f"gave up after {time.monotonic() - t0:.0f} s (TensorFlow start-up included)")

"""Ctrl-C during python -m bilevel_tf.paper.reproduce: SIGINT to reproduce's process group (what a terminal sends)
at two points, or to reproduce alone, then the same command again, ends with the same tables as an uninterrupted
run; the interrupted runner saved its checkpoint at the step it had reached and released its folder.

Two Table 2 rows (Penalty with the baselines, ApproxGrad) on the digits with a small budget (20 upper
iterations, checkpoints only every 100, so the only checkpoint of an interrupted bilevel phase is the one saved
on the interrupt) and --deterministic, so that reruns match to the bit.
"""

import csv
import glob
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner_utils import ROOT

pytestmark = pytest.mark.slow  # several runner processes

COMMAND = [
    "table2",
    "--profile",
    "cpu",
    "--seeds",
    "1",
    "--rows",
    "digits_noise25_*",
    "--",
    "--epochs",
    "4",
    "--pretrain-epochs",
    "2",
    "--eval-epochs",
    "2",
    "--deterministic",
]
PENALTY, APPROXGRAD = ("table2/digits_noise25_penalty/seed0", "table2/digits_noise25_approxgrad/seed0")
STEPS = 20  # 4 epochs of 5 batches of 200 digits


def _start(out: Path) -> subprocess.Popen:
    """reproduce as a terminal starts it: the leader of its own process group, which Ctrl-C signals, with
    SIGINT's default action (a test run in the background of a shell would pass on its ignored SIGINT)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg")
    return subprocess.Popen(
        [sys.executable, "-m", "bilevel_tf.paper.reproduce", *COMMAND[:7], "--out", str(out), *COMMAND[7:]],
        env=env,
        cwd=out.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _finish(process: subprocess.Popen) -> str:
    return process.communicate(timeout=600)[0]


def _interrupt_when(process: subprocess.Popen, ready, group: bool = True, timeout: float = 600.0) -> None:
    """SIGINT to reproduce's process group (Ctrl-C) or to reproduce alone (kill -INT) once ``ready()``."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None and time.monotonic() < deadline, "finished before the interrupt point"
        time.sleep(0.01)
    if group:
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGINT)


def _log(out: Path, run: str) -> str:
    path = out / run / "log.txt"
    return path.read_text() if path.exists() else ""


def _tables(out: Path):
    """tables.md and tables.csv without the paths that name the output folder."""
    text = (out / "tables.md").read_text().replace(str(out), "OUT")
    with open(out / "tables.csv") as f:
        rows = [{k: v for k, v in r.items() if k != "runs"} for r in csv.DictReader(f)]
    return text, rows


def _no_lock(out: Path) -> None:
    assert not glob.glob(str(out / "table2" / "**" / ".lock"), recursive=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "rep"
    process = _start(out)
    output = _finish(process)
    assert process.returncode == 0, output[-3000:]
    return out


@pytest.mark.parametrize("group", [True, False], ids=["ctrl-c", "kill-reproduce"])
def test_an_interrupt_in_the_bilevel_phase_saves_the_step_reached(reference, tmp_path, group):
    out = tmp_path / "rep"
    process = _start(out)
    _interrupt_when(process, lambda: "step 5/20" in _log(out, PENALTY), group)
    output = _finish(process)
    assert process.returncode == 130 and "interrupted: rerun the same command to continue" in output, output[-3000:]
    _no_lock(out)
    saved = [
        int(p.split("ckpt-")[1].split(".")[0])
        for p in glob.glob(str(out / PENALTY / "checkpoints" / "bilevel" / "ckpt-*.index"))
    ]
    assert saved and 5 <= max(saved) < STEPS, saved  # saved on the interrupt (no other checkpoint before 100)
    assert "interrupted" in _log(out, PENALTY)  # the runner ended its own way (it was not killed)
    assert not (out / PENALTY / "results.json").exists() and not (out / APPROXGRAD).exists()
    process = _start(out)
    output = _finish(process)
    assert process.returncode == 0, output[-3000:]
    resumed = _log(out, PENALTY).split("\n$ ")[-1]  # the rerun's part of the log
    first = next(line for line in resumed.splitlines() if line.startswith("step "))
    assert int(first.split()[1].split("/")[0]) > max(saved), first  # continued, not restarted
    assert _tables(out) == _tables(reference)


def test_ctrl_c_while_a_runner_starts_then_rerun(reference, tmp_path):
    out = tmp_path / "rep"
    shutil.copytree(reference / PENALTY, out / PENALTY)  # a copy of a finished row is that row, done
    process = _start(out)
    _interrupt_when(process, lambda: (out / APPROXGRAD / "log.txt").exists())
    output = _finish(process)
    assert process.returncode == 130 and "interrupted" in output, output[-3000:]
    assert ": done (" in output  # the copied row was not rerun
    _no_lock(out)
    process = _start(out)
    output = _finish(process)
    assert process.returncode == 0, output[-3000:]
    assert _tables(out) == _tables(reference)

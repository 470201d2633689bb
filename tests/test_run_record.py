"""run.json is the one record of a run folder: configuration, budget, outputs and the command line that ran it,
which ``python -m bilevel_tf.paper.reproduce`` reads (it writes no file of its own). TensorFlow-free: the run
folder is opened without starting TensorFlow."""

import argparse
import json
import os
import sys

import pytest

from bilevel_tf.paper import plans, reproduce
from bilevel_tf.runner import run_folder
from bilevel_tf.training.folders import RECORD


def test_command_line_names_the_script_in_the_checkout_and_leaves_out_the_folder(tmp_path):
    script = os.path.join(run_folder.REPO_ROOT, "few_shot", "omniglot", "runner.py")
    flags = ["--method", "rmd", "--out", "a", "--seed", "1", "--out=b", "--outer-itr", "3"]
    assert run_folder.command_line(script, flags) == [
        os.path.join("few_shot", "omniglot", "runner.py"),
        *["--method", "rmd", "--seed", "1", "--outer-itr", "3"],
    ]
    elsewhere = str(tmp_path / "mine.py")  # a script outside the checkout keeps its absolute path
    assert run_folder.command_line(elsewhere, ["--out", "x"]) == [elsewhere]


def _args(out, **flags):
    return argparse.Namespace(experiment="demo", method="penalty", seed=0, out=str(out), fresh=False, **flags)


def _open(monkeypatch, argv, args):
    """Open the run folder as a runner started with ``argv`` (python's sys.argv) would, without TensorFlow."""
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(run_folder, "start_tensorflow", lambda args: None)
    with run_folder.Run(args) as run:
        return run


def test_a_reproduce_run_folder_holds_one_record_with_its_command(tmp_path, monkeypatch):
    row = plans.plan("small_scale", "cpu")[0]
    folder = reproduce.run_dir(str(tmp_path), "small_scale", row, 0)
    argv = reproduce.command(row, 0, folder)  # [python, script, flags..., --seed 0, --out folder]
    assert reproduce.status(folder, argv) == "new"
    _open(monkeypatch, argv[1:], _args(folder, epochs=2))  # the runner subprocess' sys.argv
    record = json.load(open(os.path.join(folder, RECORD)))
    assert set(record) == {"config", "budget", "outputs", "command"}
    assert record["command"] == [row.runner, *row.args, "--seed", "0"] and record["budget"] == {"epochs": 2}
    assert os.listdir(folder) == [RECORD]  # no reproduce.json beside it
    assert reproduce.status(folder, argv) == "resume"
    assert reproduce.status(folder, reproduce.command(row, 0, folder, ["--smoke"])) == "other"
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump({"config": {**record["config"], "epochs": 2}, "metrics": {"test_accuracy": 0.9}}, f)
    assert reproduce.status(folder, argv) == "done"
    # reused by another command line (flags in another order): the command that ran it stays
    run = _open(monkeypatch, [argv[1], "--out", folder, "--seed", "0", *row.args], _args(folder, epochs=2))
    assert run.complete and json.load(open(os.path.join(folder, RECORD)))["command"] == record["command"]
    assert reproduce.status(folder, argv) == "done"
    # continued further by hand: that command ran it now, and reproduce's is another
    _open(monkeypatch, [argv[1], "--epochs", "3", "--out", folder], _args(folder, epochs=3))
    assert json.load(open(os.path.join(folder, RECORD)))["command"] == [row.runner, "--epochs", "3"]
    with pytest.raises(reproduce.ReproduceError, match=f"another command .*{RECORD}"):
        reproduce.run_rows("small_scale", [row], 1, str(tmp_path), [], log=lambda *a, **k: None)


def test_records_without_a_command_leave_the_decision_to_the_runner(tmp_path):
    row = plans.plan("small_scale", "cpu")[0]
    folder = reproduce.run_dir(str(tmp_path), "small_scale", row, 0)
    argv = reproduce.command(row, 0, folder)
    os.makedirs(folder)
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump({"config": {}, "metrics": {}}, f)
    assert reproduce.status(folder, argv) == "other"  # results no record accounts for: never overwritten
    with open(os.path.join(folder, RECORD), "w") as f:  # a record of an earlier version: the runner compares
        json.dump({"config": {}, "budget": {}, "outputs": []}, f)  # its configuration (resume, reuse or refuse)
    assert reproduce.status(folder, argv) == "resume"
    with open(os.path.join(folder, RECORD), "w") as f:
        f.write("{garbage")
    assert reproduce.status(folder, argv) == "other"

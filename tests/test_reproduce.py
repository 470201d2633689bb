"""python -m bilevel_tf.paper.reproduce: the plans (--dry-run) of every table and profile, one tiny real run of
Table 2 end to end (runners as subprocesses, then the aggregator), resuming, and a runner's failure."""

import glob
import json
import os
import re
import shutil

import pytest

from bilevel_tf.paper import reproduce, plans, pooling
from bilevel_tf.runner.run_folder import command_line
from bilevel_tf.training.folders import RECORD
from bilevel_tf.published.numbers import TABLES

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"


def dry_run(capsys, *argv):
    argv = list(argv)
    at = argv.index("--") if "--" in argv else len(argv)  # flags after "--" belong to the runners
    assert reproduce.main(argv[:at] + ["--dry-run"] + argv[at:]) == 0
    lines = capsys.readouterr().out.splitlines()
    return lines, [line.split() for line in lines if line.startswith("python ")]


@pytest.mark.parametrize("profile", plans.PROFILES)
@pytest.mark.parametrize("table", plans.TABLE_NAMES)
def test_dry_run_prints_one_command_per_row_and_seed(tmp_path, capsys, table, profile):
    out = str(tmp_path / "runs")
    lines, commands = dry_run(capsys, table, "--profile", profile, "--seeds", "2", "--out", out)
    rows = plans.plan(table, profile)
    assert len(commands) == 2 * len(rows) and lines[1].startswith("estimated time")
    assert len({r.name for r in rows}) == len(rows)
    for row, (first, second) in zip(rows, zip(commands[::2], commands[1::2])):
        assert os.path.isfile(os.path.join(reproduce.REPO_ROOT, first[1]))  # the runner exists
        for seed, cmd in enumerate((first, second)):
            assert cmd[-4:] == ["--seed", str(seed), "--out", os.path.join(out, table, row.name, f"seed{seed}")]
    assert not os.path.exists(out)  # nothing run, nothing written
    flags = [" ".join(c) for c in commands]
    if table in ("table2", "small_scale"):
        assert all(("--dataset digits" in f) == (profile == "cpu") for f in flags)
        assert all(("--baselines" in f) == ("--method penalty" in f) for f in flags)  # once per seed
    if table == "table3" and profile == "paper":
        settings = {(c[c.index("--n-way") + 1], c[c.index("--k-shot") + 1], "miniimagenet" in c[1]) for c in commands}
        assert len(settings) == len(TABLES["table3"].rows)  # every row of the paper's Table 3
    if table == "supp5":
        points = sorted({int(c[c.index("--num-poison") + 1]) for c in commands})
        assert points == ([6, 12, 18] if profile == "cpu" else [10, 20, 30, 40, 50, 60])
    if table == "supp4":
        assert "--iterations 10000" in flags[0] and "--methods gd rmd approxgrad penalty" in flags[0]


def test_paper_profile_prints_its_run_time_first(capsys):
    lines, _ = dry_run(capsys, "table2", "--profile", "paper", "--seeds", "5")
    hours = [r.seconds for r in plans.plan("table2", "paper")]
    assert all(h is not None and h > 86400 for h in hours)  # CNNs at the paper's size: days per run on a CPU
    days = float(re.search(r"([\d.]+) days for 5 seed", lines[1]).group(1))
    assert days == pytest.approx(5 * sum(hours) / 86400, rel=0.01)
    assert "GPU" in lines[1]


def test_flags_for_the_runners_methods_and_rows(tmp_path, capsys):
    _, commands = dry_run(
        capsys,
        "supp5",
        "--methods",
        "rmd",
        "--rows",
        "targeted_6*",
        "--seeds",
        "1",
        "--tensorboard",
        "--out",
        str(tmp_path),
        "--",
        "--epochs",
        "7",
    )
    assert [c[1] for c in commands] == [plans.POISONING["targeted"]]
    text = " ".join(commands[0])
    assert "--method rmd" in text and "--tensorboard --epochs 7 --seed 0" in text
    for bad in (["table2", "--methods", "vpbgd"], ["table3", "--rows", "digits"], ["table2", "--seeds", "0"]):
        with pytest.raises(SystemExit):
            reproduce.main(bad + ["--dry-run"])


def write_record(folder, argv, **extra):
    """The run.json a runner started with ``argv`` (python, script, flags) writes."""
    with open(os.path.join(folder, RECORD), "w") as f:
        json.dump({"config": {}, "budget": {}, "outputs": [], "command": command_line(argv[1], argv[2:]), **extra}, f)


def test_a_folder_of_another_command_is_refused(tmp_path):
    row = plans.plan("small_scale", "cpu")[0]
    folder = reproduce.run_dir(str(tmp_path), "small_scale", row, 0)
    argv = reproduce.command(row, 0, folder)
    assert reproduce.status(folder, argv) == "new"
    os.makedirs(folder)
    write_record(folder, argv)
    assert reproduce.status(folder, argv) == "resume"
    assert reproduce.status(folder, reproduce.command(row, 0, folder, ["--smoke"])) == "other"
    for garbage in ("{}", "{not json", '{"metrics": null, "config": {}}'):  # a damaged run is redone, not done
        with open(os.path.join(folder, "results.json"), "w") as f:
            f.write(garbage)
        assert reproduce.status(folder, argv) == "resume", garbage
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump({"metrics": {"test_accuracy": 0.9}, "config": {"seed": 0}}, f)
    assert reproduce.status(folder, argv) == "done"
    with pytest.raises(reproduce.ReproduceError, match="another command"):
        reproduce.run_rows("small_scale", [row], 1, str(tmp_path), ["--smoke"], log=lambda *a, **k: None)


def test_the_same_folder_by_another_name_or_a_copy_is_the_same_run(tmp_path, monkeypatch):
    row = plans.plan("table2", "cpu")[0]
    monkeypatch.chdir(tmp_path)
    folder = reproduce.run_dir("rep", "table2", row, 0)
    os.makedirs(folder)
    write_record(folder, reproduce.command(row, 0, folder))
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump({"metrics": {"test_accuracy": 0.9}, "config": {"seed": 0}}, f)
    shutil.copytree("rep", "copy")
    for out in ("rep", "./rep", str(tmp_path / "rep"), "copy", str(tmp_path / "copy")):
        same = reproduce.run_dir(out, "table2", row, 0)
        assert reproduce.status(same, reproduce.command(row, 0, same)) == "done", out
    with open(os.path.join(folder, RECORD), "w") as f:
        f.write("{garbage")
    assert reproduce.status(folder, reproduce.command(row, 0, folder)) == "other"


def test_estimate_subtracts_finished_runs():
    rows = [plans.Row("a", "x.py", (), 600.0), plans.Row("b", "x.py", (), 60.0), plans.Row("c", "x.py", ())]
    fresh = reproduce.estimate(rows, 2)
    assert "22 min for 2 seed(s); not measured: c" in fresh and "left" not in fresh
    resumed = reproduce.estimate(rows, 2, {("a", 1), ("b", 0), ("c", 0)})
    assert "22 min for 2 seed(s) (3 of 6 run(s) done, 11 min left); not measured: c" in resumed


def test_tiny_table2_end_to_end_then_resume(tmp_path, capsys):
    """Two seeds of the digits Penalty row at --smoke sizes through the real runner, then the table."""
    out = str(tmp_path / "t2")
    argv = [
        "table2",
        "--profile",
        "cpu",
        "--smoke",
        "--seeds",
        "2",
        "--methods",
        "penalty",
        "--rows",
        "*noise25*",
        "--tensorboard",
        "--out",
        out,
    ]
    assert reproduce.main(argv) == 0
    printed = capsys.readouterr().out
    row = next(line for line in printed.splitlines() if line.startswith("| digits (25) [mnist_large_scale] | ours"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[-1].endswith("(2)") and cells[2].endswith("(2)")  # Penalty and Oracle over both seeds
    assert os.path.exists(os.path.join(out, "tables.md")) and os.path.exists(os.path.join(out, "table2.png"))
    runs = sorted(glob.glob(os.path.join(out, "table2", "digits_noise25_penalty", "seed*", "results.json")))
    assert len(runs) == 2
    result = json.load(open(runs[1]))
    assert result["config"]["seed"] == 1 and result["paper"] is None and result["config"]["smoke"]
    assert result["paper_reason"] == "digits is not the paper's data set for this runner (MNIST)"  # said first
    assert glob.glob(os.path.join(os.path.dirname(runs[1]), "tensorboard", "events.out.tfevents.*"))
    # the runner's run.json is the folder's one record, with the command reproduce compares (no file of its own)
    record = json.load(open(os.path.join(os.path.dirname(runs[1]), RECORD)))
    assert record["command"][0] == plans.DENOISING["mnist"] and record["command"][-2:] == ["--seed", "1"]
    assert not glob.glob(os.path.join(out, "**", "reproduce.json"), recursive=True)
    # bl.fit's checkpoints compare the same configuration on resume: a copy of run.json's, never another one
    import tensorflow as tf
    from bilevel_tf.training import checkpoints

    folders = glob.glob(os.path.join(os.path.dirname(runs[1]), "checkpoints", "*", "checkpoint"))
    assert folders
    for state in folders:
        saved = checkpoints._saved_config(tf.train.latest_checkpoint(os.path.dirname(state)))
        assert saved["run"] == record["config"], os.path.dirname(state)
    # the same command again: both runs are done, nothing is rerun
    assert reproduce.main(argv) == 0
    again = capsys.readouterr().out
    assert again.count(": done (") == 2 and "running" not in again
    assert "(2 of 2 run(s) done, 0 s left)" in again
    assert pooling.aggregate(out)[2] == 2


def test_missing_paper_data_fails_with_the_runners_message(tmp_path, capsys):
    empty = tmp_path / "no_data"
    empty.mkdir()
    code = reproduce.main(
        [
            "table2",
            "--profile",
            "paper",
            "--rows",
            "svhn_noise50_penalty",
            "--seeds",
            "1",
            "--out",
            str(tmp_path / "runs"),
            "--",
            "--data-dir",
            str(empty),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "SVHN_single_grey_without_extra.h5" in err and "status 2" in err and "Traceback" not in err
    assert "rerun the same command to continue" in err

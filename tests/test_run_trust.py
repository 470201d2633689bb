"""A runner's output folder through reruns, --fresh, a folder in use, changed flags and unwritable outputs.

The checkpoint-level cases (damaged checkpoints, garbled state, the lock itself) are in test_fit_trust.py;
a SIGKILL at every point is in test_kill_resume.py.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from runner_utils import load_runner

from bilevel_tf.runner import experiment, results_file, run_folder

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"

LARGE = "data_denoising/mnist_large_scale/test_bilevel_importance_learning_mnist.py"
UNTARGETED = "data_poisoning/untargeted/test_bilevel_poisoning_untargeted.py"
OMNIGLOT = "few_shot/omniglot/test_bilevel_few_shot_learning_omniglot.py"
DIGITS = ["--smoke", "--dataset", "digits"]


def _run(runner, args, out, capsys=None):
    """run_main as the script runs it; returns (exit status, stderr lines, stdout)."""
    argv = list(args) + ["--out", str(out), "--verbose", "0"]
    try:
        experiment.run_main(load_runner(runner).main, argv)
        status = 0
    except SystemExit as e:
        status = e.code
    captured = capsys.readouterr()
    return status, captured.err.strip().splitlines(), captured.out


def _files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _csv_steps(path: Path) -> list:
    return [int(line.split(",")[0]) for line in path.read_text().splitlines()[1:]]


def test_rerun_keeps_a_finished_run_and_fresh_replaces_all_of_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(LARGE, DIGITS, out, capsys)[0] == 0
    first = _files(out)
    result = json.loads(first["results.json"])
    assert result["history"] and result["seconds_per_upper_iteration"] > 0
    assert oct(os.stat(out / "results.json").st_mode & 0o777) == oct(0o666 & ~_umask())
    # the README's command again: nothing is redone and every output stays byte for byte
    status, _, printed = _run(LARGE, DIGITS, out, capsys)
    assert status == 0 and "already holds the finished run of this configuration" in printed
    assert _files(out) == first
    # --fresh: a new run from step 0 whose history.csv holds its own rows only
    assert _run(LARGE, DIGITS + ["--fresh", "--seed", "1"], out, capsys)[0] == 0
    steps = _csv_steps(out / "history.csv")
    assert steps == sorted(set(steps)) and steps[0] >= 1
    assert steps == _csv_steps_from(first["history.csv"])  # same number of steps, not appended
    assert json.loads((out / "results.json").read_text())["config"]["seed"] == 1


def _csv_steps_from(blob: bytes) -> list:
    return [int(line.split(",")[0]) for line in blob.decode().splitlines()[1:]]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_folder_in_use_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    other = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from bilevel_tf.training.folders import FolderLock\n"
            "FolderLock(sys.argv[1]).acquire()\nprint(flush=True)\ntime.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        other.stdout.readline()  # it holds the lock
        status, err, _ = _run(LARGE, DIGITS, out, capsys)
        assert status == 2 and len(err) == 1
        assert (
            err[0] == f"error: {out} is in use by process {other.pid} on {socket.gethostname()}; wait for it "
            "to finish or choose another output folder (--debug shows the traceback)"
        )
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written by the refused run
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize(
    "runner, changed",
    [
        (LARGE, ["--lr-u", "0.1"]),
        (LARGE, ["--precision", "mixed_bfloat16"]),
        (UNTARGETED, ["--inner-steps", "1"]),
        (OMNIGLOT, ["--inner-steps", "3"]),
    ],
    ids=["lr", "precision", "poisoning-inner-steps", "few-shot-inner-steps"],
)
def test_resume_under_other_flags_is_refused_naming_them(runner, changed, tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(runner, DIGITS, out, capsys)[0] == 0
    before = _files(out)
    status, err, _ = _run(runner, DIGITS + changed, out, capsys)
    assert status == 2 and len(err) == 1, err
    flag = changed[0].lstrip("-").replace("-", "_")
    assert err[0].startswith(f"error: {out} holds a run of another configuration") and flag in err[0]
    assert "--fresh" in err[0]
    assert _files(out) == before


def test_without_run_json_the_checkpoint_still_refuses_another_configuration(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(LARGE, DIGITS, out, capsys)[0] == 0
    (out / "run.json").unlink()
    results = (out / "results.json").read_bytes()
    status, err, _ = _run(LARGE, DIGITS + ["--lr-u", "0.1"], out, capsys)
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {out / 'checkpoints' / 'bilevel'} holds a checkpoint of another"), err
    assert "lr_u: None -> 0.1" in err[0] and "learning_rate: 0.30000001192092896 -> 0.1" in err[0], err
    assert (out / "results.json").read_bytes() == results  # the finished run's results are not touched


@pytest.mark.parametrize("flag, value", [("--lr-u", "nan"), ("--lr-v", "-1"), ("--lr-v", "inf")])
def test_learning_rates_must_be_finite_and_positive(flag, value, tmp_path, capsys):
    status, err, _ = _run(LARGE, DIGITS + [flag, value], tmp_path / "run", capsys)
    assert status == 2 and err[-1].endswith(f"must be a finite number > 0, got '{value}'"), err
    assert not (tmp_path / "run").exists()


def test_a_diverging_learning_rate_stops_with_one_line_and_status_1(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="learning rate 1e\\+30, far above the usual range"):
        status, err, _ = _run(LARGE, DIGITS + ["--lr-v", "1e30", "--lr-u", "1e30"], out, capsys)
    assert status == 1 and len(err) == 1 and err[0].startswith("error: step ") and "stopped" in err[0], err
    assert " = nan" in err[0] or " = inf" in err[0]
    assert not (out / "results.json").exists()


def test_out_that_is_a_file_or_unwritable_gives_one_line(tmp_path, capsys):
    a_file = tmp_path / "out.txt"
    a_file.write_text("not a folder")
    status, err, _ = _run(LARGE, DIGITS, a_file, capsys)
    assert status == 2 and len(err) == 1 and str(a_file) in err[0], err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "ro"
        locked.mkdir(mode=0o500)
        status, err, _ = _run(LARGE, DIGITS, locked / "run", capsys)
        assert status == 2 and len(err) == 1 and "Permission denied" in err[0], err


def test_a_full_disk_gives_one_line_and_keeps_the_previous_results(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert _run(LARGE, DIGITS, out, capsys)[0] == 0
    before = (out / "results.json").read_bytes()

    def no_space(path, text):
        raise OSError(28, "No space left on device", path)

    monkeypatch.setattr(results_file, "atomic_write_text", no_space)  # results.json
    monkeypatch.setattr(run_folder, "atomic_write_text", no_space)  # run.json
    status, err, _ = _run(LARGE, DIGITS + ["--epochs", "3"], out, capsys)  # continue the run further
    assert status == 2 and err == [f"error: {out / 'run.json'}: No space left on device"], err
    assert (out / "results.json").read_bytes() == before


def test_fresh_deletes_only_what_the_run_wrote(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    mine = {"mnist.npz": b"the input data (--data-dir == --out)", "photo.png": b"a user's picture"}
    for name, data in mine.items():
        (out / name).write_bytes(data)
    assert _run(LARGE, DIGITS, out, capsys)[0] == 0
    later = {"my_data.npz": b"added after the run", "notes.jsonl": b"{}", "extra.weights.h5": b"w"}
    for name, data in later.items():
        (out / name).write_bytes(data)
    (out / "importance_histogram.png").unlink()  # an output the next run writes again
    assert _run(LARGE, DIGITS + ["--fresh", "--seed", "1"], out, capsys)[0] == 0
    for name, data in {**mine, **later}.items():
        assert (out / name).read_bytes() == data, name
    written = {"history.csv", "importance_histogram.png", "accuracy_vs_time.png"}
    record = json.loads((out / "run.json").read_text())["outputs"]  # what the next --fresh deletes
    assert written <= set(record) and not (set(mine) | set(later)) & set(record)
    assert written <= {p.name for p in out.iterdir()}
    assert json.loads((out / "results.json").read_text())["config"]["seed"] == 1


def test_a_smaller_budget_than_the_finished_run_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(LARGE, DIGITS + ["--epochs", "2"], out, capsys)[0] == 0
    before = _files(out)
    status, err, _ = _run(LARGE, DIGITS + ["--epochs", "1"], out, capsys)
    assert status == 2 and len(err) == 1, err
    assert (
        err[0].startswith(
            f"error: {out} holds the finished run of this configuration with a larger budget (epochs: 2 -> 1)"
        )
        and "--fresh" in err[0]
    ), err
    assert _files(out) == before  # nothing relabelled


def test_a_resume_with_a_budget_below_the_checkpoint_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(LARGE, DIGITS + ["--epochs", "2", "--checkpoint-every", "1"], out, capsys)[0] == 0
    (out / "results.json").unlink()  # as if killed after the last checkpoint (step 8 of 8)
    status, err, _ = _run(LARGE, DIGITS + ["--epochs", "1"], out, capsys)
    assert status == 2 and len(err) == 1, err
    assert "already at upper iteration 8, past the 4 asked for" in err[0], err
    assert not (out / "results.json").exists()


def test_results_of_another_configuration_are_not_taken_for_the_finished_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(LARGE, DIGITS, out, capsys)[0] == 0
    result = json.loads((out / "results.json").read_text())
    edited = dict(result, config=dict(result["config"], noise=0.5), metrics=dict(result["metrics"], test_accuracy=1.0))
    (out / "results.json").write_text(json.dumps(edited))
    status, _, printed = _run(LARGE, DIGITS, out, capsys)
    assert status == 0 and "already holds the finished run" not in printed
    assert "does not hold this configuration's results (noise: 0.5 -> 0.25)" in printed
    again = json.loads((out / "results.json").read_text())
    assert again["config"]["noise"] == 0.25
    same = {k: v for k, v in result["metrics"].items() if k != "step_traces"}  # the resumed run traced nothing
    assert {k: again["metrics"][k] for k in same} == same  # finished again from its last checkpoint: the same


@pytest.mark.parametrize("damage", ["deleted", "garbage"])
def test_a_lost_warm_start_record_is_recomputed(tmp_path, capsys, damage):
    out = tmp_path / "run"
    assert _run(LARGE, DIGITS, out, capsys)[0] == 0
    first = json.loads((out / "results.json").read_text())["metrics"]
    warm = out / "checkpoints" / "bilevel" / "warm_start.json"
    if damage == "deleted":
        warm.unlink()
    else:
        warm.write_text("garbage {{{")
    (out / "results.json").unlink()  # killed after the bilevel phase: the rerun resumes at its last checkpoint
    status, _, printed = _run(LARGE, DIGITS, out, capsys)
    assert status == 0 and f"{warm} is " in printed and "redoing the warm start" in printed
    again = json.loads((out / "results.json").read_text())["metrics"]
    for key in ("pretrain_test_accuracy", "warm_start_noise_precision", "test_accuracy"):
        assert again[key] == first[key], key
    assert json.loads(warm.read_text())["pretrain_test_accuracy"] == first["pretrain_test_accuracy"]

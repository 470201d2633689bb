"""The aggregator (python -m bilevel_tf.paper.tables) on folders of hand-written results.json files, and on runs the
real runners wrote."""

import csv
import json
import os
import stat
import warnings

import numpy as np
import pytest

from bilevel_tf.paper import pooling, tables
from bilevel_tf.published import cells
from bilevel_tf.solvers.penalty_schedules import DEFAULT_SCHEDULE
from bilevel_tf.published.numbers import TABLES
from runner_utils import run_runner

LARGE = "data_denoising/mnist_large_scale/test_bilevel_importance_learning_mnist.py"


def write_run(root, folder, experiment, method, dataset, metrics, **config):
    """A results.json as the runners write it (only the config keys the aggregator reads, plus plumbing that
    must not keep seeds apart)."""
    path = os.path.join(root, folder)
    os.makedirs(path, exist_ok=True)
    config = {
        "experiment": experiment,
        "method": method,
        "dataset": dataset,
        "out": path,
        "fresh": False,
        "checkpoint_every": 100,
        **config,
    }
    with open(os.path.join(path, "results.json"), "w") as f:
        json.dump(
            {
                "experiment": experiment,
                "method": method,
                "dataset": dataset,
                "config": config,
                "paper": None,
                "metrics": metrics,
                "history": [],
                "seconds_per_upper_iteration": 0.1,
            },
            f,
        )


def denoising(
    root,
    folder,
    method,
    seed,
    acc,
    baseline,
    dataset="mnist",
    noise=0.25,
    schedule="original",
    lr_u=3.0,
    eval_epochs=20,
    baselines=False,
    **metrics,
):
    hyper = {"lr_u": lr_u, "lr_v": 1e-4}
    if method == "penalty":
        hyper["schedule"] = schedule
    write_run(
        root,
        folder,
        "data_denoising/mnist_large_scale",
        method,
        dataset,
        {"test_accuracy": acc, "noisy_baseline_test_accuracy": baseline, **metrics},
        seed=seed,
        noise=noise,
        model="paper",
        smoke=False,
        synthetic_data=False,
        max_steps=None,
        schedule=schedule,
        epochs=100,
        eval_epochs=eval_epochs,
        hyperparams=hyper,
        baselines=baselines,
    )


def cells_of(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def table_named(results, name):
    return next(t for t in results if t.paper.name == name)


def cell(table, row, column):
    return table.cells.get((row, column))


@pytest.fixture
def table2_runs(tmp_path):
    root = str(tmp_path)
    pen = [0.981, 0.990, 0.986]
    for seed, acc in enumerate(pen):
        denoising(
            root,
            f"t2/mnist25/penalty/seed{seed}",
            "penalty",
            seed,
            acc,
            0.84 + 0.01 * seed,
            baselines=True,
            oracle_test_accuracy=0.99,
            val_only_test_accuracy=0.95,
        )
    for seed, acc in enumerate([0.97, 0.975]):  # the same seeds' baseline again: counted once per seed
        denoising(root, f"t2/mnist25/approxgrad/seed{seed}", "approxgrad", seed, acc, 0.84 + 0.01 * seed)
    denoising(root, "t2/mnist50/penalty/seed0", "penalty", 0, 0.97, 0.6, noise=0.5)
    for seed in (0, 1):
        denoising(
            root,
            f"t2/digits/penalty/seed{seed}",
            "penalty",
            seed,
            0.96 + 0.01 * seed,
            0.9,
            dataset="digits",
            schedule="auglag",
        )
    # a checkpoint folder's stray results.json and an unreadable file are not runs
    os.makedirs(os.path.join(root, "t2/mnist25/penalty/seed0/checkpoints"))
    with open(os.path.join(root, "t2/mnist25/penalty/seed0/checkpoints/results.json"), "w") as f:
        f.write("{}")
    os.makedirs(os.path.join(root, "t2/broken"))
    with open(os.path.join(root, "t2/broken/results.json"), "w") as f:
        f.write("{not json")
    return root, pen


def test_seeds_pooled_with_sample_sd_next_to_the_paper(table2_runs):
    root, pen = table2_runs
    results, notes, n_runs = pooling.aggregate(root)
    assert n_runs == 8  # the checkpoint copy is skipped, the broken file is reported
    assert any("broken" in n for n in notes)
    t2 = table_named(results, "table2")
    g = cell(t2, "MNIST (25)", "Penalty [schedule=original]")
    mean, sd, n = g.stats
    assert n == 3 and sorted(g.values) == [0, 1, 2]
    assert mean == pytest.approx(100 * np.mean(pen))
    assert sd == pytest.approx(100 * np.std(pen, ddof=1))
    assert t2.paper_value("MNIST (25)", "Penalty [schedule=original]").mean == 98.89
    # Train+Val comes from both methods' runs but once per seed
    baseline = cell(t2, "MNIST (25)", "Train+Val")
    assert baseline.stats[2] == 3
    assert baseline.stats[0] == pytest.approx(100 * np.mean([0.84, 0.85, 0.86]))
    assert cell(t2, "MNIST (25)", "ApproxGrad").stats[2] == 2  # same row although only Penalty ran --baselines


def test_markdown_layout_missing_cells_and_non_paper_rows(table2_runs):
    root, pen = table2_runs
    text = tables.report(root)
    lines = text.splitlines()
    header = cells_of(next(line for line in lines if line.startswith("| Dataset (noise %)")))
    assert header[2:6] == ["Oracle", "Val-Only", "Train+Val", "ApproxGrad"]
    ours = next(line for line in lines if line.startswith("| MNIST (25) | ours"))
    paper_line = lines[lines.index(ours) + 1]
    diff_line = lines[lines.index(ours) + 2]
    assert "98.89 ± 0.04" in paper_line and "99.3 ± 0.1" in paper_line
    pen_mean = 100 * np.mean(pen)
    assert f"{pen_mean:.2f} ± {100 * np.std(pen, ddof=1):.2f} (3)" in ours
    assert cells_of(diff_line)[header.index("Penalty [schedule=original]")] == f"{pen_mean - 98.89:+.2f}"
    # MNIST 50%: one seed, no ApproxGrad run -> "-" in that column; mean without s.d.
    mnist50 = cells_of(next(line for line in lines if line.startswith("| MNIST (50) | ours")))
    assert mnist50[header.index("ApproxGrad")] == "-"
    assert "97.00 (1)" in mnist50
    # digits: its own row, labelled with the data set, with the schedule, never a paper or diff line
    digits = next(line for line in lines if line.startswith("| digits (25) [mnist_large_scale] | ours"))
    following = lines[lines.index(digits) + 1]
    assert "| paper" not in following and "| diff" not in following
    assert "Penalty [schedule=auglag]" in header
    assert "digits is not the paper's data set" in text
    # files: markdown, CSV (one line per filled cell) and the figure
    assert open(os.path.join(root, "tables.md")).read() == text
    with open(os.path.join(root, "tables.csv")) as f:
        rows = list(csv.DictReader(f))
    digits_rows = [r for r in rows if r["row"].startswith("digits")]
    assert digits_rows and all(r["paper_mean"] == "" and r["diff"] == "" for r in digits_rows)
    pen_row = next(r for r in rows if r["row"] == "MNIST (25)" and r["column"].startswith("Penalty"))
    assert float(pen_row["paper_mean"]) == 98.89 and pen_row["n"] == "3"
    assert os.path.getsize(os.path.join(root, "table2.png")) > 1000


def test_different_settings_are_never_pooled(tmp_path):
    root = str(tmp_path)
    for seed in (0, 1):
        denoising(root, f"a/seed{seed}", "penalty", seed, 0.98, 0.8)
        denoising(root, f"b/seed{seed}", "penalty", seed, 0.90, 0.8, lr_u=1.0)  # solver: a column variant
        denoising(root, f"c/seed{seed}", "penalty", seed, 0.95, 0.7, eval_epochs=5)  # protocol: a row variant
    t2 = table_named(pooling.aggregate(root)[0], "table2")
    assert t2.rows == ["MNIST (25) [eval_epochs=20]", "MNIST (25) [eval_epochs=5]"]
    first = t2.rows[0]
    columns = {c for (r, c) in t2.cells if r == first and c.startswith("Penalty")}
    assert columns == {
        "Penalty [schedule=original, hyperparams.lr_u=1]",
        "Penalty [schedule=original, hyperparams.lr_u=3]",
    }
    assert all(t2.cells[(first, c)].stats[2] == 2 for c in columns)
    assert t2.cells[(t2.rows[1], "Train+Val")].stats[0] == pytest.approx(70.0)


def test_other_tables_and_runs_without_a_table(tmp_path):
    root = str(tmp_path)
    for seed in (0, 1):
        for method, acc in (("penalty", 0.8), ("approxgrad", 0.75)):
            write_run(
                root,
                f"s5/unt/{method}/{seed}",
                "data_poisoning/untargeted",
                method,
                "digits",
                {"poisoned_test_accuracy": acc, "label_flip_test_accuracy": 0.9},
                seed=seed,
                num_poison=18,
                train_points=300,
                smoke=False,
                epochs=5000,
            )
            write_run(
                root,
                f"s5/tgt/{method}/{seed}",
                "data_poisoning/targeted",
                method,
                "digits",
                {"attack_success_rate": 0.3, "label_flip_attack_success_rate": 0.1},
                seed=seed,
                num_poison=18,
                train_points=300,
                val_points=500,
                smoke=False,
            )
        write_run(
            root,
            f"t3/{seed}",
            "few_shot/omniglot",
            "penalty",
            "omniglot",
            {"test_accuracy": 0.98 + 0.001 * seed, "test_accuracy_ci95": 0.002},
            seed=seed,
            n_way=20,
            k_shot=5,
            smoke=False,
        )
        write_run(
            root,
            f"s4/{seed}",
            "synthetic",
            "gd+penalty",
            "synthetic",
            {"ex1": {"penalty": {"T1": {"seconds_per_upper_iteration": 2e-5 * (seed + 1)}}}},
            seed=seed,
            dim=10,
            examples=[1],
            ts=[1],
            methods=["gd", "penalty"],
            smoke=False,
            iterations=10000,
        )
    write_run(root, "hc", "data_denoising/hyper_cleaning", "vpbgd", "digits", {"test_accuracy": 0.9}, seed=0)
    results, notes, _ = pooling.aggregate(root)
    s5 = table_named(results, "supp5")
    assert s5.rows == ["digits 6% (18 of 300)"]  # untargeted and targeted halves share the row
    row = s5.rows[0]
    assert s5.cells[(row, "Untargeted: Penalty [schedule=original]")].stats[:2] == (pytest.approx(80.0), 0.0)
    assert s5.cells[(row, "Untargeted: Label flip")].stats[2] == 2
    assert s5.cells[(row, "Targeted: ApproxGrad")].stats[0] == pytest.approx(30.0)
    assert s5.paper_value(row, "Untargeted: Label flip") is None
    t3 = table_named(results, "table3")
    g = t3.cells[("Omniglot 20-way 5-shot", "Penalty [schedule=original]")]
    assert g.stats[0] == pytest.approx(98.05) and t3.paper_value("Omniglot 20-way 5-shot", "MAML").mean == 98.9
    s4 = table_named(results, "supp4")
    timing = s4.cells[("Ex.1, T=1", "Penalty [schedule=original]")]
    assert timing.stats[0] == pytest.approx(0.3)  # seconds per 10,000 iterations
    assert ("Ex.1, T=1", "GD") not in s4.cells  # no value recorded: a missing cell, not a zero
    assert any("hyper-cleaning setup is not in the paper" in n for n in notes)
    assert "table2" not in {t.paper.name for t in results}


def test_legend_of_a_paper_table_without_spreads(tmp_path):
    root = str(tmp_path)
    write_run(
        root,
        "ss/0",
        "data_denoising/mnist_small_scale",
        "penalty",
        "digits",
        {"test_accuracy": 0.93, "noisy_baseline_test_accuracy": 0.86},
        seed=0,
        noise=0.5,
        model="paper",
        smoke=False,
        synthetic_data=False,
    )
    text = tables.report(root, files=False)
    assert "paper: single numbers (no ± printed);" in text and "mean ± single" not in text
    assert "paper: mean ± s.d. over 5 runs;" in tables.markdown(
        pooling.TableResult(TABLES["table2"], [], [], {}, {}, {}, {}, {})
    )


def test_paper_entry_only_for_the_papers_data_and_setting():
    base = dict(
        experiment="data_denoising/mnist_large_scale",
        method="penalty",
        noise=0.25,
        model="paper",
        smoke=False,
        synthetic_data=False,
        max_steps=None,
    )
    entry, reason = cells.paper_entry(base, "mnist")
    assert reason is None and entry["table"] == "table2" and entry["unit"] == "%"
    by_column = {c["column"]: c for c in entry["cells"]}
    assert by_column["Penalty"]["paper"] == {"mean": 98.89, "spread": 0.04}
    assert by_column["Train+Val"]["metric"] == "noisy_baseline_test_accuracy"
    for change, dataset, words in (
        (dict(), "digits", "digits is not the paper's data set"),
        (dict(smoke=True), "mnist", "--smoke"),
        (dict(noise=0.3), "mnist", "no row 'MNIST (30)'"),
        (dict(model="mlp"), "mnist", "--model mlp"),
    ):
        entry, reason = cells.paper_entry({**base, **change}, dataset)
        assert entry is None and words in reason
    few = dict(experiment="few_shot/miniimagenet", method="approxgrad", n_way=5, k_shot=1, smoke=False)
    entry, _ = cells.paper_entry(few, "miniimagenet")
    assert entry["spread"] == "95% confidence interval" and entry["cells"][0]["paper"]["mean"] == 43.74
    poison = dict(experiment="data_poisoning/targeted", method="penalty", num_poison=30, train_points=1000)
    entry, _ = cells.paper_entry(poison, "mnist")
    assert {c["column"]: c["paper"]["mean"] for c in entry["cells"]} == {
        "Targeted: Penalty": 51.40,
        "Targeted: Label flip": 18.36,
    }
    assert cells.paper_entry(dict(experiment="clean_label", method="penalty"), "dogfish")[1].startswith(
        "the paper reports the clean-label attack as figure 3 only"
    )


def test_paper_tables_are_complete():
    assert TABLES["table2"].value("SVHN (50)", "Penalty").mean == 85.21
    assert TABLES["table3"].value("Mini-ImageNet 5-way 5-shot", "iMAML") is None  # "–" in the paper
    assert len(TABLES["supp4"].rows) == 12 and TABLES["supp4"].value("Ex.4, T=10", "RMD").mean == 138.0
    assert TABLES["supp5"].value("5%", "Targeted: RMD") is None
    assert TABLES["small_scale"].value("MNIST (50)", "Penalty").mean == 90.77


def test_cli(tmp_path, capsys):
    assert tables.main([str(tmp_path / "nowhere")]) == 2
    denoising(str(tmp_path), "r", "penalty", 0, 0.99, 0.8)
    assert tables.main([str(tmp_path), "--no-files"]) == 0
    assert "| MNIST (25) | ours | - | - | 80.00 (1)" in capsys.readouterr().out
    assert not os.path.exists(tmp_path / "tables.md")


@pytest.mark.slow
def test_runs_of_two_methods_by_the_runners_share_one_row(tmp_path):
    """Penalty (two seeds, with the baselines) and ApproxGrad as reproduce's Table 2 rows run them: one row,
    whatever each solver records in config.solver (its options, Keras' optimizer names)."""
    for seed in (0, 1):
        run_runner(
            LARGE,
            ["--smoke", "--dataset", "digits", "--method", "penalty", "--baselines", "--seed", str(seed)],
            tmp_path / "penalty" / f"seed{seed}",
        )
    run_runner(LARGE, ["--smoke", "--dataset", "digits", "--method", "approxgrad"], tmp_path / "approxgrad")
    t2 = table_named(pooling.aggregate(str(tmp_path))[0], "table2")
    assert t2.rows == ["digits (25) [mnist_large_scale]"]
    row = t2.rows[0]
    penalty = f"Penalty [schedule={DEFAULT_SCHEDULE}]"  # the digits demo runs the library default
    assert {c for (r, c) in t2.cells if r == row} == {penalty, "ApproxGrad", "Oracle", "Val-Only", "Train+Val"}
    assert cell(t2, row, penalty).stats[2] == 2 and cell(t2, row, "ApproxGrad").stats[2] == 1
    assert cell(t2, row, "Train+Val").stats[2] == 2  # once per seed, from either method's run
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = tables.report(str(tmp_path))
    assert [str(w.message) for w in caught] == []  # e.g. no "Tight layout not applied"
    assert len([line for line in text.splitlines() if line.startswith("| digits (25)")]) == 1
    with open(tmp_path / "tables.csv") as f:
        assert {r["row"] for r in csv.DictReader(f)} == {row}


def test_an_odd_results_json_is_skipped_with_a_warning_naming_it(tmp_path, capsys):
    root = str(tmp_path)
    denoising(root, "good", "penalty", 0, 0.99, 0.8)
    denoising(root, "no_noise", "penalty", 1, 0.98, 0.8)
    path = tmp_path / "no_noise" / "results.json"
    result = json.loads(path.read_text())
    del result["config"]["noise"]
    path.write_text(json.dumps(result))
    null = tmp_path / "null_config" / "results.json"
    null.parent.mkdir()
    null.write_text(json.dumps(dict(result, config=None)))
    no_key = tmp_path / "no_experiment" / "results.json"
    no_key.parent.mkdir()
    no_key.write_text(json.dumps({k: v for k, v in result.items() if k != "experiment"}))
    assert tables.main([root]) == 0
    out, err = capsys.readouterr()
    warned = err.strip().splitlines()
    assert len(warned) == 3 and all(line.startswith("warning: ") and line.endswith("skipped") for line in warned)
    for odd in (path, null, no_key):
        assert any(str(odd) in line for line in warned), odd
    assert "| MNIST (25) | ours | - | - | 80.00 (1)" in out  # the good run's row is still there
    assert "Traceback" not in err


def test_unwritable_outputs_give_one_line(tmp_path, capsys):
    root = tmp_path / "runs"
    denoising(str(root), "r", "penalty", 0, 0.99, 0.8)
    (root / "tables.md").mkdir()  # a folder where the file goes
    assert tables.main([str(root)]) == 2
    out, err = capsys.readouterr()
    assert "| MNIST (25) | ours" in out  # printed all the same
    assert err.strip().splitlines() == [
        f"error: cannot write {root / 'tables.md'} (Is a directory); --no-files prints the tables without writing them"
    ]
    if os.geteuid() != 0:  # root writes anywhere
        (root / "tables.md").rmdir()
        root.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            assert tables.main([str(root)]) == 2
        finally:
            root.chmod(stat.S_IRWXU)
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "Permission denied" in err[0] and str(root / "tables.md") in err[0], err

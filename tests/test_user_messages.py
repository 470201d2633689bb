"""What a runner tells its user: flag mistakes in one line with a suggestion, a line for every value that
replaces one of the runner's constants (--smoke, a data set's own settings), the exit status of Ctrl-C and
SIGTERM, warnings in one line, figures whose points are visible."""

import argparse
import dataclasses
import warnings

import pytest
from runner_utils import load_runner
from test_offline_smoke import PAPER_RUNNERS

from bilevel_tf.runner import console, experiment, plots
from bilevel_tf.solvers.penalty_schedules import DEFAULT_SCHEDULE
from bilevel_tf.apps.few_shot import config as few_shot_config
from bilevel_tf.apps.denoising import config as denoising_config

OMNIGLOT = "few_shot/omniglot/test_bilevel_few_shot_learning_omniglot.py"
MNIST = "data_denoising/mnist_large_scale/test_bilevel_importance_learning_mnist.py"
CIFAR = "data_denoising/cifar10/test_bilevel_importance_learning_cifar10.py"


def _parser():
    p = experiment.parser("a runner", epochs=3)
    p.add_argument("--noise", type=float, default=0.25, help="fraction of flipped labels")
    return p


@pytest.mark.parametrize(
    "argv, hint",
    [
        (["--nosie", "0.4"], "did you mean --noise?"),
        (["--method", "Penalty"], "did you mean penalty?"),
        (["--nosie", "0.4", "--metod", "gd"], "--noise for --nosie, --method for --metod"),
        (["--zzzzzz"], "--zzzzzz; --help lists the flags"),
    ],
)
def test_a_flag_mistake_is_one_line_with_a_suggestion(argv, hint, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "usage:" not in err, err
    assert hint in err


def test_given_flags_names_only_what_the_command_line_sets():
    p = _parser()
    assert console.given_flags(p, ["--noise", "0.4", "--smoke"]) == {"noise", "smoke"}
    assert console.given_flags(p, []) == set()


def test_smoke_names_the_edited_n_and_k_it_replaces(tmp_path, capsys):
    # a user edits N_WAY = 10, K_SHOT = 3 at the top of the runner, then runs --smoke
    edited = dataclasses.replace(load_runner(OMNIGLOT).DEFAULTS, n_way=10, k_shot=3)
    p = few_shot_config.build_parser("", edited, datasets=("omniglot", "digits"))
    args = few_shot_config.parse(p, ["--smoke", "--out", str(tmp_path)], "few_shot/omniglot", edited)
    lines = [line for line in capsys.readouterr().out.splitlines() if "--smoke sets" in line]
    assert (args.n_way, args.k_shot, args.meta_iterations) == (5, 1, 4)
    assert len(lines) == 1 and "n_way 10->5" in lines[0] and "k_shot 3->1" in lines[0], lines
    # a flag given on the command line wins and is not reported
    args = few_shot_config.parse(p, ["--smoke", "--k-shot", "2", "--out", str(tmp_path)], "few_shot/omniglot", edited)
    out = capsys.readouterr().out
    assert args.k_shot == 2 and "k_shot" not in out and "n_way 10->5" in out
    args = few_shot_config.parse(p, ["--smoke", "--out", str(tmp_path), "--verbose", "0"], "few_shot/omniglot", edited)
    assert capsys.readouterr().out == ""


def test_the_digits_demo_names_the_constants_it_replaces(tmp_path, capsys):
    spec = load_runner(MNIST).SPEC
    args, _ = denoising_config.parse(spec, ["--dataset", "digits", "--epochs", "7", "--out", str(tmp_path)])
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "--dataset digits" in line]
    assert "pretrain_epochs 100->50" in line and "model paper->mlp" in line
    assert f"schedule original->{DEFAULT_SCHEDULE}" in line
    replaced = {item.split()[0] for item in line.split(" sets ", 1)[1].split(", ")}
    assert "epochs" not in replaced and args.epochs == 7  # given as a flag: nothing replaced


class _Parsed(Exception):
    pass


@pytest.mark.parametrize("runner", PAPER_RUNNERS)
def test_every_runners_smoke_says_what_it_changes(runner, tmp_path, monkeypatch, capsys):
    """Stops each runner right after its --smoke notice (before any data or training)."""
    original = console.report_overrides

    def report_then_stop(args, before, reason, names=None):
        changes = original(args, before, reason, names)
        if reason == "--smoke":
            raise _Parsed(changes)
        return changes

    monkeypatch.setattr(console, "report_overrides", report_then_stop)
    with pytest.raises(_Parsed) as stopped:
        load_runner(runner).main(["--smoke", "--out", str(tmp_path)])
    assert stopped.value.args[0], runner  # --smoke replaced at least one constant...
    lines = [line for line in capsys.readouterr().out.splitlines() if "--smoke sets" in line]
    assert len(lines) == 1 and lines[0].startswith("["), lines  # ...and said so in one line


def test_ctrl_c_and_sigterm_exit_with_128_plus_the_signal(capsys):
    def interrupted(argv):
        raise KeyboardInterrupt

    def terminated(argv):  # bl.fit turns SIGTERM into this after its checkpoint
        raise KeyboardInterrupt("signal 15")

    for main, code, word in ((interrupted, 130, "interrupted"), (terminated, 143, "terminated")):
        with pytest.raises(SystemExit) as exit_info:
            experiment.run_main(main, [])
        err = capsys.readouterr().err
        assert exit_info.value.code == code and err.startswith(f"error: {word}") and len(err.splitlines()) == 1


def test_a_runners_warnings_are_one_line():
    shown = []

    def main(argv):  # what Python prints for a warning while the runner runs
        shown.append(
            warnings.formatwarning(
                "upper_optimizer has learning rate 1e+06,\n far above", UserWarning, "optimizers.py", 60
            )
        )

    python_format = warnings.formatwarning
    experiment.run_main(main, [])
    assert shown == ["warning: upper_optimizer has learning rate 1e+06, far above\n"]
    assert warnings.formatwarning is python_format  # restored after the run
    experiment.run_main(main, ["--debug"])
    assert "UserWarning" in shown[-1]  # --debug keeps Python's format


def test_a_curve_whose_points_coincide_is_drawn(tmp_path, monkeypatch):
    """The clean-label smoke run's success-vs-distortion curve: every radius flips every target at the same
    distortion, two equal points that a line alone leaves invisible."""
    figures = []
    plt = plots.pyplot()
    monkeypatch.setattr(plt, "close", figures.append)
    plots.plot_curves(
        str(tmp_path / "c.png"),
        {"bilevel": ([0.15, 0.15], [1.0, 1.0]), "long": ([0, 1, 2], [0, 1, 0])},
        xlabel="x",
        ylabel="y",
    )
    same, long = figures[0].axes[0].lines
    assert same.get_marker() not in (None, "None", "") and long.get_marker() in (None, "None", "")
    assert (tmp_path / "c.png").stat().st_size > 0


def test_the_denoising_runners_count_upper_iterations(tmp_path):
    spec = load_runner(MNIST).SPEC
    args, _ = denoising_config.parse(
        spec, ["--dataset", "digits", "--upper-iterations", "7", "--out", str(tmp_path), "--verbose", "0"]
    )
    assert args.max_steps == 7
    old, _ = denoising_config.parse(
        spec, ["--dataset", "digits", "--max-steps", "5", "--out", str(tmp_path), "--verbose", "0"]
    )
    assert old.max_steps == 5


def test_report_overrides_is_silent_when_nothing_changed(capsys):
    args = argparse.Namespace(experiment="x", verbose=1, epochs=3)
    assert console.report_overrides(args, {"epochs": 3}, "--smoke") == []
    assert capsys.readouterr().out == ""


def test_cifar_digits_demo_trains_without_augmentation_unless_asked(tmp_path):
    spec = load_runner(CIFAR).SPEC
    args, _ = denoising_config.parse(spec, ["--dataset", "digits", "--out", str(tmp_path)])
    assert args.augment is False  # CIFAR's flips and turns change a digit's class
    args, _ = denoising_config.parse(spec, ["--dataset", "digits", "--augment", "--out", str(tmp_path)])
    assert args.augment is True

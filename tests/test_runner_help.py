"""Every runner script answers --help with exit status 0, and every option it accepts is explained."""

import argparse

import pytest

from runner_utils import ROOT, load_runner

RUNNER_FOLDERS = ("synthetic_examples", "data_denoising", "data_poisoning", "clean_label", "few_shot")


def _runners():
    found = []
    for folder in RUNNER_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text()
            if "def main(" in text and '__name__ == "__main__"' in text:
                found.append(str(path.relative_to(ROOT)))
    return found


RUNNERS = _runners()


def test_every_experiment_script_is_discovered():
    # the paper's experiment runners, the data-preparation scripts and the timing scripts
    assert len(RUNNERS) >= 17
    for expected in (
        "data_denoising/svhn/pre_process_svhn_data.py",
        "clean_label/extract_inception_features.py",
        "few_shot/omniglot/test_bilevel_few_shot_learning_omniglot.py",
        "data_poisoning/untargeted/test_bilevel_poisoning_untargeted.py",
    ):
        assert expected in RUNNERS


@pytest.mark.parametrize("runner", RUNNERS)
def test_help_exits_zero_and_explains_every_option(runner, monkeypatch, capsys):
    parsers = []
    original = argparse.ArgumentParser.parse_known_args

    def recording(self, *args, **kwargs):
        parsers.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", recording)
    module = load_runner(runner)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code in (0, None)
    text = capsys.readouterr().out
    assert parsers, f"{runner} did not parse its flags with argparse"
    parser = parsers[-1]  # the one that printed the help
    options = [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
    assert options, runner
    undocumented = [
        a.option_strings[0] for a in options if not a.help or a.help == argparse.SUPPRESS or not a.help.strip()
    ]
    assert not undocumented, f"{runner}: options without a help text: {undocumented}"
    for action in options:
        assert action.option_strings[0] in text, (runner, action.option_strings[0])


def test_budget_flags_have_one_meaning():
    from bilevel_tf.runner import experiment

    passes = experiment.parser("", epochs=7)
    assert passes.parse_args([]).epochs == 7
    assert "passes over the training set" in passes.format_help()
    upper = experiment.parser("", upper_iterations=5)
    assert upper.parse_args([]).epochs == 5
    assert upper.parse_args(["--upper-iterations", "3"]).epochs == 3
    assert upper.parse_args(["--epochs", "4"]).epochs == 4  # the original scripts' name for K
    assert "K: upper iterations" in upper.format_help()


@pytest.mark.parametrize(
    "runner", [r for r in RUNNERS if "/time_" not in r and "pre_process" not in r and "extract_" not in r]
)
def test_every_experiment_runner_accepts_upper_iterations(runner, capsys):
    with pytest.raises(SystemExit):
        load_runner(runner).main(["--help"])
    assert "--upper-iterations" in capsys.readouterr().out

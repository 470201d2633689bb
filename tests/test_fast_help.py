"""The runners parse their flags before TensorFlow loads: --help and a mistyped flag answer at once, and
importing bilevel_tf alone does not import TensorFlow (which then loads quietly on first use)."""
import os
import subprocess
import sys
import textwrap

import pytest

from runner_utils import ROOT
from test_runner_help import RUNNERS

# Imports TensorFlow or Keras fail loudly in these child processes, so a runner that loads them before its
# flags are parsed is caught whatever path the import takes.
GUARD = textwrap.dedent("""
    import importlib.abc, runpy, sys
    class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras"):
                raise ImportError(f"{name} imported before the flags were parsed")
    sys.meta_path.insert(0, NoTensorFlow())
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


def _run(*args, guard=True, env=None):
    command = [sys.executable, "-c", GUARD, *args] if guard else [sys.executable, "-c", *args]
    environment = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, env=environment)


@pytest.mark.parametrize("runner", RUNNERS)
def test_help_answers_without_tensorflow(runner):
    result = _run(str(ROOT / runner), "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout


@pytest.mark.parametrize("runner", [r for r in RUNNERS if "/time_" not in r and "pre_process" not in r
                                    and "extract_" not in r])
def test_a_mistyped_flag_is_refused_without_tensorflow(runner):
    result = _run(str(ROOT / runner), "--no-such-flag")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "unrecognized arguments: --no-such-flag" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "usage:" not in result.stderr, result.stderr  # no dump
    assert "imported before the flags were parsed" not in result.stderr


def test_importing_the_package_does_not_import_tensorflow():
    result = _run("import sys, bilevel_tf, bilevel_tf.experiment, bilevel_tf.options, bilevel_tf.apps.poisoning; "
                  "print('tensorflow' in sys.modules, 'keras' in sys.modules)", guard=False)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_names_load_on_first_use_and_fit_stays_the_function():
    result = _run(textwrap.dedent("""
        import importlib
        import bilevel_tf as bl
        fit_module = importlib.import_module("bilevel_tf.fit")  # binds the submodule on the package
        import bilevel_tf.fit  # noqa: F401
        from bilevel_tf import fit
        from bilevel_tf.fit import History
        print(callable(bl.fit), fit is bl.fit, bl.fit is fit_module.fit, History is bl.History,
              bl.Penalty.__name__, bl.toy.__name__, sorted(set(bl.__all__) - set(dir(bl))))
    """), guard=False)
    assert result.stdout.split() == ["True", "True", "True", "True", "Penalty", "bilevel_tf.toy", "[]"], result.stderr


def test_tensorflow_loads_quietly_through_any_import():
    # keras imports TensorFlow itself: its C++ start-up lines (oneDNN, CUDA probing) must not reach stderr
    env = {"TF_CPP_MIN_LOG_LEVEL": "", "BILEVEL_TF_TF_LOGS": ""}
    result = _run("import bilevel_tf, keras; import tensorflow as tf; print(tf.constant(2.0).numpy())",
                  guard=False, env=env)
    assert result.stdout.strip() == "2.0", result.stderr
    assert "oneDNN" not in result.stderr and "cuInit" not in result.stderr and "cuda" not in result.stderr.lower(), \
        result.stderr
    loud = _run("import bilevel_tf, keras", guard=False, env={"TF_CPP_MIN_LOG_LEVEL": "", "BILEVEL_TF_TF_LOGS": "1"})
    assert loud.returncode == 0, loud.stderr

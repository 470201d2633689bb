"""The runners parse their flags before TensorFlow loads: --help and a mistyped flag answer at once, and
importing bilevel_tf alone does not import TensorFlow (which then loads quietly on first use)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from runner_utils import ROOT
from test_runner_help import RUNNERS

# Imports of TensorFlow or Keras fail loudly in the child process, so a runner that loads them before its flags
# are parsed is caught whatever path the import takes. One child runs every runner in turn (runpy, as
# `python runner.py FLAGS` would): the guard holds for each, and the suite starts one Python, not one per runner.
GUARD = textwrap.dedent("""
    import contextlib, importlib.abc, io, json, runpy, sys
    class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras"):
                raise ImportError(f"{name} imported before the flags were parsed")
    sys.meta_path.insert(0, NoTensorFlow())
    flags, results = json.loads(sys.argv[1]), {}
    for runner in sys.argv[2:]:
        sys.argv = [runner] + flags
        out, err, code = io.StringIO(), io.StringIO(), None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(runner, run_name="__main__")
            except SystemExit as e:
                code = e.code
            except BaseException as e:
                code = f"{type(e).__name__}: {e}"
        results[runner] = {"code": code, "out": out.getvalue(), "err": err.getvalue()}
    print(json.dumps(results))
""")


def _run(*args, env=None):
    environment = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run(
        [sys.executable, "-c", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=environment
    )


def _every_runner(flags):
    """{runner: {"code", "out", "err"}} of ``python runner.py FLAGS`` for every runner, in one guarded child."""
    result = _run(GUARD, json.dumps(flags), *[str(ROOT / r) for r in RUNNERS])
    assert result.returncode == 0, result.stderr[-3000:]
    return {os.path.relpath(k, ROOT): v for k, v in json.loads(result.stdout.splitlines()[-1]).items()}


@pytest.fixture(scope="module")
def helped():
    return _every_runner(["--help"])


@pytest.fixture(scope="module")
def mistyped():
    return _every_runner(["--no-such-flag"])


@pytest.mark.parametrize("runner", RUNNERS)
def test_help_answers_without_tensorflow(runner, helped):
    result = helped[runner]
    assert result["code"] in (0, None), result
    assert "usage:" in result["out"]


@pytest.mark.parametrize(
    "runner", [r for r in RUNNERS if "/time_" not in r and "pre_process" not in r and "extract_" not in r]
)
def test_a_mistyped_flag_is_refused_without_tensorflow(runner, mistyped):
    result = mistyped[runner]
    assert result["code"] == 2, result
    assert "unrecognized arguments: --no-such-flag" in result["err"]
    assert len(result["err"].strip().splitlines()) == 1 and "usage:" not in result["err"], result  # no dump
    assert "imported before the flags were parsed" not in result["err"]


def test_importing_the_package_does_not_import_tensorflow():
    result = _run(
        "import sys, bilevel_tf, bilevel_tf.runner.experiment, bilevel_tf.core.options, "
        "bilevel_tf.apps.poisoning; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_importing_the_package_installs_no_hook_and_reads_no_argv():
    result = _run(
        textwrap.dedent("""
        import sys
        sys.argv = ["host-program", "--verbose", "2"]  # the host's flags are none of the library's business
        before = list(sys.meta_path)
        import bilevel_tf as bl
        unchanged = sys.meta_path == before
        bl.METHODS, bl.make_solver  # a lazy name of each kind (TensorFlow adds its own finders)
        ours = [f for f in sys.meta_path if type(f).__module__.startswith("bilevel_tf")]
        print(unchanged, ours == [], type(bl) is type(sys))
    """)
    )
    assert result.stdout.split() == ["True", "True", "True"], result.stderr


def test_names_load_on_first_use_and_fit_is_the_function():
    result = _run(
        textwrap.dedent("""
        import inspect
        import bilevel_tf as bl
        from bilevel_tf import fit
        from bilevel_tf.training.loop import History, fit as loop_fit
        print(inspect.isfunction(bl.fit), fit is bl.fit is loop_fit, History is bl.History,
              bl.Penalty.__name__, bl.toy.__name__, sorted(set(bl.__all__) - set(dir(bl))))
    """)
    )
    assert result.stdout.split() == ["True", "True", "True", "Penalty", "bilevel_tf.toy", "[]"], result.stderr


def test_tensorflow_loads_quietly_once_a_runner_parsed_its_flags():
    # keras imports TensorFlow itself: its C++ start-up lines (oneDNN, CUDA probing) must not reach stderr
    env = {"TF_CPP_MIN_LOG_LEVEL": "", "BILEVEL_TF_TF_LOGS": ""}
    start = "from bilevel_tf.runner import experiment; experiment.parser('a runner').parse_args([]); "
    result = _run(start + "import keras; import tensorflow as tf; print(tf.constant(2.0).numpy())", env=env)
    assert result.stdout.strip() == "2.0", result.stderr
    assert "oneDNN" not in result.stderr and "cuInit" not in result.stderr and "cuda" not in result.stderr.lower(), (
        result.stderr
    )
    loud = _run(
        start.replace("[]", "['--verbose', '2']") + "import sys, keras; "
        "print(any('Quiet' in type(f).__name__ for f in sys.meta_path))",
        env=env,
    )
    assert loud.returncode == 0 and loud.stdout.strip() == "False", loud.stderr

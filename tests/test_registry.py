"""The method registry: one line declares a solver, and every list of method names derives from it."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from bilevel_tf.solvers import registry
from runner_utils import ROOT

# A child process registers a solver defined outside the package, then reads every place that offers methods.
CHILD = textwrap.dedent("""
    import json, sys
    from bilevel_tf.solvers import registry
    registry.register("dummy", "dummy_solver:Dummy", "a test solver", aliases=("dummy-alias",), label="Dum")
    import bilevel_tf as bl
    from bilevel_tf.published import cells
    from bilevel_tf.runner import experiment
    from quadratic import Quadratic
    from runner_utils import SOLVER_CLASSES
    parser = experiment.parser("a runner")
    method = parser.parse_args(["--method", "dummy"]).method
    solver = bl.make_solver("dummy-alias", Quadratic().problem(), inner_steps=2, upper_optimizer=0.1)
    print(json.dumps(dict(
        methods=list(bl.METHODS), solvers="dummy" in bl.SOLVERS, method=method,
        choices=[a.choices for a in parser._actions if a.dest == "method"][0], help=parser.format_help(),
        solver=type(solver).__name__, config=solver.get_config()["method"], column=cells._column("dummy"),
        recorded=SOLVER_CLASSES["dummy"])))
""")
DUMMY = textwrap.dedent("""
    import bilevel_tf as bl
    class Dummy(bl.GD):
        '''Plain alternation under another name.'''
        method = "dummy"
""")


def test_a_registered_solver_appears_everywhere_with_no_other_edit(tmp_path):
    (tmp_path / "dummy_solver.py").write_text(DUMMY)
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests"), str(tmp_path)])
    result = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["methods"][-1] == "dummy" and seen["methods"][:-1] == list(registry.METHODS)
    assert seen["solvers"] and seen["method"] == "dummy" and "dummy" in seen["choices"]
    assert "dummy (a test solver)" in " ".join(seen["help"].split())
    assert seen["solver"] == seen["recorded"] == "Dummy" and seen["config"] == "dummy" and seen["column"] == "Dum"


def test_names_are_normalized_and_unknown_names_listed():
    assert registry.lookup("V-PBGD").name == "vpbgd" and registry.lookup("RHG").name == "rmd"
    assert registry.describe("rhg") == "reverse-mode unrolling, as rhg"
    with pytest.raises(ValueError, match=r"unknown method 'newton'; choose one of \['penalty', 'approxgrad'"):
        registry.lookup("newton")
    with pytest.raises(ValueError, match="unknown method 'newton'"):
        registry.covered(["penalty", "newton"])


def test_a_taken_name_or_a_bad_target_is_refused():
    with pytest.raises(ValueError, match="name: method 'rhg' is already registered"):
        registry.register("rhg", "x.y:Z", "a clash")
    with pytest.raises(ValueError, match="target must be 'package.module:Class'"):
        registry.register("fresh", "no_class_here", "no class")
    assert "fresh" not in registry.METHODS


def test_the_registry_loads_without_tensorflow():
    code = "import sys; from bilevel_tf.solvers import registry; print('tensorflow' in sys.modules, registry.METHODS)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert result.stdout.startswith("False ('penalty', "), result.stderr[-2000:]

"""The type check of the public API passes: the command CI's fast stage runs (``python -m mypy``, settings and
files in pyproject.toml's [tool.mypy]), so the stage and the README's test command agree. Skipped without mypy
(requirements-test.txt)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="mypy is not installed (pip install -r requirements-test.txt)")

ROOT = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, "-m", "mypy"]


def _mypy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(COMMAND + list(args), cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_the_public_api_type_checks():
    result = _mypy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_the_check_sees_the_public_annotations(tmp_path):
    # a misuse of a public function fails with the same settings, so the check above is not vacuous
    snippet = tmp_path / "misuse.py"
    snippet.write_text('from bilevel_tf.toy.quadratic import random_quadratic\n\nrandom_quadratic("seven")\n')
    result = _mypy(str(snippet))
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'Argument 1 to "random_quadratic" has incompatible type "str"; expected "int"' in result.stdout

"""Shared code of the bilevel_tf benchopt benchmark: the problems (``tasks``, ``ml_tasks``) and the solver
base class (``tf_solver``). The simulated quadratic's generator lives one folder up, in ``benchmarks/``."""

import sys
from pathlib import Path

_BENCHMARKS = str(Path(__file__).resolve().parents[2])
if _BENCHMARKS not in sys.path:
    sys.path.insert(0, _BENCHMARKS)  # simulated_quadratic.py, simulated_problem.py, simulated_runs.py

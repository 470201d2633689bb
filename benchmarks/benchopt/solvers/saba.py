"""SABA: SOBA with SAGA variance reduction (Dagréou et al., NeurIPS 2022), on the task's bl.FiniteSum form:
``bl.make_solver("saba", problem, **options)``."""

from benchmark_utils.tf_solver import BilevelTFSolver


class Solver(BilevelTFSolver):
    name = "saba"
    method = "saba"

"""SOBA: single-loop stochastic implicit gradient (Dagréou et al., NeurIPS 2022):
``bl.make_solver("soba", problem, **options)``."""

from benchmark_utils.tf_solver import BilevelTFSolver


class Solver(BilevelTFSolver):
    name = "soba"
    method = "soba"

"""Penalty method of Mehra & Hamm (ACML 2021): ``bl.make_solver("penalty", problem, **options)``."""

from benchmark_utils.tf_solver import BilevelTFSolver


class Solver(BilevelTFSolver):
    name = "penalty"
    method = "penalty"

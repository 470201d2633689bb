"""Implicit: implicit differentiation with conjugate-gradient solves (Pedregosa, ICML 2016):
``bl.make_solver("implicit", problem, **options)``."""

from benchmark_utils.tf_solver import BilevelTFSolver


class Solver(BilevelTFSolver):
    name = "implicit"
    method = "implicit"

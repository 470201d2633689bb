"""ApproxGrad: approximate implicit gradient: ``bl.make_solver("approxgrad", problem, **options)``."""

from benchmark_utils.tf_solver import BilevelTFSolver


class Solver(BilevelTFSolver):
    name = "approxgrad"
    method = "approxgrad"

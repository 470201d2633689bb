"""G-PBGD: gradient penalty (Shen & Chen, ICML 2023): ``bl.make_solver("gpbgd", problem, **options)``."""

from benchmark_utils.tf_solver import BilevelTFSolver


class Solver(BilevelTFSolver):
    name = "gpbgd"
    method = "gpbgd"

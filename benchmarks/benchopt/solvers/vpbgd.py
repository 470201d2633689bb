"""V-PBGD: value-gap penalty (Shen & Chen, ICML 2023): ``bl.make_solver("vpbgd", problem, **options)``."""

from benchmark_utils.tf_solver import BilevelTFSolver


class Solver(BilevelTFSolver):
    name = "vpbgd"
    method = "vpbgd"

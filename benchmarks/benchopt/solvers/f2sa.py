"""F2SA: fully first-order penalty (Kwon et al., ICML 2023): ``bl.make_solver("f2sa", problem, **options)``."""

from benchmark_utils.tf_solver import BilevelTFSolver


class Solver(BilevelTFSolver):
    name = "f2sa"
    method = "f2sa"

"""AmIGO: amortized implicit gradient (Arbel & Mairal, ICLR 2022): ``bl.make_solver("amigo", problem, **options)``."""

from benchmark_utils.tf_solver import BilevelTFSolver


class Solver(BilevelTFSolver):
    name = "amigo"
    method = "amigo"

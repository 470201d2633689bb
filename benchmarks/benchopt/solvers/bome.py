"""BOME: first-order dynamic barrier (Liu et al., NeurIPS 2022): ``bl.make_solver("bome", problem, **options)``."""

from benchmark_utils.tf_solver import BilevelTFSolver


class Solver(BilevelTFSolver):
    name = "bome"
    method = "bome"

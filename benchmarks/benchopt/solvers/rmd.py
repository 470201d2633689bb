"""RMD: reverse-mode differentiation through T unrolled steps: ``bl.make_solver("rmd", problem, **options)``."""

from benchmark_utils.tf_solver import BilevelTFSolver


class Solver(BilevelTFSolver):
    name = "rmd"
    method = "rmd"

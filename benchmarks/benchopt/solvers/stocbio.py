"""StocBiO: Neumann-series implicit gradient (Ji, Yang & Liang, ICML 2021):
``bl.make_solver("stocbio", problem, **options)``."""

from benchmark_utils.tf_solver import BilevelTFSolver


class Solver(BilevelTFSolver):
    name = "stocbio"
    method = "stocbio"

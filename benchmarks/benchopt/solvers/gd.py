"""GD: naive alternation (ignores dv*/du): ``bl.make_solver("gd", problem, **options)``."""

from benchmark_utils.tf_solver import BilevelTFSolver


class Solver(BilevelTFSolver):
    name = "gd"
    method = "gd"

"""bilevel_tf's benchopt benchmark: min_x f(x, z*(x)) with z*(x) = argmin_z g(x, z).

    pip install -e ".[bench]"                        # bilevel_tf with benchopt
    benchopt run benchmarks/benchopt -d simulated     # offline; also -d regularization, -d datacleaning

Datasets hand a task (``benchmark_utils/tasks.py``) to this objective, which passes it to the solvers (one
file per bilevel_tf method in ``solvers/``) and evaluates their (outer_var, inner_var) with the task's
metrics; ``value`` is benchopt's objective column (the value function on ``simulated`` and
``regularization``, the validation loss on ``datacleaning``).
"""

from benchopt import BaseObjective


class Objective(BaseObjective):
    name = "Bilevel optimization (bilevel_tf)"
    url = "https://github.com/benchopt/benchmark_bilevel"
    requirements = ["numpy", "scipy", "scikit-learn"]
    min_benchopt_version = "1.5"
    parameters = {}

    def set_data(self, task):
        self.task = task

    def get_objective(self):
        return dict(task=self.task)

    def evaluate_result(self, outer_var, inner_var):
        return self.task.evaluate(outer_var, inner_var)

    def get_one_result(self):
        outer_var, inner_var = self.task.start()
        return dict(outer_var=outer_var, inner_var=inner_var)

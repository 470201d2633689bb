"""The benchopt solver behind every ``solvers/<method>.py``: ``bl.make_solver(method, problem, **options)``.

Parameters: ``settings`` ("recommended": the options of ``benchmarks/simulated_runs.py``'s RECOMMENDED table,
tuned on the simulated quadratic; "default": ``bl.make_solver``'s defaults), ``upper_lr``, ``lower_lr``
(learning rates of the slots' default classes) and ``inner_steps`` that override those when not None (the
recommended settings include ``jit_compile=True``: XLA compiles for a while before the first evaluation),
``batch_size`` (an int, or "full") and ``eval_every`` (upper iterations per benchopt callback, run in one
compiled call). The solver is built and compiled in ``set_objective`` (not timed); ``run`` restarts
from the task's start and calls the callback, which benchopt times and uses to evaluate the objective,
between chunks of ``eval_every`` iterations. SABA gets the task's ``bl.FiniteSum`` form (its per-sample memory).
"""

from __future__ import annotations

from typing import Any, Dict

from benchopt import BaseSolver


class BilevelTFSolver(BaseSolver):
    #: the bl.METHODS name, set by each solver file
    method: str = ""
    sampling_strategy = "callback"
    requirements = ["tensorflow"]
    parameters: Dict[str, Any] = {
        "settings": ["recommended"],
        "batch_size": [64],
        "upper_lr": [None],
        "lower_lr": [None],
        "inner_steps": [None],
        "eval_every": [16],
    }

    def options(self) -> Dict[str, Any]:
        from simulated_runs import recommended_options

        if self.settings not in ("recommended", "default"):
            raise ValueError(f"settings must be 'recommended' or 'default', got {self.settings!r}")
        batch_size = None if self.batch_size == "full" else self.batch_size
        options = recommended_options(self.method, batch_size) if self.settings == "recommended" else {}
        given = dict(upper_optimizer=self.upper_lr, lower_optimizer=self.lower_lr, inner_steps=self.inner_steps)
        options.update({k: v for k, v in given.items() if v is not None})
        return options

    def set_objective(self, task):
        import bilevel_tf as bl
        from simulated_runs import chunk_functions, problem_for

        self.task = task
        self.tf_task = task.build()
        self.solver = bl.make_solver(self.method, problem_for(self.tf_task, self.method), **self.options())
        batch_size = None if self.batch_size == "full" else int(self.batch_size)
        self._chunks = lambda: chunk_functions(self.solver, task.n_upper, task.n_lower, batch_size, seed=0)
        # Compile here rather than in warm_up, which benchopt calls once per solver, not once per dataset; every
        # call runs the same chunk length (XLA compiles one program per length).
        prepare, execute, chunk = self._chunks()
        execute(prepare(max(chunk, self.eval_every)))

    def run(self, callback):
        self.solver.reset_state()
        self.tf_task.reset()
        prepare, execute, chunk = self._chunks()
        chunk = max(chunk, self.eval_every)
        while callback():
            execute(prepare(chunk))

    def get_result(self):
        outer_var, inner_var = self.tf_task.values()
        return dict(outer_var=outer_var, inner_var=inner_var)

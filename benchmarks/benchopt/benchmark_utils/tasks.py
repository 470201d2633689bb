"""A task: one bilevel problem as the benchmark's datasets hand it to the objective and the solvers.

Plain numpy until a solver calls :meth:`Task.build` (TensorFlow then builds the variables and the losses),
so the datasets load without TensorFlow. Every task has: ``name``; ``n_upper`` and ``n_lower``, the sample
counts of the upper (outer) and lower (inner) losses (mini-batches are index blocks of those); ``start()``,
the starting (outer_var, inner_var) as numpy; ``build(dtype)``, an object with ``problem()`` (the
``bl.BilevelProblem``), ``reset()`` (variables back at the start) and ``values()`` (current (outer_var,
inner_var) as numpy); and ``evaluate(outer_var, inner_var)``, the metrics (``value`` first, benchopt's
objective column).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

from simulated_quadratic import SPECS, SimulatedQuadratic


class SimulatedTask:
    """benchopt's simulated quadratic (``benchmarks/simulated_quadratic.py``). ``value`` is the value function
    h(x) = f(x, z*(x)) in closed form, so benchopt's suboptimality curves are h(x) - min over runs; the exact
    relative suboptimality (h(x) - h*) / (h(x0) - h*) is reported beside it."""

    def __init__(self, spec: str = "benchmark"):
        if spec not in SPECS:
            raise ValueError(f"spec must be one of {sorted(SPECS)}, got {spec!r}")
        self.name = f"simulated[{spec}]"
        self.data = SimulatedQuadratic(SPECS[spec])
        self.n_upper, self.n_lower = self.data.outer.size, self.data.inner.size

    def start(self) -> Tuple[np.ndarray, np.ndarray]:
        return self.data.x0.copy(), self.data.z0.copy()

    def build(self, dtype: str = "float64"):
        from simulated_problem import SimulatedProblem

        quad = SimulatedProblem(self.data, dtype=dtype)
        quad.values = lambda: (quad.x.numpy().astype(np.float64), quad.z.numpy().astype(np.float64))
        return quad

    def evaluate(self, outer_var: np.ndarray, inner_var: np.ndarray) -> Dict[str, Any]:
        cf = self.data.closed_form
        x = np.asarray(outer_var, np.float64)
        return dict(
            value=cf.value(x),
            relative_suboptimality=self.data.relative_suboptimality(x),
            inner_distance=float(np.sum((np.asarray(inner_var) - cf.inner_solution(x)) ** 2)),
        )

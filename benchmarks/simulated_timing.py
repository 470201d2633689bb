"""How the way the simulated quadratic is written decides its speed in TensorFlow (``simulated.py --timing``).

Five forms of the same problem (``simulated_problem.py``), float64, d = 100 at both levels, n = 1024 samples:

- full batch with the per-sample d x d matrices (``per_sample="dense", full_batch="per_sample"``): the
  direct transcription of 1/n sum_i (1/2 z'A_i z + ...);
- full batch with the rank-one factors of the per-sample matrices (``"factored", "per_sample"``);
- full batch with the averaged matrices (``full_batch="averaged"``, the default);
- a mini-batch of 64 gathered from the dense per-sample matrices (``"dense"``);
- a mini-batch of 64 gathered from the factors (``"factored"``, the default).

For each: seconds per call of the lower loss with its gradient (one tf.function), of a Hessian-vector
product, and seconds per upper iteration of ``bl.make_solver("penalty", problem)`` (its defaults, T = 20).
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf.core import autodiff
from simulated_problem import SimulatedProblem
from simulated_runs import chunk_functions

FORMS = (
    ("full batch, per-sample dense matrices", "dense", "per_sample", None),
    ("full batch, per-sample rank-one factors", "factored", "per_sample", None),
    ("full batch, averaged matrices", "factored", "averaged", None),
    ("mini-batch 64, gathered dense matrices", "dense", "averaged", 64),
    ("mini-batch 64, gathered factors", "factored", "averaged", 64),
)


def _seconds_per_call(fn, min_seconds: float, max_calls: int = 10000) -> float:
    fn()  # trace
    calls, start = 0, time.perf_counter()
    while calls < max_calls and (calls < 3 or time.perf_counter() - start < min_seconds):
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls


def _evaluations(quad: SimulatedProblem, batch: Optional[tf.Tensor], min_seconds: float) -> Dict[str, float]:
    problem = quad.problem()

    @tf.function
    def value_and_grad():
        return autodiff.lower_value_and_grad(problem, batch)

    @tf.function
    def hvp():
        return autodiff.hvp(problem, batch, [tf.ones_like(quad.z)])

    return dict(
        lower_value_and_grad=_seconds_per_call(lambda: value_and_grad()[0].numpy(), min_seconds),
        lower_hvp=_seconds_per_call(lambda: hvp()[0].numpy(), min_seconds),
    )


def _penalty_iteration(quad: SimulatedProblem, batch_size: Optional[int], min_seconds: float) -> Dict[str, Any]:
    quad.reset()
    solver = bl.make_solver("penalty", quad.problem())
    prepare, execute, chunk = chunk_functions(solver, quad.data.outer.size, quad.data.inner.size, batch_size, 0)
    execute(prepare(chunk))
    execute(prepare(chunk + 1))
    done, elapsed = 0, 0.0
    while elapsed < min_seconds or done < 3:
        args = prepare(chunk)
        start = time.perf_counter()
        float(next(iter(execute(args)[0].values())))
        elapsed, done = elapsed + time.perf_counter() - start, done + chunk
        chunk = min(2 * chunk, 64)
    return dict(penalty_iteration=elapsed / done, penalty_iterations_timed=done)


def measure(data, min_seconds: float = 3.0) -> List[Dict[str, Any]]:
    """One row per form (see the module docstring)."""
    rows = []
    for name, per_sample, full_batch, batch_size in FORMS:
        quad = SimulatedProblem(data, per_sample=per_sample, full_batch=full_batch)
        batch = None if batch_size is None else tf.range(batch_size, dtype=tf.int32)
        row = dict(form=name, per_sample=per_sample, full_batch=full_batch, batch_size=batch_size)
        row.update(_evaluations(quad, batch, min_seconds))
        row.update(_penalty_iteration(quad, batch_size, min_seconds))
        rows.append(row)
        print(f"{name}: {row}", flush=True)
    return rows


def markdown(rows: List[Dict[str, Any]]) -> str:
    lines = [
        "| form | lower loss + gradient (ms) | Hessian-vector product (ms) | Penalty iteration, T = 20 (ms) "
        "| iterations / s |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['form']} | {1e3 * r['lower_value_and_grad']:.3g} | {1e3 * r['lower_hvp']:.3g} | "
            f"{1e3 * r['penalty_iteration']:.3g} | {1 / r['penalty_iteration']:.3g} |"
        )
    return "\n".join(lines) + "\n"

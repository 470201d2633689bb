"""Timed runs of bilevel_tf solvers on the simulated quadratic: relative suboptimality against wall time and
upper iterations, the objective evaluated between compiled chunks of iterations, outside the timed region.

A run compiles the solver's chunk call first (two warm-up chunks, then ``solver.reset_state()`` and the
variables back at the start), as benchopt warms its solvers up before timing. Then it alternates: a chunk
of k upper iterations in one compiled call (``solver.run(k)`` in full batch; ``solver.run_feeds`` with k
mini-batches per level in mini-batch mode), timed; then the closed-form suboptimality, not timed. k starts
small and doubles while a chunk takes less than ``seconds / points``, so early progress is resolved too.
"""
from __future__ import annotations

import math
import os
import time
from typing import Any, Callable, Dict, Optional

import numpy as np
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf.solvers import Feed
from simulated_problem import BlockSampler, SimulatedProblem

#: Per method, the ``bl.make_solver`` options we recommend on this problem (full batch and mini-batch),
#: chosen with ``python benchmarks/simulated.py --tune`` (its table is in benchmarks/results/simulated/).
#: Penalty's entry is the issue's setting a user would type: Adam(1e-2) at both levels, default schedule.
#: A method not listed here runs with its defaults in the "recommended" pass as well.
RECOMMENDED: Dict[str, Dict[str, Any]] = {
    "penalty": dict(upper_optimizer=1e-2, lower_optimizer=1e-2),
    "approxgrad": dict(upper_optimizer=1e-2, lower_optimizer=1e-2),
    "rmd": dict(upper_optimizer=0.3, lower_optimizer=0.5),
    "gd": dict(upper_optimizer=1e-2, lower_optimizer=1e-2),
    "vpbgd": dict(upper_optimizer=0.5, lower_optimizer=0.5),
    "gpbgd": dict(upper_optimizer=0.5, lower_optimizer=0.5),
}
#: Where mini-batches need other settings than the full batch (same form as RECOMMENDED).
RECOMMENDED_MINIBATCH: Dict[str, Dict[str, Any]] = {}
THRESHOLDS = (1e-2, 1e-4, 1e-6)


def recommended_options(method: str, batch_size: Optional[int]) -> Dict[str, Any]:
    if batch_size is not None and method in RECOMMENDED_MINIBATCH:
        return dict(RECOMMENDED_MINIBATCH[method])
    return dict(RECOMMENDED.get(method, {}))


def chunk_functions(solver, n_upper: int, n_lower: int, batch_size: Optional[int], seed: int):
    """(prepare(k) -> args, execute(args) -> logs, the smallest chunk) for k upper iterations in one compiled
    call: ``solver.run(k)`` in full batch (``batch_size`` None), else ``solver.run_feeds`` with k mini-batches of
    sample indices per level (``BlockSampler``; the upper level's over n_upper samples). Batches are drawn in
    ``prepare``, so timing ``execute`` alone leaves them out."""
    if batch_size is None:
        return (lambda k: k), (lambda k: solver.run(k)), 1
    upper = BlockSampler(n_upper, batch_size, seed)
    lower = BlockSampler(n_lower, batch_size, seed + 1)

    def prepare(k):
        ub, lb = tf.constant(upper.take(k)), tf.constant(lower.take(k))
        return k, ub[0], lb[0], Feed.stacked(ub[1:]), Feed.stacked(lb[1:])

    def execute(args):
        return solver.run_feeds(*args)[0]
    return prepare, execute, 2  # a chunk of 1 would call solver.step, another compiled function


def first_time_below(seconds, values, threshold: float):
    """(seconds, index) of the first evaluation at or below threshold, (None, None) if never."""
    for i, (t, v) in enumerate(zip(seconds, values)):
        if v <= threshold:
            return t, i
    return None, None


def summarize(record: Dict[str, Any]) -> Dict[str, Any]:
    """Final value, best value and first times / iterations below each of THRESHOLDS."""
    values = record["suboptimality"]
    finite = [v for v in values if math.isfinite(v)]
    out = dict(final=values[-1], best=min(finite) if finite else float("nan"))
    for thr in THRESHOLDS:
        t, i = first_time_below(record["seconds"], values, thr)
        out[f"time_to_{thr:g}"] = t
        out[f"iterations_to_{thr:g}"] = None if i is None else record["iterations"][i]
    return out


def timed_loop(prepare: Callable, execute: Callable, objective: Callable[[], float], seconds: float,
               min_chunk: int, points: int = 150, floor: float = 1e-14) -> Dict[str, Any]:
    """Alternate timed chunks and untimed objective evaluations for ``seconds`` of solver time."""
    target = seconds / points
    record = dict(seconds=[0.0], iterations=[0], suboptimality=[objective()], stopped="time")
    elapsed, done, chunk = 0.0, 0, min_chunk
    while elapsed < seconds:
        args = prepare(chunk)
        start = time.perf_counter()
        logs = execute(args)
        float(next(iter(logs.values())))  # make sure the work is done before the clock stops
        took = time.perf_counter() - start
        elapsed, done = elapsed + took, done + chunk
        value = objective()
        record["seconds"].append(elapsed)
        record["iterations"].append(done)
        record["suboptimality"].append(value)
        if not math.isfinite(value):
            record["stopped"] = "diverged"
            break
        if value < floor:
            record["stopped"] = "floor"
            break
        per_iteration = took / chunk
        if took < target:
            chunk *= 2
        chunk = max(min_chunk, min(chunk, int((seconds - elapsed) / per_iteration) + 1))
    record["solver_seconds"] = elapsed
    record["seconds_per_iteration"] = elapsed / max(done, 1)
    return record


def run_solver(quad: SimulatedProblem, method: str, options: Dict[str, Any], seconds: float,
               batch_size: Optional[int] = None, seed: int = 0, points: int = 150) -> Dict[str, Any]:
    """One timed run of ``bl.make_solver(method, problem, **options)`` from the benchmark's start."""
    quad.reset()
    solver = bl.make_solver(method, quad.problem(), **options)
    sizes = (quad.data.outer.size, quad.data.inner.size)
    prepare, execute, min_chunk = chunk_functions(solver, *sizes, batch_size, seed)
    compile_start = time.perf_counter()
    execute(prepare(min_chunk))
    execute(prepare(min_chunk + 1))  # a second shape: run_feeds' trace generalizes to any chunk length
    compile_seconds = time.perf_counter() - compile_start
    solver.reset_state()
    quad.reset()
    prepare, execute, min_chunk = chunk_functions(solver, *sizes, batch_size, seed)  # fresh samplers
    traces = solver.trace_count
    load_before = os.getloadavg()[0]
    record = timed_loop(prepare, execute, quad.relative_suboptimality, seconds, min_chunk, points)
    record.update(method=method, options={k: _jsonable(v) for k, v in options.items()},
                  mode="full" if batch_size is None else f"minibatch{batch_size}", batch_size=batch_size,
                  framework="bilevel_tf", config=solver.get_config(), compile_seconds=compile_seconds,
                  retraces=solver.trace_count - traces, load_average=[load_before, os.getloadavg()[0]],
                  dtype=quad.dtype.name)
    record.update(summarize(record))
    return record


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return repr(value)

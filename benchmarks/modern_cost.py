"""Seconds per upper iteration of SOBA, SABA, AmIGO, StocBiO, F2SA and BOME next to Penalty's, on one quadratic.

    nice python benchmarks/modern_cost.py            # about a minute on a 2-core CPU

(a) ``bl.toy.least_squares_quadratic`` with dim u = 10, dim v = 100 (float32, batch None), every solver with
its defaults (``bl.make_solver(name, problem)``) and again with T = 10 inner steps, timed by ``solver.run``'s
in-graph loop (the floor: no per-call overhead), in interleaved rounds (the median of 3) so that load on a
shared machine hits every solver alike; (b) SABA against SOBA on the same problem written as finite sums of
1024 lower and 1024 upper samples, batches of 64 indices (SABA's per-sample Jacobians and memory updates
against SOBA's batch gradients). Prints a markdown table; ratios are to Penalty with its defaults (T = 20).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf import toy

METHODS = ("penalty", "soba", "saba", "amigo", "stocbio", "f2sa", "bome")
SECONDS_PER_TIMING = 0.5


def _timed(solver, batches=(None, None), rounds=None):
    """Seconds per iteration of solver.run(n, *batches), n sized to take about SECONDS_PER_TIMING."""
    solver.run(2, *batches)  # compile
    start = time.perf_counter()
    solver.run(5, *batches)
    n = max(10, int(SECONDS_PER_TIMING / max((time.perf_counter() - start) / 5, 1e-6)))

    def once():
        start = time.perf_counter()
        solver.run(n, *batches)
        return (time.perf_counter() - start) / n

    return once


def _finite_sum_problem(q, n_samples, seed=0):
    """q's variables with g = mean_i 1/2 (a_i'v - b_i'u - c_i)^2 + 1/20 ||v||^2, f = mean_j 1/2 ||v - d_j||^2."""
    rng = np.random.default_rng(seed)
    A, B = (tf.constant(rng.normal(size=(n_samples, k)), tf.float32) for k in (q.n_v, q.n_u))
    c = tf.constant(rng.normal(size=n_samples), tf.float32)
    D = tf.constant(rng.normal(size=(n_samples, q.n_v)), tf.float32)

    def lower(batch):
        idx = batch[0]
        r = tf.linalg.matvec(tf.gather(A, idx), q.v) - tf.linalg.matvec(tf.gather(B, idx), q.u) - tf.gather(c, idx)
        return 0.5 * tf.square(r) + 0.05 * tf.reduce_sum(tf.square(q.v))

    def upper(batch):
        return 0.5 * tf.reduce_sum(tf.square(q.v[None] - tf.gather(D, batch[0])), axis=1)

    return bl.BilevelProblem(bl.FiniteSum(upper, n_samples), bl.FiniteSum(lower, n_samples), [q.u], [q.v])


def main() -> None:
    solvers = {}
    for method in METHODS:
        solvers[(method, "defaults")] = bl.make_solver(method, toy.least_squares_quadratic(10, 100, seed=1).problem())
        solvers[(method, "T = 10")] = bl.make_solver(
            method, toy.least_squares_quadratic(10, 100, seed=1).problem(), inner_steps=10
        )
    q = toy.least_squares_quadratic(10, 100, seed=1)
    batches = ((tf.range(64, dtype=tf.int64),), (tf.range(64, dtype=tf.int64),))
    for method in ("soba", "saba"):
        solvers[(method, "finite sum, batch 64")] = bl.make_solver(method, _finite_sum_problem(q, 1024))
    timers = {key: _timed(s, batches if "finite" in key[1] else (None, None)) for key, s in solvers.items()}
    times = {key: [] for key in timers}
    for _ in range(3):
        for key, once in timers.items():
            times[key].append(once())
    median = {key: statistics.median(t) for key, t in times.items()}
    base = median[("penalty", "defaults")]
    print("| method | setting | T | ms per upper iteration | ratio to Penalty (defaults) |\n|---|---|---|---|---|")
    for (method, setting), seconds in median.items():
        T = solvers[(method, setting)].inner_steps
        print(f"| {method} | {setting} | {T} | {seconds * 1e3:.3f} | {seconds / base:.2f} |")


if __name__ == "__main__":
    main()

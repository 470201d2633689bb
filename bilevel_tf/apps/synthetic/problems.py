"""The paper's synthetic bilevel problems (section 3.1, figures 1-2 and supp. figure 7) and their solvers.

Four problems with known solutions, u, v in R^dim inside the box |u_i|, |v_i| <= 5::

    Ex.1  f = ||u||^2 + ||v||^2              g = ||1 - u - v||^2               solution u = v = 0.5
    Ex.2  f = ||v||^2 - ||u - v||^2          g = ||u - v||^2                   solution u = v = 0
    Ex.3  f = ||u||^2 + ||v||^2              g = (1 - u - v)^T A^T A (1 - u - v)
    Ex.4  f = ||v||^2 - (u - v)^T A^T A (u - v)    g = (u - v)^T A^T A (u - v)

A is a seeded Gaussian (ceil(dim/2) x dim) matrix, so A^T A is rank deficient and the lower solution is
not unique: the distance of Ex.3/Ex.4 only measures the row-space component, P = A^T (A A^T)^-1 A::

    Ex.1  sqrt(||u - .5||^2 + ||v - .5||^2)      Ex.2  sqrt(||u||^2 + ||v||^2)
    Ex.3  sqrt(||P(u - .5)||^2 + ||P(v - .5)||^2)   Ex.4  sqrt(||P u||^2 + ||v||^2)

The paper states dim = 10; the original code used two independent blocks of 10 (20 entries per variable,
f and g summed over the blocks, one A per block), which is the same problem twice: ``dim=20`` here is
close to but not the same as the original (one 10x20 A instead of two 5x10 blocks).

Solver settings (supp. E.1 and the original ``test_synthetic.py``): Adam everywhere with sigma0 = lr_u =
1e-3 and rho0 = lr_v = lr_p = 1e-4, except RMD (plain SGD on v and, as in the original, on u). Penalty
starts at rho = 1, lam = 10, eps = 1, nu = 0 with the original SYNTHETIC schedule: when the tolerance test
passes rho *= 1.1 and lam, eps and both learning rates are divided by 1.1. ApproxGrad uses sigma = 1e-6
and T linear-system steps.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf.runner import plots

from .config import EXAMPLES

BOX = 5.0  # |u_i|, |v_i| <= BOX


class SyntheticExample(NamedTuple):
    """``problem, u, v, distance = make_example(1)``; ``distance()`` is a compiled TF function."""

    problem: bl.BilevelProblem
    u: tf.Variable
    v: tf.Variable
    distance: Callable[[], tf.Tensor]


def random_matrix(dim: int, seed: int) -> np.ndarray:
    """The Gaussian A of Ex.3/Ex.4: ceil(dim/2) x dim (5 x 10 for the paper's dim)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((int(math.ceil(dim / 2)), dim)).astype(np.float32)


def row_space_projector(a: np.ndarray) -> np.ndarray:
    """P = A^T (A A^T)^-1 A, the orthogonal projection onto the row space of A (computed in float64)."""
    a = a.astype(np.float64)
    return (a.T @ np.linalg.solve(a @ a.T, a)).astype(np.float32)


def _norm_sq(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.square(x))


def _quadratic(a: Optional[tf.Tensor]) -> Callable[[tf.Tensor], tf.Tensor]:
    """x -> ||x||^2 (no A) or x^T A^T A x = ||A x||^2."""

    def quadratic(x):
        return _norm_sq(x if a is None else tf.linalg.matvec(a, x))

    return quadratic


def make_example(example: int, dim: int = 10, seed: int = 0) -> SyntheticExample:
    """Build Ex.1..Ex.4 with fresh variables (u, v start at zero; call :func:`initialize` per trial).

    ``seed`` fixes A for Ex.3/Ex.4 (the original drew it unseeded, once per method).
    """
    if example not in EXAMPLES:
        raise ValueError(f"example must be one of {list(EXAMPLES)}, got {example!r}")
    if int(dim) < 1:
        raise ValueError(f"dim must be >= 1, got {dim!r}")
    u = tf.Variable(tf.zeros([dim]), name=f"u_ex{example}")
    v = tf.Variable(tf.zeros([dim]), name=f"v_ex{example}")
    a = tf.constant(random_matrix(dim, seed)) if example in (3, 4) else None
    p = tf.constant(row_space_projector(a.numpy())) if a is not None else None
    q = _quadratic(a)

    def project(x):
        return x if p is None else tf.linalg.matvec(p, x)

    if example in (1, 3):

        def upper(_):
            return _norm_sq(u) + _norm_sq(v)

        def lower(_):
            return q(1.0 - u - v)

        def distance():
            return tf.sqrt(_norm_sq(project(u - 0.5)) + _norm_sq(project(v - 0.5)))
    else:

        def upper(_):
            return _norm_sq(v) - q(u - v)

        def lower(_):
            return q(u - v)

        def distance():
            return tf.sqrt(_norm_sq(project(u)) + _norm_sq(v))

    box = bl.constraints.box(-BOX, BOX)
    problem = bl.BilevelProblem(upper, lower, [u], [v], upper_constraint=box, lower_constraint=box)
    return SyntheticExample(problem, u, v, tf.function(distance))


def initialize(example: SyntheticExample, seed: int) -> None:
    """Draw u and v uniformly in the box (the original's init), reproducibly from ``seed``."""
    rng = np.random.default_rng(seed)
    for var in (example.u, example.v):
        var.assign(rng.uniform(-BOX, BOX, size=var.shape).astype(np.float32))


def trial_seed(seed: int, trial: int) -> int:
    """Trial k starts from the same point for every method and T, so the curves are paired."""
    return 1_000_003 * (seed + 1) + trial


class TrialRunner:
    """Runs trials of one compiled solver and records the distance every ``record_every`` iterations.

    The whole trajectory runs inside ONE ``tf.function`` (a graph loop over ``solver.run(record_every)``
    with the distance written to a ``TensorArray``), so recording costs no Python round trip; the solver
    itself is reused across trials (``reset_state`` + fresh u, v) and never recompiled. Without XLA the
    loop calls ``solver.step`` instead: the same graph, traced once instead of twice (``run`` traces
    its first step outside its loop), which halves the compile time of short runs.
    """

    def __init__(self, solver: bl.BilevelSolver, distance: Callable[[], tf.Tensor], record_every: int):
        self.solver, self.distance = solver, distance
        self.record_every = int(record_every)
        if self.record_every < 1:
            raise ValueError(f"record_every must be >= 1, got {record_every!r}")
        solver.reset_state()  # snapshots the solver state eagerly, before it is used inside a trace
        self._trajectory = tf.function(self._records)
        self.compiled = False  # set by run_trials after its untimed warm-up call

    def _records(self, n_records: tf.Tensor) -> tf.Tensor:
        out = tf.TensorArray(tf.float32, size=n_records)
        for i in tf.range(n_records):
            if self.solver.jit_compile:  # one XLA computation per record_every iterations
                self.solver.run(self.record_every)
            else:
                for _ in tf.range(self.record_every):
                    self.solver.step()
            out = out.write(i, self.distance())
        return out.stack()

    def run(self, iterations: int) -> np.ndarray:
        """Distances at iterations 0, r, 2r, ... and at ``iterations`` (the caller set u, v and state)."""
        full, rest = divmod(int(iterations), self.record_every)
        values = [np.atleast_1d(self.distance().numpy())]
        if full:
            values.append(self._trajectory(tf.constant(full)).numpy())
        if rest:
            self.solver.run(rest)
            values.append(np.atleast_1d(self.distance().numpy()))
        return np.concatenate(values)


def record_iterations(iterations: int, record_every: int) -> np.ndarray:
    """The upper-iteration index of each entry :meth:`TrialRunner.run` returns."""
    steps = list(range(0, int(iterations) + 1, int(record_every)))
    if steps[-1] != iterations:
        steps.append(int(iterations))
    return np.asarray(steps)


def subsample(n: int, max_points: int = 200) -> np.ndarray:
    """At most ``max_points`` indices spread evenly over range(n), always keeping the first and last."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def summarize(final: Sequence[float]) -> Dict[str, object]:
    """Mean, std and the per-trial list of final distances (NaN = a diverged trial, kept as null)."""
    x = np.asarray(final, dtype=float)
    ok = x[np.isfinite(x)]
    return dict(
        distance_to_solution=x.tolist(),
        distance_to_solution_mean=float(ok.mean()) if ok.size else float("nan"),
        distance_to_solution_std=float(ok.std()) if ok.size else float("nan"),
        diverged_trials=int(x.size - ok.size),
    )


# ============================================================================================ sweeps
class Cell(NamedTuple):
    """All trials of one curve family: distances (trials x records) and seconds per upper iteration."""

    curves: np.ndarray
    seconds: np.ndarray


def run_trials(
    runner: Union[TrialRunner, bl.BilevelSolver],
    example: SyntheticExample,
    *,
    trials: int,
    iterations: int,
    record_every: int,
    seed: int,
    schedule: Optional[Mapping[str, float]] = None,
    log: Optional[Callable[[str], None]] = None,
) -> Cell:
    """``trials`` runs of one solver (or of a :class:`TrialRunner`, to share its compiled trajectory
    between calls) from the paired starts of :func:`trial_seed`.

    Each trial resets the solver state (optimizer slots, schedule, learning rates; ``schedule`` overrides
    starting values, e.g. the ablation's lam_0) and draws fresh u, v. A warm-up call compiles the
    trajectory first, so the timings exclude tracing and XLA compilation.
    """
    if not isinstance(runner, TrialRunner):
        runner = TrialRunner(runner, example.distance, record_every)
    if runner.record_every != record_every:
        raise ValueError(f"the runner records every {runner.record_every} iterations, not {record_every}")
    solver = runner.solver
    if not runner.compiled:  # compile both code paths before timing anything
        runner.run(record_every + int(iterations) % record_every)
        runner.compiled = True
    curves, seconds = [], []
    for trial in range(int(trials)):
        solver.reset_state(**(schedule or {}))
        initialize(example, trial_seed(seed, trial))
        start = time.perf_counter()
        curves.append(runner.run(iterations))
        seconds.append((time.perf_counter() - start) / max(int(iterations), 1))
        if log is not None:
            log(
                f"  trial {trial + 1}/{trials}: distance {curves[-1][0]:.4g} -> {curves[-1][-1]:.4g} "
                f"({seconds[-1] * 1e6:.1f} us/iter)"
            )
    return Cell(np.asarray(curves, np.float32), np.asarray(seconds))


class CellCache:
    """One ``.npz`` per finished cell, so a rerun with the same ``--out`` skips what is done (a rerun with
    other sizes recomputes: the file stores the settings it was made with)."""

    def __init__(self, folder: str, signature: Mapping[str, Any]):
        self.folder = folder
        self.signature = json.dumps(signature, sort_keys=True, default=str)
        os.makedirs(folder, exist_ok=True)

    def _path(self, key: str) -> str:
        return os.path.join(self.folder, key.replace("/", "_") + ".npz")

    def get(self, key: str) -> Optional[Cell]:
        try:
            with np.load(self._path(key)) as z:
                if str(z["signature"]) != self.signature:
                    return None
                return Cell(z["curves"], z["seconds"])
        except (OSError, KeyError, ValueError):
            return None

    def put(self, key: str, cell: Cell) -> Cell:
        path = self._path(key)
        tmp = path + ".tmp.npz"
        np.savez(tmp, curves=cell.curves, seconds=cell.seconds, signature=np.asarray(self.signature))
        os.replace(tmp, path)
        return cell


def cell_metrics(cell: Cell) -> Dict[str, Any]:
    """Final distances (mean, std, per trial) and timing of one cell."""
    out = summarize(cell.curves[:, -1])
    out["seconds_per_upper_iteration"] = float(np.mean(cell.seconds))
    return out


def mean_curve(cell: Cell, iterations: np.ndarray, max_points: int = 200) -> Dict[str, List[float]]:
    """The mean (and std) over trials, subsampled to at most ``max_points`` points."""
    keep = subsample(cell.curves.shape[1], max_points)
    with np.errstate(all="ignore"):
        mean = np.nanmean(cell.curves, axis=0)[keep]
        std = np.nanstd(cell.curves, axis=0)[keep]
    return dict(iteration=iterations[keep].tolist(), distance_mean=mean.tolist(), distance_std=std.tolist())


Curves = Mapping[str, Tuple[Sequence[float], Sequence[float]]]


def plot_grid(path: str, grid: Mapping[str, Mapping[str, Curves]], *, xlabel: str, ylabel: str, title: str = "") -> str:
    """Panels grid[row][column] = {line label: (x, y)}, log y, one shared legend per row."""
    plt = plots.pyplot()
    rows = list(grid)
    cols = list(dict.fromkeys(c for r in rows for c in grid[r]))
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.6 * len(cols), 2.9 * len(rows)), squeeze=False)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ax = axes[i][j]
            for label, (x, y) in grid[r].get(c, {}).items():
                y = np.asarray(y, float)
                ax.plot(x, np.where(y > 0, y, np.nan), label=label, lw=1.2)
            ax.set_yscale("log")
            ax.set_title(f"{r}, {c}", fontsize=9)
            ax.grid(alpha=0.3, which="both")
            if i == len(rows) - 1:
                ax.set_xlabel(xlabel)
            if j == 0:
                ax.set_ylabel(ylabel)
        axes[i][0].legend(fontsize=7)
    return plots.save_figure(fig, path, title)

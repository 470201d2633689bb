"""The robustness grid's cells: the problems of each family, the solvers, and one worker's group of cells
(one compiled solver per family, solver, optimizer pair and T; problems and learning rates loaded into it)."""

from __future__ import annotations

import itertools
import os
import time
from typing import Any, Dict, List

import numpy as np

#: the generated families (bl.toy.FAMILIES) and how a cell is judged there
FAMILIES = ("quadratic", "ridge", "logistic", "reweighting")
SUCCESS = {
    "quadratic": ("u_error", 3e-2),
    "ridge": ("suboptimality", 1e-3),
    "logistic": ("suboptimality", 1e-3),
    "reweighting": ("suboptimality", 1e-3),
}
#: the quadratic family's instances are padded to this size (decoupled identity blocks: zero forever for every
#: solver), so one compiled solver serves every instance
QUADRATIC_SIZE = 100
#: solver name -> (bl.make_solver method, the optimizer slots that take the cell's lower optimizer, options)
SOLVERS: Dict[str, Any] = {
    "penalty": ("penalty", ("lower_optimizer",), {}),
    "penalty_auglag": ("penalty", ("lower_optimizer",), dict(schedule="auglag")),
    "approxgrad": ("approxgrad", ("lower_optimizer", "linear_optimizer"), {}),
    # the reference for the user's lower optimizer: a (near-)exact adjoint at the same lower iterates (30 warm-started
    # conjugate-gradient steps); a cell it misses is lost to the lower optimizer, not to the hypergradient estimate
    "oracle_adjoint": ("implicit", ("lower_optimizer",), dict(linear_solver="cg", linear_steps=30)),
}
CLASS_NAMES = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}
CHECK_EVERY = 1000


def family_instance(family: str, seed: int):
    """The seed's instance of a family, as a bl.toy problem (float32 variables)."""
    from bilevel_tf import toy

    if family == "quadratic":
        return toy.QuadraticBilevel(*pad_quadratic(toy.random_quadratic_data(seed), QUADRATIC_SIZE))
    return toy.FAMILIES[family](seed)


def pad_quadratic(data, size: int):
    """(H, M, m, d, e, alpha) embedded in size x size: the extra coordinates of v and u are decoupled (H = I,
    M = 0, m = d = e = 0), start at zero and get zero gradients from every solver, so they stay zero."""
    H, M, m, d, e, alpha = data
    n_v, n_u = M.shape
    Hp, Mp = np.eye(size), np.zeros((size, size))
    Hp[:n_v, :n_v], Mp[:n_v, :n_u] = H, M
    pad = lambda x, n: np.concatenate([x, np.zeros(size - n)])  # noqa: E731
    return Hp, Mp, pad(m, n_v), pad(d, n_v), pad(e, n_u), alpha


def measure(family: str, problem) -> float:
    kind, _ = SUCCESS[family]
    return problem.u_error() if kind == "u_error" else problem.suboptimality()


def _optimizer(kind: str, lr: float) -> Dict[str, Any]:
    return {"class_name": CLASS_NAMES[kind], "config": {"learning_rate": lr}}


def _build(solver: str, problem, upper: str, lower: str, inner_steps: int):
    import bilevel_tf as bl

    method, slots, options = SOLVERS[solver]
    return bl.make_solver(
        method,
        problem.problem(),
        upper_optimizer=_optimizer(upper, 1e-3),
        inner_steps=inner_steps,
        jit_compile=True,
        **{s: _optimizer(lower, 1e-3) for s in slots},
        **options,
    )


def _set_rates(solver, upper_lr: float, lower_lr: float) -> None:
    solver.upper_optimizer.learning_rate.assign(upper_lr)
    for name in ("lower_optimizer", "linear_optimizer"):
        if hasattr(solver, name):
            getattr(solver, name).learning_rate.assign(lower_lr)


def task_cells(task: Dict[str, Any]) -> List[tuple]:
    """(seed, upper lr, lower lr) of a task's cells: its explicit list, or every seed x rate pair."""
    if "cells" in task:
        return [tuple(c) for c in task["cells"]]
    return [(seed, u, v) for seed, (u, v) in itertools.product(task["seeds"], task["rates"])]


def run_group(task: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every (seed, upper lr, lower lr) cell of one (family, solver, optimizer kinds, T), on one compiled solver."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    family = task["family"]
    seeds = sorted({seed for seed, _, _ in task_cells(task)})
    instances = {seed: family_instance(family, seed) for seed in seeds}  # each solved once
    problem = instances[seeds[0]]
    solver = _build(task["solver"], problem, task["upper"], task["lower"], task["inner_steps"])
    rows = []
    for seed, upper_lr, lower_lr in task_cells(task):
        problem.load(instances[seed].np, reference=instances[seed].reference)
        solver.reset_state()
        _set_rates(solver, upper_lr, lower_lr)
        t0, curve = time.perf_counter(), []
        for _ in range(task["budget"] // CHECK_EVERY):
            solver.run(CHECK_EVERY)
            curve.append(measure(family, problem))
            if not np.isfinite(curve[-1]) or curve[-1] > 1e6:
                break
        rows.append(cell_row(task, seed, upper_lr, lower_lr, curve, time.perf_counter() - t0))
    return rows


def run_exact_group(task: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The ``exact`` row: the upper optimizer (Keras' rule, float64) on the exact hypergradient, v at v*(u)."""
    from keras_rules import KerasRule

    rows = []
    for seed, upper_lr, _ in task_cells(task):
        problem = family_instance(task["family"], seed)
        u, rule = problem.u0.copy(), KerasRule(task["upper"], upper_lr, problem.n_u)
        t0, curve = time.perf_counter(), []
        for k in range(task["budget"]):
            u = rule.step(u, problem.hypergradient(u))
            if (k + 1) % CHECK_EVERY == 0:
                problem.u.assign(u.astype(np.float32))
                curve.append(measure(task["family"], problem))
        rows.append(cell_row(task, seed, upper_lr, None, curve, time.perf_counter() - t0))
    return rows


def cell_row(task, seed, upper_lr, lower_lr, curve, seconds) -> Dict[str, Any]:
    _, threshold = SUCCESS[task["family"]]
    final = (
        curve[-1] if curve and np.isfinite(curve[-1]) and len(curve) == task["budget"] // CHECK_EVERY else float("inf")
    )
    return dict(
        family=task["family"],
        solver=task["solver"],
        seed=seed,
        upper=task["upper"],
        upper_lr=upper_lr,
        lower=task.get("lower"),
        lower_lr=lower_lr,
        inner_steps=task.get("inner_steps"),
        final=final,
        success=bool(final < threshold),
        curve=curve,
        seconds=seconds,
    )

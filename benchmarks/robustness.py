"""Robustness grid: does each solver reach the closed-form solution with the optimizers users pass?

    python benchmarks/robustness.py              # the grid below: 3-4 minutes on this 2-core CPU
    python benchmarks/robustness.py --full       # both sizes, 10000 iterations: about 10 minutes

Problems (``bilevel_tf.toy``): random strongly convex quadratic bilevel problems with known u*:
``conditioned`` (g's condition number 1, 10, 100, 1000; F well conditioned) and ``least_squares``
(g = 1/2 ||Av - Bu - c||^2 + mu/2 ||v||^2, Gaussian A, B, mu in {0.01, 0.1, 1}), two seeds each, u in R^4,
v in R^6 (``--full`` adds u in R^10, v in R^20). Optimizers: the same Keras optimizer class and learning
rate at both levels, Adam at 1e-3 / 1e-2 / 1e-1 and SGD at 1e-2 / 3e-2 / 1e-1. Solvers, each with every
option at its default and T = 10 inner steps: Penalty (default schedule), Penalty (``schedule="original"``),
ApproxGrad, RMD (plain SGD at the lower level, so SGD rows only) and V-PBGD; plus ``exact``, the upper
optimizer on the closed-form hypergradient (what any solver can at best do with that optimizer).

A cell succeeds when the relative error ||u - u*|| / ||u*|| is below 1e-2 at the end of the budget;
``reached`` is the first checked iteration (every 500) below 1e-2. Output in ``--out`` (default
``benchmarks/results/robustness``): ``results.json`` (every cell with its error curve), ``results.md``
(success rates per solver and per optimizer / problem) and ``heatmap.png`` (final error per cell).
"""
from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

SOLVERS = ("exact", "penalty", "penalty_original", "approxgrad", "rmd", "vpbgd")
#: each solver but "exact": (its bl.make_solver method, the optimizer slots that take the run's optimizer, its
#: other options; everything else at its default)
SOLVER_OPTIONS = {
    "penalty": ("penalty", ("upper_optimizer", "lower_optimizer"), {}),
    "penalty_original": ("penalty", ("upper_optimizer", "lower_optimizer"), dict(schedule="original")),
    "approxgrad": ("approxgrad", ("upper_optimizer", "lower_optimizer", "linear_optimizer"), {}),
    "rmd": ("rmd", ("upper_optimizer", "lower_optimizer"), {}),
    "vpbgd": ("vpbgd", ("upper_optimizer", "lower_optimizer", "inner_optimizer"), {}),
}
OPTIMIZERS = (("adam", 1e-3), ("adam", 1e-2), ("adam", 1e-1), ("sgd", 1e-2), ("sgd", 3e-2), ("sgd", 1e-1))
SUCCESS = 1e-2
CHECK_EVERY = 500


def problems(full: bool) -> List[Dict[str, Any]]:
    sizes = [(4, 6), (10, 20)] if full else [(4, 6)]
    out = []
    for (n_u, n_v), seed in itertools.product(sizes, (0, 1)):
        out += [dict(family="conditioned", n_u=n_u, n_v=n_v, cond=c, seed=seed) for c in (1, 10, 100, 1000)]
        out += [dict(family="least_squares", n_u=n_u, n_v=n_v, mu=mu, seed=seed) for mu in (0.01, 0.1, 1.0)]
    return out


def _data(p: Dict[str, Any]):
    from bilevel_tf import toy
    if p["family"] == "conditioned":
        return toy.conditioned_data(p["n_u"], p["n_v"], cond=p["cond"], seed=p["seed"])
    return toy.least_squares_data(p["n_u"], p["n_v"], mu=p["mu"], seed=p["seed"])


class _Exact:
    """The upper optimizer on the closed-form hypergradient, one compiled call per ``run``."""

    def __init__(self, q, optimizer):
        import tensorflow as tf
        self.q, self.optimizer = q, optimizer
        optimizer.build([q.u])
        self._J = tf.Variable(tf.zeros(q.J.shape), trainable=False)
        self._r = tf.Variable(tf.zeros(q.n_v), trainable=False)
        self._e = tf.Variable(tf.zeros(q.n_u), trainable=False)
        self._initial = [v.numpy() for v in optimizer.variables]

        @tf.function(jit_compile=True)
        def run(n):
            for _ in tf.range(n):
                u = self.q.u
                grad = (tf.linalg.matvec(self._J, tf.linalg.matvec(self._J, u) + self._r, transpose_a=True)
                        + q.alpha * (u - self._e))
                self.optimizer.apply_gradients([(grad, u)])
        self._run = run

    def reset_state(self):
        for var, value in zip(self.optimizer.variables, self._initial):
            var.assign(value)
        self._J.assign(self.q.J.astype("float32"))
        self._r.assign((self.q.j - self.q.d).astype("float32"))
        self._e.assign(self.q.e.astype("float32"))

    def run(self, steps):
        import tensorflow as tf
        self._run(tf.constant(steps))


def _build(solver: str, q, kind: str, lr: float, inner_steps: int):
    import keras
    import bilevel_tf as bl
    optimizer = {"class_name": {"adam": "Adam", "sgd": "SGD"}[kind], "config": {"learning_rate": lr}}
    if solver == "exact":
        return _Exact(q, keras.optimizers.get(optimizer))
    method, slots, options = SOLVER_OPTIONS[solver]
    return bl.make_solver(method, q.problem(), inner_steps=inner_steps, jit_compile=True, **options,
                          **{slot: optimizer for slot in slots})


def _optimizers(solver) -> list:
    names = ("upper_optimizer", "lower_optimizer", "linear_optimizer", "inner_optimizer", "optimizer")
    return [getattr(solver, n) for n in names if hasattr(solver, n)]


def run_group(task: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One solver, one optimizer class and one problem size: compiled once, reused for every cell."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    from bilevel_tf import toy
    rows = []
    first = task["problems"][0]
    q = toy.QuadraticBilevel(*_data(first))
    solver = _build(task["solver"], q, task["kind"], task["lrs"][0], task["inner_steps"])
    for p, lr in itertools.product(task["problems"], task["lrs"]):
        q.assign(*_data(p)[:5])
        solver.reset_state()
        for opt in _optimizers(solver):
            opt.learning_rate.assign(lr)
        t0 = time.perf_counter()
        errors, reached = [], None
        for k in range(task["budget"] // CHECK_EVERY):
            solver.run(CHECK_EVERY)
            err = q.u_error()
            errors.append(err)
            if reached is None and err < SUCCESS:
                reached = (k + 1) * CHECK_EVERY
            if not np.isfinite(err) or err > 1e6:
                break
        final = errors[-1] if np.isfinite(errors[-1]) else float("inf")
        rows.append(dict(solver=task["solver"], optimizer=task["kind"], lr=lr, problem=p,
                         condition_number=q.condition_number, final_error=final, reached=reached,
                         success=bool(final < SUCCESS), errors=errors, seconds=time.perf_counter() - t0,
                         schedule=solver.schedule() if hasattr(solver, "schedule") else {}))
    return rows


def plan(args) -> List[Dict[str, Any]]:
    tasks = []
    grid = problems(args.full)
    for solver in args.solvers:
        for kind in ("adam", "sgd"):
            if solver == "rmd" and kind != "sgd":  # RMD differentiates plain SGD steps
                continue
            lrs = [lr for k, lr in OPTIMIZERS if k == kind]
            for size in sorted({(p["n_u"], p["n_v"]) for p in grid}):
                tasks.append(dict(solver=solver, kind=kind, lrs=lrs, budget=args.budget,
                                  inner_steps=args.inner_steps,
                                  problems=[p for p in grid if (p["n_u"], p["n_v"]) == size]))
    return tasks


def _label(p: Dict[str, Any]) -> str:
    size = f"{p['n_u']}x{p['n_v']} " if p["n_u"] != 4 else ""
    knob = f"cond {p['cond']:g}" if p["family"] == "conditioned" else f"lsq mu {p['mu']:g}"
    return f"{size}{knob} s{p['seed']}"


def summarize(rows: List[Dict[str, Any]], solvers) -> str:
    def rate(sel):
        return f"{sum(r['success'] for r in sel)}/{len(sel)}" if sel else "-"

    def median_reached(sel):
        its = sorted(r["reached"] for r in sel if r["success"] and r["reached"])
        return str(its[len(its) // 2]) if its else "-"

    lines = ["| solver | all cells | Adam | SGD | conditioned | least squares | median iterations to 1e-2 |",
             "|---|---|---|---|---|---|---|"]
    for s in solvers:
        sel = [r for r in rows if r["solver"] == s]
        lines.append(f"| {s} | {rate(sel)} | {rate([r for r in sel if r['optimizer'] == 'adam'])} | "
                     f"{rate([r for r in sel if r['optimizer'] == 'sgd'])} | "
                     f"{rate([r for r in sel if r['problem']['family'] == 'conditioned'])} | "
                     f"{rate([r for r in sel if r['problem']['family'] == 'least_squares'])} | "
                     f"{median_reached(sel)} |")
    lines += ["", "Success per optimizer (rows) and solver (columns):", "",
              "| optimizer | " + " | ".join(solvers) + " |", "|---|" + "---|" * len(solvers)]
    for kind, lr in OPTIMIZERS:
        cells = [rate([r for r in rows if r["solver"] == s and r["optimizer"] == kind and r["lr"] == lr])
                 for s in solvers]
        lines.append(f"| {kind} {lr:g} | " + " | ".join(cells) + " |")
    lines += ["", "Success per problem (rows) and solver (columns), over the six optimizers:", "",
              "| problem | cond(H) | " + " | ".join(solvers) + " |", "|---|---|" + "---|" * len(solvers)]
    seen = []
    for r in rows:
        if r["problem"] not in seen:
            seen.append(r["problem"])
    for p in seen:
        sel = [r for r in rows if r["problem"] == p]
        cells = [rate([r for r in sel if r["solver"] == s]) for s in solvers]
        lines.append(f"| {_label(p)} | {sel[0]['condition_number']:.3g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def heatmap(rows: List[Dict[str, Any]], solvers, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    probs = []
    for r in rows:
        if r["problem"] not in probs:
            probs.append(r["problem"])
    cols = [(s, k, lr) for s in solvers for k, lr in OPTIMIZERS]
    grid = np.full((len(probs), len(cols)), np.nan)
    for r in rows:
        grid[probs.index(r["problem"]), cols.index((r["solver"], r["optimizer"], r["lr"]))] = \
            np.log10(max(min(r["final_error"], 1e3), 1e-8))
    fig, ax = plt.subplots(figsize=(1.6 + 0.32 * len(cols), 1.2 + 0.3 * len(probs)))
    norm = matplotlib.colors.TwoSlopeNorm(vcenter=np.log10(SUCCESS), vmin=-6, vmax=1)  # green = solved
    im = ax.imshow(grid, cmap="RdYlGn_r", norm=norm, aspect="auto")
    ax.set_yticks(range(len(probs)), [_label(p) for p in probs], fontsize=7)
    ax.set_xticks(range(len(cols)), [f"{k} {lr:g}" for _, k, lr in cols], rotation=90, fontsize=6)
    for i, s in enumerate(solvers):
        ax.axvline(i * len(OPTIMIZERS) - 0.5, color="k", lw=1)
        ax.text(i * len(OPTIMIZERS) + len(OPTIMIZERS) / 2 - 0.5, -0.8, s, ha="center", fontsize=8)
    solved = np.argwhere(grid < np.log10(SUCCESS))
    ax.scatter(solved[:, 1], solved[:, 0], s=6, c="k", marker="o")
    fig.colorbar(im, ax=ax, label="log10 final relative error of u")
    ax.set_title(f"relative error of u after the budget (dot: solved, < {SUCCESS:g}; blank: not applicable)",
                 pad=18, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--full", action="store_true", help="both problem sizes and a 10000-iteration budget")
    p.add_argument("--budget", type=int, default=None,
                   help="upper iterations per cell (default 5000, --full 10000), a multiple of 500")
    p.add_argument("--inner-steps", type=int, default=10, help="T of every solver")
    p.add_argument("--solvers", nargs="+", default=list(SOLVERS), choices=SOLVERS, help="solvers to run")
    p.add_argument("--workers", type=int, default=2, help="worker processes (one TensorFlow each)")
    p.add_argument("--out", default=None,
                   help="output folder (default benchmarks/results/robustness, or robustness_full with --full)")
    args = p.parse_args(argv)
    args.budget = args.budget or (10000 if args.full else 5000)
    args.out = args.out or str(Path(__file__).resolve().parent / "results" /
                               ("robustness_full" if args.full else "robustness"))
    if args.budget < CHECK_EVERY or args.budget % CHECK_EVERY:
        p.error(f"--budget must be a positive multiple of {CHECK_EVERY}")
    tasks = plan(args)
    tasks.sort(key=lambda t: -len(t["problems"]) * (3 if t["solver"] == "approxgrad" else 1))
    t0 = time.perf_counter()
    rows: List[Dict[str, Any]] = []
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(args.workers, maxtasksperchild=1) as pool:
        for i, group in enumerate(pool.imap_unordered(run_group, tasks), 1):
            rows += group
            done = sum(r["success"] for r in group)
            print(f"[{i}/{len(tasks)}] {group[0]['solver']} {group[0]['optimizer']}: {done}/{len(group)} cells "
                  f"solved ({time.perf_counter() - t0:.0f} s)", flush=True)
    order = {s: i for i, s in enumerate(args.solvers)}
    rows.sort(key=lambda r: (order[r["solver"]], r["optimizer"], r["lr"], json.dumps(r["problem"])))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = summarize(rows, args.solvers)
    result = dict(budget=args.budget, inner_steps=args.inner_steps, success_threshold=SUCCESS,
                  seconds=time.perf_counter() - t0, cells=rows)
    (out / "results.json").write_text(json.dumps(result, indent=1))
    (out / "results.md").write_text(f"# Robustness grid (budget {args.budget} upper iterations, T = "
                                    f"{args.inner_steps}, success: final relative error < {SUCCESS:g})\n\n"
                                    + table + "\n")
    heatmap(rows, args.solvers, out / "heatmap.png")
    print(table)
    print(f"wrote {out}/results.json, results.md, heatmap.png ({time.perf_counter() - t0:.0f} s)")
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()

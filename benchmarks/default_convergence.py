"""Do the library's defaults converge? Every registered method, built as ``bl.make_solver(name, problem)`` with
no other option, on unseen instances of the strongly convex quadratic family of ``bl.toy``.

    python benchmarks/default_convergence.py                      # every method, seeds 100-119: ~15 min
    python benchmarks/default_convergence.py --methods soba amigo --seeds 5 6 7
    python benchmarks/default_convergence.py --max-size 100       # the family's full size range

Instances: ``bl.toy.random_quadratic_data(seed, n_u, n_v)`` (float32), with n_u and n_v log-uniform in
[2, --max-size] and everything else drawn by the family generator from the seed: g's condition number 1-100
with its curvatures inside [0.5, 50], weak or strong coupling, RMS(u*) = 1. Each instance gets a fresh solver
with its defaults, started at u = v = 0, and runs --budget upper iterations on the full batch (``solver.run``,
one compiled call per checkpoint). Success: relative error ||u - u*|| / ||u*|| below --tolerance (3 %).

Output in --out (default ``benchmarks/results/default_convergence``): ``results.json`` (every run: the instance,
the error at every checkpoint, the learning rates the defaults chose) and ``results.md`` (per method: success
rate, median and worst final error, divergences, the failing instances).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

CHECKPOINTS = 6  # errors recorded at budget/6, 2 budget/6, ...


def instance_data(seed: int, max_size: int):
    """The seed's family instance with sizes log-uniform in [2, max_size] (drawn from the seed as well)."""
    from bilevel_tf import toy

    rng = np.random.default_rng([seed, 7919])
    n_u, n_v = (int(round(math.exp(rng.uniform(math.log(2), math.log(max_size))))) for _ in range(2))
    return toy.random_quadratic_data(seed, n_u=n_u, n_v=n_v)


def describe(data) -> Dict[str, Any]:
    H, M = data[0], data[1]
    eig = np.linalg.eigvalsh(H)
    J = np.linalg.solve(H, M)
    return dict(
        n_u=int(M.shape[1]),
        n_v=int(M.shape[0]),
        h_min=float(eig[0]),
        h_max=float(eig[-1]),
        cond=float(eig[-1] / eig[0]),
        coupling=float(np.linalg.norm(J, 2)),
        alpha=float(data[5]),
    )


def learning_rates(solver) -> Dict[str, float]:
    """Every optimizer slot's learning rate now (after the first step: what the defaults chose)."""
    import keras

    rates = {}
    for name, obj in solver._state.items():
        if isinstance(obj, keras.optimizers.Optimizer):
            rates[name] = float(keras.ops.convert_to_numpy(obj.learning_rate))
    for name in ("neumann_step",):
        value = getattr(solver, name, None)
        if isinstance(value, (int, float)):
            rates[name] = float(value)
    return rates


def run_one(task: Dict[str, Any]) -> Dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    warnings.filterwarnings("ignore")
    import bilevel_tf as bl
    from bilevel_tf import toy

    data = instance_data(task["seed"], task["max_size"])
    q = toy.QuadraticBilevel(*data)
    solver = bl.make_solver(task["method"], q.problem())
    t0 = time.perf_counter()
    errors, chunk = [], task["budget"] // CHECKPOINTS
    for _ in range(CHECKPOINTS):
        solver.run(chunk)
        errors.append(q.u_error())
        if not np.isfinite(errors[-1]):
            break
    final = errors[-1]
    return dict(
        method=task["method"],
        seed=task["seed"],
        **describe(data),
        errors=errors,
        final_error=final if np.isfinite(final) else None,
        diverged=not bool(np.isfinite(final)),
        success=bool(np.isfinite(final) and final < task["tolerance"]),
        learning_rates=learning_rates(solver),
        seconds=time.perf_counter() - t0,
    )


def summarize(rows: List[Dict[str, Any]], methods: List[str], tolerance: float) -> str:
    lines = [
        f"| method | success (error < {tolerance:g}) | median error | worst error | diverged | failing seeds |",
        "|---|---|---|---|---|---|",
    ]
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        finite = [r["final_error"] for r in mine if r["final_error"] is not None]
        ok = sum(r["success"] for r in mine)
        worst = "nan" if len(finite) < len(mine) else f"{max(finite):.2g}"
        median = f"{np.median(finite):.2g}" if finite else "nan"
        failing = ", ".join(
            f"{r['seed']} (cond {r['cond']:.0f}, L {r['h_max']:.0f}, "
            f"{'nan' if r['diverged'] else format(r['final_error'], '.2g')})"
            for r in mine
            if not r["success"]
        )
        lines.append(
            f"| {method} | {ok}/{len(mine)} | {median} | {worst} | {sum(r['diverged'] for r in mine)} | "
            f"{failing or '-'} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    import bilevel_tf.solvers.registry as registry

    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    p.add_argument("--methods", nargs="+", default=list(registry.METHODS), choices=registry.METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=list(range(100, 120)), help="family instances")
    p.add_argument("--max-size", type=int, default=20, help="n_u and n_v are log-uniform in [2, MAX_SIZE]")
    p.add_argument("--budget", type=int, default=3000, help=f"upper iterations (a multiple of {CHECKPOINTS})")
    p.add_argument("--tolerance", type=float, default=0.03, help="success: relative error of u below this")
    p.add_argument("--workers", type=int, default=2, help="worker processes (one TensorFlow each)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "default_convergence"))
    args = p.parse_args(argv)
    if args.budget < CHECKPOINTS or args.budget % CHECKPOINTS or args.max_size < 2:
        p.error(f"--budget must be a positive multiple of {CHECKPOINTS} and --max-size at least 2")
    tasks = [
        dict(method=m, seed=s, max_size=args.max_size, budget=args.budget, tolerance=args.tolerance)
        for m in args.methods
        for s in args.seeds
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, t0 = [], time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers, maxtasksperchild=20) as pool:
        for i, row in enumerate(pool.imap_unordered(run_one, tasks), 1):
            rows.append(row)
            print(
                f"[{i}/{len(tasks)}] {row['method']} seed {row['seed']}: error {row['final_error']} "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    rows.sort(key=lambda r: (args.methods.index(r["method"]), r["seed"]))
    settings = dict(seeds=args.seeds, max_size=args.max_size, budget=args.budget, tolerance=args.tolerance)
    (out / "results.json").write_text(json.dumps(dict(settings=settings, runs=rows), indent=1))
    table = summarize(rows, args.methods, args.tolerance)
    (out / "results.md").write_text(
        f"# Defaults on the quadratic family\n\n`bl.make_solver(name, problem)` with no other option; seeds "
        f"{args.seeds[0]}-{args.seeds[-1]} ({len(args.seeds)} instances), sizes 2-{args.max_size}, {args.budget} "
        f"upper iterations, full batch, float32. Failing seeds: (g's condition number, its top curvature L, the "
        f"final error).\n\n{table}\n"
    )
    print(table)


if __name__ == "__main__":
    main()

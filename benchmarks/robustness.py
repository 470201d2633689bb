"""Robustness grid: does each solver reach the exact answer with the settings a user would type, on problems
nobody tuned it on?

    python benchmarks/robustness.py                    # the whole grid (hours on a 2-core CPU; resumable)
    python benchmarks/robustness.py --quick            # 2 seeds, T in {1, 10}, 1e-3 and 3e-2 only: minutes
    python benchmarks/robustness.py --families quadratic --solvers penalty exact

Problems: the generated families of ``bilevel_tf.toy`` (exact float64 answers): random strongly convex
quadratics (sizes 2-100, g's condition number 1-100, weak or strong coupling; success: relative error of u
below 3 %), regularization selection by ridge and by L2-logistic regression with a per-feature exp(u) penalty,
and data reweighting with a linear model (success: relative suboptimality (F(u) - F*) / (F(u0) - F*) below
1e-3). Seeds 0-4 unless ``--seeds``. Optimizers: Adam, SGD and RMSprop at 1e-3, 3e-3, 1e-2 and 3e-2, chosen
independently for u and for v (144 pairs); T in {1, 5, 10, 20}; 10 000 upper iterations.

Solvers, each built by ``bl.make_solver`` with every other option at its default: ``penalty`` (the default
schedule), ``penalty_auglag`` (the previous default), ``approxgrad``; and ``exact``, the upper optimizer (Keras'
update rule in float64) on the exact hypergradient: the best any solver can do with that upper optimizer. A cell
whose ``exact`` row fails cannot be won by any solver; the report gives success rates over the solvable cells
and, in brackets, over all cells.

Output in ``--out`` (default ``benchmarks/results/robustness``): ``results.json`` (every cell with its curve,
written as groups finish: a rerun skips the cells already there), ``results.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from keras_rules import KINDS  # noqa: E402
from robustness_cells import FAMILIES, SOLVERS, run_exact_group, run_group, task_cells  # noqa: E402
from robustness_report import failures, summary  # noqa: E402

RATES = (1e-3, 3e-3, 1e-2, 3e-2)
INNER_STEPS = (1, 5, 10, 20)
ALL_SOLVERS = tuple(SOLVERS) + ("exact",)


def plan(args) -> List[Dict[str, Any]]:
    """One task per compiled solver: (family, solver, upper kind, lower kind, T) over seeds and rate pairs."""
    if args.sample:
        return sampled_plan(args)
    tasks = []
    rates = list(itertools.product(args.rates, args.rates))
    for family, solver, upper in itertools.product(args.families, args.solvers, KINDS):
        base = dict(family=family, solver=solver, upper=upper, seeds=list(args.seeds), budget=args.budget)
        if solver == "exact":  # no lower level: one task per upper optimizer
            tasks.append(dict(base, rates=[(r, None) for r in args.rates]))
            continue
        for lower, T in itertools.product(KINDS, args.inner_steps):
            tasks.append(dict(base, lower=lower, inner_steps=T, rates=rates))
    return tasks


def sampled_plan(args) -> List[Dict[str, Any]]:
    """``args.sample`` cells per family drawn uniformly (fixed seed) from the whole grid of (seed, optimizer
    kinds and rates, T); every solver runs the same cells (a paired comparison) and ``exact`` runs their upper
    optimizers. Tasks carry their cells explicitly, grouped by compiled solver."""
    rng = np.random.default_rng(args.sample_seed)
    grid = list(itertools.product(KINDS, KINDS, args.inner_steps, args.seeds, args.rates, args.rates))
    groups: Dict[tuple, set] = {}
    for family in args.families:
        for index in rng.choice(len(grid), size=min(args.sample, len(grid)), replace=False):
            upper, lower, T, seed, upper_lr, lower_lr = grid[index]
            for solver in args.solvers:
                if solver == "exact":
                    groups.setdefault((family, solver, upper, None, None), set()).add((seed, upper_lr, None))
                else:
                    groups.setdefault((family, solver, upper, lower, T), set()).add((seed, upper_lr, lower_lr))
    return [
        dict(family=f, solver=s, upper=u, lower=lo, inner_steps=T, budget=args.budget, cells=sorted(cells))
        for (f, s, u, lo, T), cells in groups.items()
    ]


def _key(row: Dict[str, Any]) -> tuple:
    return (
        row["family"],
        row["solver"],
        row["upper"],
        row.get("lower"),
        row.get("inner_steps"),
        row["seed"],
        row["upper_lr"],
        row.get("lower_lr"),
    )


def _task_keys(task: Dict[str, Any]) -> List[tuple]:
    return [
        (task["family"], task["solver"], task["upper"], task.get("lower"), task.get("inner_steps"), seed, u, v)
        for seed, u, v in task_cells(task)
    ]


def _work(task: Dict[str, Any]) -> List[Dict[str, Any]]:
    return run_exact_group(task) if task["solver"] == "exact" else run_group(task)


def run(args) -> List[Dict[str, Any]]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    rows = json.loads(path.read_text())["cells"] if path.exists() else []
    done = {_key(r) for r in rows}
    tasks = [t for t in plan(args) if not set(_task_keys(t)) <= done]
    tasks.sort(key=lambda t: (t["solver"] != "exact", -(t.get("inner_steps") or 0)))  # long groups first
    print(f"{len(tasks)} groups to run ({len(done)} cells already in {path})", flush=True)
    t0 = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers, maxtasksperchild=4) as pool:
        for i, group in enumerate(pool.imap_unordered(_work, tasks), 1):
            rows = [r for r in rows if _key(r) not in {_key(g) for g in group}] + group
            path.write_text(json.dumps(dict(budget=args.budget, cells=rows)))
            g = group[0]
            print(
                f"[{i}/{len(tasks)}] {g['family']} {g['solver']} {g['upper']}/{g.get('lower')} "
                f"T={g.get('inner_steps')}: {sum(r['success'] for r in group)}/{len(group)} "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    p.add_argument("--solvers", nargs="+", default=list(ALL_SOLVERS), choices=ALL_SOLVERS)
    p.add_argument("--seeds", nargs="+", type=int, default=list(range(5)), help="instances of each family")
    p.add_argument("--inner-steps", nargs="+", type=int, default=list(INNER_STEPS), help="T values")
    p.add_argument("--rates", nargs="+", type=float, default=list(RATES), help="learning rates (both levels)")
    p.add_argument("--budget", type=int, default=10000, help="upper iterations per cell (a multiple of 1000)")
    p.add_argument("--quick", action="store_true", help="seeds 0-1, T in {1, 10}, rates 1e-3 and 3e-2")
    p.add_argument(
        "--sample",
        type=int,
        default=0,
        help="run N cells per family drawn at random from the grid (the same cells for every solver) "
        "instead of the whole grid; 0 = the whole grid",
    )
    p.add_argument("--sample-seed", type=int, default=0, help="seed of --sample's draw")
    p.add_argument("--workers", type=int, default=2, help="worker processes (one TensorFlow each)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "robustness"))
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.inner_steps, args.rates = [0, 1], [1, 10], [1e-3, 3e-2]
    if args.budget < 1000 or args.budget % 1000:
        p.error("--budget must be a positive multiple of 1000")
    rows = run(args)
    solvers = [s for s in ALL_SOLVERS if any(r["solver"] == s for r in rows)]
    report = summary(rows, solvers, args.budget)
    report += "".join(f"\n\nSolvable cells {s} misses:\n\n" + failures(rows, s) for s in solvers if s != "exact")
    (Path(args.out) / "results.md").write_text("# Robustness grid\n\n" + report + "\n")
    print(report)


if __name__ == "__main__":
    main()

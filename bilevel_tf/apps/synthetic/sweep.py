"""The synthetic sweep of the paper's section 3.1 (figures 1-2, supp. figure 7): every (example, method, T)
cell run from random starts, cached per cell, with the figures, TensorBoard series and the summary table.
``synthetic_examples/test_synthetic.py`` holds the constants and flags and calls :func:`run_sweep`."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Sequence

import numpy as np

import bilevel_tf as bl
from bilevel_tf.runner import experiment, results_file, tensorboard_logs
from bilevel_tf.published import cells

from . import problems, config as synthetic_config


def run_sweep(args, ablation_lambdas: Sequence[float], max_curve_points: int) -> Dict[str, Any]:
    """Run (or take from the cell cache) every cell, write results.json and the figures; returns the metrics."""
    log = print if args.verbose >= 1 else (lambda *a, **k: None)
    cell = _cached_cell_runner(args, log)
    steps = problems.record_iterations(args.iterations, args.record_every)
    metrics, history = {}, []
    for e in args.examples:
        example = problems.make_example(e, args.dim, args.seed)
        for method in args.methods:
            for t in args.ts:
                c = cell(f"ex{e}/{method}/T{t}", example, lambda: _solver(args, example, method, t), args.trials)
                metrics.setdefault(f"ex{e}", {}).setdefault(method, {})[f"T{t}"] = problems.cell_metrics(c)
                history.append(dict(example=e, method=method, T=t, **problems.mean_curve(c, steps, max_curve_points)))
    if not args.skip_ablation:
        metrics["ablation"] = run_ablation(args, cell, steps, history, ablation_lambdas, max_curve_points)

    write_figures(args, history)
    write_tensorboard(args, history)
    print_table(metrics)
    penalty = _penalty_seconds(metrics)
    # the solvers' full configurations, one per (method, T); built after every cell so nothing above changes
    solvers = {f"{method}/T{t}": _solver(args, example, method, t) for method in args.methods for t in args.ts}
    results_file.write_results(
        args,
        metrics=metrics,
        history=history,
        dataset="synthetic",
        solver=solvers,
        paper=cells.paper_entry(args, "synthetic"),
        seconds_per_upper_iteration=float(np.mean(penalty)) if penalty else None,
        config=results_file.config_of(args, settings=dataclasses.asdict(synthetic_config.PAPER_SETTINGS)),
    )
    return metrics


def _cached_cell_runner(args, log: Callable[..., None]) -> Callable[..., problems.Cell]:
    """``cell(key, example, make_runner, trials, schedule=None)``: the cell's trials from the cell cache (in the
    checkpoint folder, keyed by the run's sizes) when it holds ``trials`` of them, else run and cached."""
    trial_log = log if args.verbose >= 2 else None
    sizes = dict(
        dim=args.dim,
        iterations=args.iterations,
        record_every=args.record_every,
        seed=args.seed,
        jit=args.jit,
        settings=synthetic_config.PAPER_SETTINGS,
    )
    cache = problems.CellCache(experiment.checkpoint_dir(args), sizes)
    trial_options = dict(iterations=args.iterations, record_every=args.record_every, seed=args.seed, log=trial_log)

    def cell(key, example, make_runner, trials, schedule=None):
        done = cache.get(key)
        if done is not None and done.curves.shape[0] == trials:
            log(f"{key}: cached")
            return done
        result = problems.run_trials(make_runner(), example, trials=trials, schedule=schedule, **trial_options)
        m = problems.cell_metrics(result)
        log(
            f"{key}: final distance {m['distance_to_solution_mean']:.4g} +- {m['distance_to_solution_std']:.2g}, "
            f"{m['seconds_per_upper_iteration'] * 1e6:.1f} us/iter"
        )
        return cache.put(key, result)

    return cell


def _solver(args, example: problems.SyntheticExample, method: str, t: int) -> bl.BilevelSolver:
    """``method`` on ``example`` with T = ``t`` and the paper's settings (supp. E.1)."""
    return bl.make_solver(
        method,
        example.problem,
        inner_steps=t,
        jit_compile=args.jit,
        **synthetic_config.SOLVER_OPTIONS[method](synthetic_config.PAPER_SETTINGS),
    )


def _penalty_seconds(metrics: Dict[str, Any]) -> List[float]:
    """Penalty's seconds per upper iteration in every (example, T) cell: the run's top-level timing is their mean
    (per cell timings are in the metrics)."""
    return [
        m["seconds_per_upper_iteration"]
        for k, by_method in metrics.items()
        if k.startswith("ex")
        for m in by_method.get("penalty", {}).values()
    ]


def run_ablation(args, cell, steps, history, ablation_lambdas, max_curve_points):
    """Penalty on Ex.1 with lam_0 in ``ablation_lambdas``, with and without nu (one solver per (T, nu))."""
    example = problems.make_example(1, args.dim, args.seed)
    out = {}
    for use_nu in (True, False):
        settings = dataclasses.replace(synthetic_config.PAPER_SETTINGS, use_nu=use_nu)
        row = "with_nu" if use_nu else "without_nu"
        for t in args.ts:
            runners = []

            def make_runner():  # one compiled solver per (T, nu), shared by every lam_0
                if not runners:
                    solver = bl.make_solver(
                        "penalty",
                        example.problem,
                        inner_steps=t,
                        jit_compile=args.jit,
                        **synthetic_config.SOLVER_OPTIONS["penalty"](settings),
                    )
                    runners.append(problems.TrialRunner(solver, example.distance, args.record_every))
                return runners[0]

            for lam0 in ablation_lambdas:
                c = cell(
                    f"ablation/{row}/T{t}/lam{lam0:g}",
                    example,
                    make_runner,
                    args.ablation_trials,
                    schedule=dict(lam=lam0),
                )
                out.setdefault(row, {}).setdefault(f"T{t}", {})[f"lam0={lam0:g}"] = problems.cell_metrics(c)
                history.append(
                    dict(
                        example=1,
                        method="penalty",
                        T=t,
                        ablation=dict(lam0=lam0, use_nu=use_nu),
                        **problems.mean_curve(c, steps, max_curve_points),
                    )
                )
    return out


def write_figures(args, history):
    """fig2 (Ex.1, Ex.2), fig3 (Ex.3, Ex.4): panels per example and T, a line per method; fig5: the
    ablation, panels per nu and T, a line per lam_0. Mean distance over trials, log scale."""
    figures = {"fig2.png": {}, "fig3.png": {}, "fig5.png": {}}
    for h in history:
        xy = (h["iteration"], h["distance_mean"])
        if "ablation" in h:
            row = "with nu" if h["ablation"]["use_nu"] else "without nu"
            label, name = f"lam0={h['ablation']['lam0']:g}", "fig5.png"
        else:
            row, label = f"Ex.{h['example']}", h["method"]
            name = "fig2.png" if h["example"] in (1, 2) else "fig3.png"
        figures[name].setdefault(row, {}).setdefault(f"T={h['T']}", {})[label] = xy
    titles = {
        "fig2.png": "paper fig. 1 (Ex.1, Ex.2)",
        "fig3.png": "paper fig. 2 (Ex.3, Ex.4)",
        "fig5.png": "Penalty on Ex.1: lam_0 and nu (supp. fig. 7)",
    }
    for name, grid in figures.items():
        if grid:
            problems.plot_grid(
                experiment.output_path(args, name),
                grid,
                xlabel="upper iteration",
                ylabel="distance to solution",
                title=titles[name],
            )


def write_tensorboard(args, history):
    """--tensorboard: each curve as a run named after its example, method and T (and ablation setting)."""
    for h in history:
        run = f"ex{h['example']}/{h['method']}/T{h['T']}"
        if "ablation" in h:
            run += f"/lam0={h['ablation']['lam0']:g}_nu={h['ablation']['use_nu']}"
        tensorboard_logs.write_series(args, run, h["iteration"], {"distance_mean": h["distance_mean"]})


def print_table(metrics):
    for ex, by_method in metrics.items():
        if not ex.startswith("ex"):
            continue
        for method, by_t in by_method.items():
            distances = "  ".join(
                f"{t}: {m['distance_to_solution_mean']:.3g}+-{m['distance_to_solution_std']:.2g}"
                for t, m in by_t.items()
            )
            print(f"[synthetic] {ex} {method:<10} final distance  {distances}", flush=True)

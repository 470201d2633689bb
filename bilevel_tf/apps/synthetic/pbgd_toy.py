"""The PBGD toy problem (Shen & Chen 2023, V-PBGD/toy) solved with ``bl.VPBGD`` from many random starts:
the run behind ``synthetic_examples/pbgd_toy.py`` (which holds the constants, the flags and the problem's
description). The toy's functions live in :mod:`bilevel_tf.apps.synthetic.toy_problem`."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import keras
import numpy as np

import bilevel_tf as bl
from bilevel_tf.runner import experiment, plots, results_file, tensorboard_logs, timing
from bilevel_tf.published import cells

from . import problems, toy_problem


def run_toy(args, minimum_radius: float) -> Dict[str, Any]:
    """Run every start until its projected gradient is below ``args.tolerance`` (or the iteration cap); a final
    x within ``minimum_radius`` of a local minimum of phi counts as there. Writes results.json and
    hyper_objective.png; returns the metrics."""
    toy = toy_problem.make_toy(args.num_starts, args.seed)
    solver = _toy_solver(args, toy.problem)
    pg_norm = toy_problem.toy_projected_gradient_norm(toy, args.gamma, args.lr / max(args.gamma, 1.0))
    x0 = toy.x.numpy()

    history, first_converged, done = _run_until_converged(args, solver, pg_norm)
    # timing excludes the first chunk, which includes tracing and compilation
    timed = done - history[0]["iteration"]
    seconds_per_iteration = (history[-1]["seconds"] - history[0]["seconds"]) / timed if timed else None

    x, minima, metrics = _toy_metrics(toy, minimum_radius, history, first_converged, done)
    plot(experiment.output_path(args, "hyper_objective.png"), x, minima, x0)
    tensorboard_logs.write_records(args, history, step="iteration")
    results_file.write_results(
        args,
        metrics=metrics,
        history=subsample(history),
        dataset="pbgd_toy",
        paper=cells.paper_entry(args, "pbgd_toy"),
        solver=solver,
        seconds_per_upper_iteration=seconds_per_iteration,
        summary_keys=["fraction_at_global_minimum", "fraction_at_a_local_minimum", "converged_fraction"],
    )
    return metrics


def _toy_solver(args, problem: bl.BilevelProblem) -> bl.VPBGD:
    """V-PBGD with plain SGD steps and a fixed penalty weight gamma, as PBGD's toy script."""
    return bl.VPBGD(
        problem,
        keras.optimizers.SGD(args.lr),
        keras.optimizers.SGD(args.lr),
        inner_steps=args.inner_steps,
        inner_optimizer=keras.optimizers.SGD(args.inner_lr),
        gamma_init=args.gamma,
        gamma_max=args.gamma,
        gamma_argmax_step=1,
        jit_compile=args.jit,
    )


def _run_until_converged(args, solver: bl.VPBGD, pg_norm) -> Tuple[List[Dict[str, Any]], np.ndarray, int]:
    """Upper iterations in chunks of ``args.check_every`` until every start's projected gradient is below
    ``args.tolerance`` or ``args.max_iterations`` are done. Returns the per-chunk history, the iteration at which
    each start first converged (-1: never) and the iterations done."""
    first_converged = np.full(args.num_starts, -1)
    history, done, clock = [], 0, timing.Stopwatch()
    while done < args.max_iterations:
        chunk = min(args.check_every, args.max_iterations - done)
        solver.run(chunk)
        done += chunk
        pg = pg_norm().numpy()
        first_converged[(first_converged < 0) & (pg <= args.tolerance)] = done
        history.append(
            dict(
                iteration=done,
                converged_fraction=float(np.mean(first_converged >= 0)),
                max_projected_gradient=float(np.max(pg)),
                seconds=clock(),
            )
        )
        if args.verbose >= 2 or (args.verbose == 1 and len(history) % 100 == 0):
            print(
                f"iteration {done}: converged {history[-1]['converged_fraction']:.3f}, "
                f"max projected gradient {history[-1]['max_projected_gradient']:.2e}",
                flush=True,
            )
        if np.all(first_converged >= 0):
            break
    return history, first_converged, done


def _toy_metrics(
    toy: toy_problem.ToyProblem,
    minimum_radius: float,
    history: List[Dict[str, Any]],
    first_converged: np.ndarray,
    done: int,
) -> Tuple[np.ndarray, np.ndarray, Dict[str, Any]]:
    """(the final x, phi's local minima, the metrics): the fraction of starts at each local minimum (within
    ``minimum_radius``) and at the global one, convergence, the spread of the final x and the lower-level gap."""
    x, y = toy.x.numpy().astype(np.float64), toy.y.numpy().astype(np.float64)
    minima = toy_problem.toy_local_minima()
    nearest = np.abs(x[:, None] - minima[None, :]).argmin(axis=1)
    at_minimum = np.abs(x - minima[nearest]) <= minimum_radius
    per_minimum = [
        dict(
            x=float(m),
            phi=float(toy_problem.toy_hyper_objective(m)),
            fraction=float(np.mean(at_minimum & (nearest == i))),
        )
        for i, m in enumerate(minima)
    ]
    global_i = int(np.argmin([m["phi"] for m in per_minimum]))
    used = np.where(first_converged >= 0, first_converged, done)
    metrics = dict(
        local_minima=per_minimum,
        fraction_at_global_minimum=per_minimum[global_i]["fraction"],
        fraction_at_a_local_minimum=float(np.mean(at_minimum)),
        converged_fraction=float(np.mean(first_converged >= 0)),
        final_x=dict(
            mean=float(x.mean()),
            std=float(x.std()),
            min=float(x.min()),
            max=float(x.max()),
            quartiles=np.quantile(x, [0.25, 0.5, 0.75]).tolist(),
        ),
        max_lower_level_gap=float(np.max(np.abs(x + y))),  # |x + y| = distance of y to argmin_y g
        iterations_used=dict(total=done, median=float(np.median(used)), max=int(used.max())),
        final_projected_gradient_max=history[-1]["max_projected_gradient"],
    )
    return x, minima, metrics


def subsample(history, max_points=200):
    return [history[i] for i in problems.subsample(len(history), max_points)]


def plot(path, x, minima, x0):
    """phi on [0, 3] with the final iterates (and the local minima) marked; histogram of final x."""
    plt = plots.pyplot()
    grid = np.linspace(*toy_problem.TOY_X_BOX, 2001)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(grid, toy_problem.toy_hyper_objective(grid), color="k", lw=1.2, label="phi(x) = f(x, -x)")
    a.scatter(
        minima,
        toy_problem.toy_hyper_objective(minima),
        marker="x",
        s=40,
        color="tab:blue",
        label="local minima of phi",
        zorder=2,
    )
    a.scatter(
        x,
        toy_problem.toy_hyper_objective(x),
        s=90,
        facecolors="none",
        edgecolors="tab:red",
        alpha=0.5,
        label=f"{len(x)} final x",
        zorder=3,
    )
    a.set_xlabel("x")
    a.set_ylabel("phi(x)")
    a.legend(fontsize=8)
    bins = np.linspace(toy_problem.TOY_X_BOX[0], toy_problem.TOY_X_BOX[1], 61)
    b.hist(np.clip(x0, *toy_problem.TOY_X_BOX), bins=bins, alpha=0.4, label="start x (clipped to [0, 3])")
    b.hist(x, bins=bins, alpha=0.8, label="final x")
    b.set_xlabel("x")
    b.set_ylabel("runs")
    b.legend(fontsize=8)
    plots.save_figure(fig, path, "V-PBGD (gamma constant) on the PBGD toy problem")

"""Synthetic bilevel problems with known solutions (paper section 3.1, figures 1-2, supp. figure 7).

Runs GD, RMD, ApproxGrad and Penalty on Ex.1..Ex.4 (see ``bilevel_tf/apps/synthetic.py``) for every T,
TRIALS times from random starts in the box, and records the distance to the solution every RECORD_EVERY
upper iterations. Outputs in --out: results.json (final distance mean/std/per trial and seconds per upper
iteration for each example/method/T, mean curves in "history"), fig2.png (Ex.1, Ex.2), fig3.png (Ex.3,
Ex.4) and fig5.png (the lam_0 / nu ablation of Penalty on Ex.1).

    python synthetic_examples/test_synthetic.py --smoke
    python synthetic_examples/test_synthetic.py --examples 1 2 --ts 1 10 --trials 5

Each finished (example, method, T) cell is saved under <out>/checkpoints/bilevel, so a rerun with the same
--out and sizes skips the finished cells (--fresh starts over; --checkpoint-every is not used: a cell is
the unit of resumption). XLA is on by default (--no-jit turns it off). --verbose 0 prints only the final
table, 1 a line per cell, 2 also a line per trial.
"""
import dataclasses
import os

import numpy as np

import bilevel_tf as bl
from bilevel_tf import experiment, paper_cells, tensorboard_logs
from bilevel_tf.apps import synthetic

EXAMPLES = [1, 2, 3, 4]
METHODS = ["gd", "rmd", "approxgrad", "penalty"]
TS = [1, 5, 10]                           # T: lower steps (and ApproxGrad linear steps) per upper iteration
TRIALS = 20
ITERATIONS = 40000                        # K upper iterations
RECORD_EVERY = 10
DIM = 10                                  # paper: u, v in R^10 (the original code: two blocks of 10)
ABLATION_LAMBDAS = [0.0, 1e-4, 1e-2, 1.0]  # lam_0 of supp. figure 7 (Penalty on Ex.1)
ABLATION_TRIALS = 5
MAX_CURVE_POINTS = 200                    # history curves are subsampled to this many points
SMOKE = dict(dim=4, trials=2, iterations=60, record_every=10, max_t=1, ablation_trials=1, examples=(1, 4))


def add_flags(p) -> None:
    p.add_argument("--examples", type=int, nargs="+", default=EXAMPLES, choices=list(synthetic.EXAMPLES),
                   help="which examples: 1, 2 (paper fig. 1a/b), 3, 4 (fig. 2a/b)")
    p.add_argument("--methods", nargs="+", default=METHODS, choices=list(synthetic.METHODS),
                   help="solvers to compare (--method X runs X only)")
    p.add_argument("--ts", type=int, nargs="+", default=TS, help="values of T (lower steps per upper iteration)")
    p.add_argument("--trials", type=int, default=TRIALS, help="random starts per (example, method, T)")
    p.add_argument("--iterations", type=int, default=ITERATIONS, help="upper iterations per trial (paper's K)")
    p.add_argument("--record-every", type=int, default=RECORD_EVERY,
                   help="record the distance to the solution every N upper iterations")
    p.add_argument("--dim", type=int, default=DIM, help="dimension of u and of v")
    p.add_argument("--ablation-trials", type=int, default=ABLATION_TRIALS,
                   help="trials per (T, lam_0, nu) of the Penalty ablation (fig5)")
    p.add_argument("--skip-ablation", action="store_true", help="do not run the ablation (no fig5.png)")
    synthetic.add_jit_flag(p)


def resolve(p, args) -> None:
    if args.method is not None:
        args.methods = [args.method]
    synthetic.resolve_jit(args)
    if args.smoke:  # every solver costs ~1 s of tracing: a small grid touching every method and figure
        for name in ("dim", "trials", "iterations", "record_every", "ablation_trials"):
            setattr(args, name, min(getattr(args, name), SMOKE[name]))
        args.ts = [t for t in args.ts if t <= SMOKE["max_t"]] or [min(args.ts)]
        args.examples = [e for e in args.examples if e in SMOKE["examples"]] or args.examples[:1]
    for name in ("trials", "iterations", "record_every", "dim", "ablation_trials"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if min(args.ts) < 1:
        p.error("--ts values must be >= 1")
    args.method = "+".join(args.methods)  # results.json's "method" field


def main(argv=None):
    p = experiment.parser(__doc__, method=None, methods=synthetic.METHODS, inner_steps=None, data_dir=False,
                          out=os.path.join("runs", "synthetic"), mixed_precision=False)  # no Keras model
    add_flags(p)
    args = experiment.parse(p, argv, "synthetic")
    resolve(p, args)

    def run_all(_run):  # inside the locked output folder (experiment.Run)
        log = print if args.verbose >= 1 else (lambda *a, **k: None)
        trial_log = log if args.verbose >= 2 else None
        sizes = dict(dim=args.dim, iterations=args.iterations, record_every=args.record_every, seed=args.seed,
                     jit=args.jit, settings=synthetic.PAPER_SETTINGS)
        cache = synthetic.CellCache(experiment.checkpoint_dir(args), sizes)
        steps = synthetic.record_iterations(args.iterations, args.record_every)
        trial_options = dict(iterations=args.iterations, record_every=args.record_every, seed=args.seed, log=trial_log)

        def cell(key, example, make_runner, trials, setup=None):
            done = cache.get(key)
            if done is not None and done.curves.shape[0] == trials:
                log(f"{key}: cached")
                return done
            result = synthetic.run_trials(make_runner(), example, trials=trials, setup=setup, **trial_options)
            m = synthetic.cell_metrics(result)
            log(f"{key}: final distance {m['distance_to_solution_mean']:.4g} +- {m['distance_to_solution_std']:.2g}, "
                f"{m['seconds_per_upper_iteration'] * 1e6:.1f} us/iter")
            return cache.put(key, result)

        metrics, history = {}, []
        for e in args.examples:
            example = synthetic.make_example(e, args.dim, args.seed)
            for method in args.methods:
                for t in args.ts:
                    c = cell(f"ex{e}/{method}/T{t}", example, lambda: bl.make_solver(
                        method, example.problem, inner_steps=t, jit_compile=args.jit,
                        **synthetic.SOLVER_OPTIONS[method](synthetic.PAPER_SETTINGS)), args.trials)
                    metrics.setdefault(f"ex{e}", {}).setdefault(method, {})[f"T{t}"] = synthetic.cell_metrics(c)
                    history.append(dict(example=e, method=method, T=t,
                                        **synthetic.mean_curve(c, steps, MAX_CURVE_POINTS)))
        if not args.skip_ablation:
            metrics["ablation"] = run_ablation(args, cell, steps, history)

        write_figures(args.out, history)
        write_tensorboard(args, history)
        print_table(metrics)
        # the top-level timing is Penalty's mean over examples and T (per cell timings are in the metrics)
        penalty = [m["seconds_per_upper_iteration"] for k, by_method in metrics.items() if k.startswith("ex")
                   for m in by_method.get("penalty", {}).values()]
        experiment.write_results(args, metrics=metrics, history=history, dataset="synthetic",
                                 paper=paper_cells.paper_entry(args, "synthetic"),
                                 seconds_per_upper_iteration=float(np.mean(penalty)) if penalty else None,
                                 config=experiment.config_of(args, settings=dataclasses.asdict(synthetic.PAPER_SETTINGS)))
        return metrics

    return experiment.Run.once(args, run_all)


def run_ablation(args, cell, steps, history):
    """Penalty on Ex.1 with lam_0 in ABLATION_LAMBDAS, with and without nu (one solver per (T, nu))."""
    example = synthetic.make_example(1, args.dim, args.seed)
    out = {}
    for use_nu in (True, False):
        settings = dataclasses.replace(synthetic.PAPER_SETTINGS, use_nu=use_nu)
        row = "with_nu" if use_nu else "without_nu"
        for t in args.ts:
            runners = []

            def make_runner():  # one compiled solver per (T, nu), shared by every lam_0
                if not runners:
                    solver = bl.make_solver("penalty", example.problem, inner_steps=t, jit_compile=args.jit,
                                            **synthetic.SOLVER_OPTIONS["penalty"](settings))
                    runners.append(synthetic.TrialRunner(solver, example.distance, args.record_every))
                return runners[0]

            for lam0 in ABLATION_LAMBDAS:
                c = cell(f"ablation/{row}/T{t}/lam{lam0:g}", example, make_runner, args.ablation_trials,
                         setup=lambda s, lam0=lam0: s.lam.assign(lam0))
                out.setdefault(row, {}).setdefault(f"T{t}", {})[f"lam0={lam0:g}"] = synthetic.cell_metrics(c)
                history.append(dict(example=1, method="penalty", T=t, ablation=dict(lam0=lam0, use_nu=use_nu),
                                    **synthetic.mean_curve(c, steps, MAX_CURVE_POINTS)))
    return out


def write_figures(out, history):
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
    titles = {"fig2.png": "paper fig. 1 (Ex.1, Ex.2)", "fig3.png": "paper fig. 2 (Ex.3, Ex.4)",
              "fig5.png": "Penalty on Ex.1: lam_0 and nu (supp. fig. 7)"}
    for name, grid in figures.items():
        if grid:
            synthetic.plot_grid(f"{out}/{name}", grid, xlabel="upper iteration", ylabel="distance to solution",
                                title=titles[name])


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
            cells = "  ".join(f"{t}: {m['distance_to_solution_mean']:.3g}+-{m['distance_to_solution_std']:.2g}"
                              for t, m in by_t.items())
            print(f"[synthetic] {ex} {method:<10} final distance  {cells}", flush=True)


if __name__ == "__main__":
    experiment.run_main(main)

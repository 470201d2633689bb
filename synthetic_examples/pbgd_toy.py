"""The PBGD toy problem (Shen & Chen 2023, V-PBGD/toy) solved with bl.VPBGD.

    g(x, y) = (x + y)^2 + x sin^2(x + y)                        lower level, min_y g = 0 at y = -x
    f(x, y) = cos(4y + 2) / (1 + e^(2 - 4x)) + 0.5 log((4x - 2)^2 + 1),   x projected onto [0, 3]

NUM_STARTS runs from x ~ U(0, 3.5), y ~ U(-5, 8.5), penalty gamma = 10 held constant, step 0.1 / gamma
(VPBGD scales its SGD(0.1) steps by 1/gamma), until the projected-gradient norm of every run is <= TOLERANCE
or MAX_ITERATIONS. All runs are one vectorized problem (variables of shape (NUM_STARTS,), summed losses: the
runs are independent because SGD is elementwise and gamma constant). VPBGD approximates min_w g(x, w) with
a warm-started copy (INNER_STEPS steps per iteration); gradients by autodiff (the PBGD script's hand-coded
df has a wrong denominator, 1 + e^(2(2 - 4x)) instead of (1 + e^(2 - 4x))^2).

Outputs in --out: results.json (fraction of runs at each local minimum of the hyper-objective
phi(x) = f(x, -x), final x summary, iterations used) and hyper_objective.png.

    python synthetic_examples/pbgd_toy.py --smoke
"""
import keras
import numpy as np

import bilevel_tf as bl
from bilevel_tf import experiment, paper_cells, plots, tensorboard_logs
from bilevel_tf.apps import synthetic

NUM_STARTS = 1000
GAMMA = 10.0                 # penalty constant (PBGD gams=[10])
LEARNING_RATE = 0.1          # PBGD alpha0; the effective step is LEARNING_RATE / GAMMA
TOLERANCE = 1e-5             # stop when every run's projected-gradient norm is below this
MAX_ITERATIONS = 200000
CHECK_EVERY = 10             # iterations per compiled call between convergence checks
INNER_STEPS = 10             # VPBGD steps on the warm-started copy w ~ argmin_w g(x, w)
INNER_LEARNING_RATE = 0.1    # g is 2..8-strongly convex in w near its minimum for x in [0, 3]
MINIMUM_RADIUS = 0.05        # a final x farther than this from every local minimum of phi counts as "other"
SMOKE = dict(num_starts=50, max_iterations=300)


def main(argv=None):
    p = experiment.parser(__doc__, method="vpbgd", methods=["vpbgd"], inner_steps=INNER_STEPS, data_dir=False,
                          mixed_precision=False)  # float64 end to end
    p.add_argument("--num-starts", type=int, default=NUM_STARTS, help="independent runs (random starts)")
    p.add_argument("--gamma", type=experiment.nonnegative_float, default=GAMMA, help="penalty constant (held fixed)")
    p.add_argument("--lr", type=experiment.positive_float, default=LEARNING_RATE, help="SGD learning rate before the 1/gamma scaling")
    p.add_argument("--inner-lr", type=experiment.positive_float, default=INNER_LEARNING_RATE, help="SGD learning rate of the inner copy")
    p.add_argument("--tolerance", type=experiment.positive_float, default=TOLERANCE, help="projected-gradient norm that ends a run")
    p.add_argument("--max-iterations", type=int, default=MAX_ITERATIONS, help="iteration cap")
    p.add_argument("--check-every", type=int, default=CHECK_EVERY, help="iterations between convergence checks")
    synthetic.add_jit_flag(p)
    args = experiment.parse(p, argv, "synthetic/pbgd_toy")
    synthetic.resolve_jit(args)
    if args.smoke:
        for name, value in SMOKE.items():
            setattr(args, name, min(getattr(args, name), value))

    def run_all(run):  # inside the locked output folder (experiment.Run)
        toy = synthetic.make_toy(args.num_starts, args.seed)
        solver = bl.VPBGD(toy.problem, keras.optimizers.SGD(args.lr), keras.optimizers.SGD(args.lr),
                          inner_steps=args.inner_steps, inner_optimizer=keras.optimizers.SGD(args.inner_lr),
                          gamma_init=args.gamma, gamma_max=args.gamma, gamma_argmax_step=1, jit_compile=args.jit)
        pg_norm = synthetic.toy_projected_gradient_norm(toy, args.gamma, args.lr / max(args.gamma, 1.0))
        x0 = toy.x.numpy()

        first_converged = np.full(args.num_starts, -1)
        history, done, clock = [], 0, experiment.Stopwatch()
        while done < args.max_iterations:
            chunk = min(args.check_every, args.max_iterations - done)
            solver.run(chunk)
            done += chunk
            pg = pg_norm().numpy()
            first_converged[(first_converged < 0) & (pg <= args.tolerance)] = done
            history.append(dict(iteration=done, converged_fraction=float(np.mean(first_converged >= 0)),
                                max_projected_gradient=float(np.max(pg)), seconds=clock()))
            if args.verbose >= 2 or (args.verbose == 1 and len(history) % 100 == 0):
                print(f"iteration {done}: converged {history[-1]['converged_fraction']:.3f}, "
                      f"max projected gradient {history[-1]['max_projected_gradient']:.2e}", flush=True)
            if np.all(first_converged >= 0):
                break
        # timing excludes the first chunk, which includes tracing and compilation
        timed = done - history[0]["iteration"]
        seconds_per_iteration = (history[-1]["seconds"] - history[0]["seconds"]) / timed if timed else None

        x, y = toy.x.numpy().astype(np.float64), toy.y.numpy().astype(np.float64)
        minima = synthetic.toy_local_minima()
        nearest = np.abs(x[:, None] - minima[None, :]).argmin(axis=1)
        at_minimum = np.abs(x - minima[nearest]) <= MINIMUM_RADIUS
        per_minimum = [dict(x=float(m), phi=float(synthetic.toy_hyper_objective(m)),
                            fraction=float(np.mean(at_minimum & (nearest == i)))) for i, m in enumerate(minima)]
        global_i = int(np.argmin([m["phi"] for m in per_minimum]))
        used = np.where(first_converged >= 0, first_converged, done)
        metrics = dict(
            local_minima=per_minimum,
            fraction_at_global_minimum=per_minimum[global_i]["fraction"],
            fraction_at_a_local_minimum=float(np.mean(at_minimum)),
            converged_fraction=float(np.mean(first_converged >= 0)),
            final_x=dict(mean=float(x.mean()), std=float(x.std()), min=float(x.min()), max=float(x.max()),
                         quartiles=np.quantile(x, [0.25, 0.5, 0.75]).tolist()),
            max_lower_level_gap=float(np.max(np.abs(x + y))),  # |x + y| = distance of y to argmin_y g
            iterations_used=dict(total=done, median=float(np.median(used)), max=int(used.max())),
            final_projected_gradient_max=history[-1]["max_projected_gradient"])
        plot(args.out, x, minima, x0)
        tensorboard_logs.write_records(args, history, step="iteration")
        experiment.write_results(args, metrics=metrics, history=subsample(history), dataset="pbgd_toy",
                                 paper=paper_cells.paper_entry(args, "pbgd_toy"), solver=solver,
                                 seconds_per_upper_iteration=seconds_per_iteration,
                                 summary_keys=["fraction_at_global_minimum", "fraction_at_a_local_minimum",
                                               "converged_fraction"])
        return metrics

    return experiment.Run.once(args, run_all)


def subsample(history, max_points=200):
    return [history[i] for i in synthetic.subsample(len(history), max_points)]


def plot(out, x, minima, x0):
    """phi on [0, 3] with the final iterates (and the local minima) marked; histogram of final x."""
    plt = plots.pyplot()
    grid = np.linspace(*synthetic.TOY_X_BOX, 2001)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(grid, synthetic.toy_hyper_objective(grid), color="k", lw=1.2, label="phi(x) = f(x, -x)")
    a.scatter(minima, synthetic.toy_hyper_objective(minima), marker="x", s=40, color="tab:blue",
              label="local minima of phi", zorder=2)
    a.scatter(x, synthetic.toy_hyper_objective(x), s=90, facecolors="none", edgecolors="tab:red", alpha=0.5,
              label=f"{len(x)} final x", zorder=3)
    a.set_xlabel("x")
    a.set_ylabel("phi(x)")
    a.legend(fontsize=8)
    bins = np.linspace(synthetic.TOY_X_BOX[0], synthetic.TOY_X_BOX[1], 61)
    b.hist(np.clip(x0, *synthetic.TOY_X_BOX), bins=bins, alpha=0.4, label="start x (clipped to [0, 3])")
    b.hist(x, bins=bins, alpha=0.8, label="final x")
    b.set_xlabel("x")
    b.set_ylabel("runs")
    b.legend(fontsize=8)
    plots.save_figure(fig, f"{out}/hyper_objective.png", "V-PBGD (gamma constant) on the PBGD toy problem")


if __name__ == "__main__":
    experiment.run_main(main)

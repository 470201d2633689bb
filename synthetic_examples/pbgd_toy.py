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

from bilevel_tf.runner import console, experiment, run_folder
from bilevel_tf.runner.flag_types import nonnegative_float, positive_float
from bilevel_tf.apps.synthetic import config as synthetic  # no TensorFlow before the flags are parsed

NUM_STARTS = 1000
GAMMA = 10.0  # penalty constant (PBGD gams=[10])
LEARNING_RATE = 0.1  # PBGD alpha0; the effective step is LEARNING_RATE / GAMMA
TOLERANCE = 1e-5  # stop when every run's projected-gradient norm is below this
MAX_ITERATIONS = 200000
CHECK_EVERY = 10  # iterations per compiled call between convergence checks
INNER_STEPS = 10  # VPBGD steps on the warm-started copy w ~ argmin_w g(x, w)
INNER_LEARNING_RATE = 0.1  # g is 2..8-strongly convex in w near its minimum for x in [0, 3]
MINIMUM_RADIUS = 0.05  # a final x farther than this from every local minimum of phi counts as "other"
SMOKE = dict(num_starts=50, max_iterations=300)


def main(argv=None):
    p = experiment.parser(
        __doc__, method="vpbgd", methods=["vpbgd"], inner_steps=INNER_STEPS, data_dir=False, mixed_precision=False
    )  # float64 end to end
    p.add_argument("--num-starts", type=int, default=NUM_STARTS, help="independent runs (random starts)")
    p.add_argument("--gamma", type=nonnegative_float, default=GAMMA, help="penalty constant (held fixed)")
    p.add_argument(
        "--lr", type=positive_float, default=LEARNING_RATE, help="SGD learning rate before the 1/gamma scaling"
    )
    p.add_argument(
        "--inner-lr", type=positive_float, default=INNER_LEARNING_RATE, help="SGD learning rate of the inner copy"
    )
    p.add_argument(
        "--tolerance", type=positive_float, default=TOLERANCE, help="projected-gradient norm that ends a run"
    )
    p.add_argument(
        "--upper-iterations",
        "--max-iterations",
        dest="max_iterations",
        type=int,
        default=MAX_ITERATIONS,
        help="K: at most this many upper iterations (the runs stop earlier once all have converged; "
        "--max-iterations: its former name)",
    )
    p.add_argument("--check-every", type=int, default=CHECK_EVERY, help="iterations between convergence checks")
    synthetic.add_jit_flag(p)
    args = experiment.parse(p, argv, "synthetic/pbgd_toy")
    synthetic.resolve_jit(args)
    if args.smoke:
        before = dict(vars(args))
        for name, value in SMOKE.items():
            setattr(args, name, min(getattr(args, name), value))
        console.report_overrides(args, before, "--smoke")

    def toy(_run):
        from bilevel_tf.apps.synthetic.pbgd_toy import run_toy  # TensorFlow loads here, after the folder's checks

        return run_toy(args, MINIMUM_RADIUS)

    return run_folder.Run.once(args, toy)


if __name__ == "__main__":
    experiment.run_main(main)

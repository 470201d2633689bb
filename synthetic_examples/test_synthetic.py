"""Synthetic bilevel problems with known solutions (paper section 3.1, figures 1-2, supp. figure 7).

Runs GD, RMD, ApproxGrad and Penalty on Ex.1..Ex.4 (see ``bilevel_tf/apps/synthetic/problems.py``) for every T,
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

import os

from bilevel_tf.runner import console, experiment, run_folder
from bilevel_tf.apps.synthetic import config as synthetic  # no TensorFlow before the flags are parsed

EXAMPLES = [1, 2, 3, 4]
METHODS = ["gd", "rmd", "approxgrad", "penalty"]  # supp. Table 4's columns; --methods offers the app's table
TS = [1, 5, 10]  # T: lower steps (and ApproxGrad linear steps) per upper iteration
TRIALS = 20
ITERATIONS = 40000  # K upper iterations
RECORD_EVERY = 10
DIM = 10  # paper: u, v in R^10 (the original code: two blocks of 10)
ABLATION_LAMBDAS = [0.0, 1e-4, 1e-2, 1.0]  # lam_0 of supp. figure 7 (Penalty on Ex.1)
ABLATION_TRIALS = 5
MAX_CURVE_POINTS = 200  # history curves are subsampled to this many points
SMOKE = dict(dim=4, trials=2, iterations=60, record_every=10, max_t=1, ablation_trials=1, examples=(1, 4))


def add_flags(p) -> None:
    p.add_argument(
        "--examples",
        type=int,
        nargs="+",
        default=EXAMPLES,
        choices=list(synthetic.EXAMPLES),
        help="which examples: 1, 2 (paper fig. 1a/b), 3, 4 (fig. 2a/b)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=METHODS,
        choices=list(synthetic.METHODS),
        help="solvers to compare (--method X runs X only)",
    )
    p.add_argument("--ts", type=int, nargs="+", default=TS, help="values of T (lower steps per upper iteration)")
    p.add_argument("--trials", type=int, default=TRIALS, help="random starts per (example, method, T)")
    p.add_argument(
        "--upper-iterations",
        "--iterations",
        dest="iterations",
        type=int,
        default=ITERATIONS,
        help="K: upper iterations per trial (--iterations: this runner's former name)",
    )
    p.add_argument(
        "--record-every",
        type=int,
        default=RECORD_EVERY,
        help="record the distance to the solution every N upper iterations",
    )
    p.add_argument("--dim", type=int, default=DIM, help="dimension of u and of v")
    p.add_argument(
        "--ablation-trials",
        type=int,
        default=ABLATION_TRIALS,
        help="trials per (T, lam_0, nu) of the Penalty ablation (fig5)",
    )
    p.add_argument("--skip-ablation", action="store_true", help="do not run the ablation (no fig5.png)")
    synthetic.add_jit_flag(p)


def resolve(p, args) -> None:
    if args.method is not None:
        args.methods = [args.method]
    synthetic.resolve_jit(args)
    if args.smoke:  # every solver costs ~1 s of tracing: a small grid touching every method and figure
        before = dict(vars(args))
        for name in ("dim", "trials", "iterations", "record_every", "ablation_trials"):
            setattr(args, name, min(getattr(args, name), SMOKE[name]))
        args.ts = [t for t in args.ts if t <= SMOKE["max_t"]] or [min(args.ts)]
        args.examples = [e for e in args.examples if e in SMOKE["examples"]] or args.examples[:1]
        console.report_overrides(args, before, "--smoke")
    for name in ("trials", "iterations", "record_every", "dim", "ablation_trials"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if min(args.ts) < 1:
        p.error("--ts values must be >= 1")
    args.method = "+".join(args.methods)  # results.json's "method" field


def main(argv=None):
    p = experiment.parser(
        __doc__,
        method=None,
        methods=synthetic.METHODS,
        inner_steps=None,
        data_dir=False,
        out=os.path.join("runs", "synthetic"),
        mixed_precision=False,
    )  # no Keras model
    add_flags(p)
    args = experiment.parse(p, argv, "synthetic")
    resolve(p, args)

    def sweep(_run):
        from bilevel_tf.apps.synthetic.sweep import run_sweep  # TensorFlow loads here, after the folder's checks

        return run_sweep(args, ABLATION_LAMBDAS, MAX_CURVE_POINTS)

    return run_folder.Run.once(args, sweep)


if __name__ == "__main__":
    experiment.run_main(main)

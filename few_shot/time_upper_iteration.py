"""Seconds per upper iteration of the few-shot runners at the paper's sizes, on random data of the real shapes.

    python few_shot/time_upper_iteration.py                       # Omniglot 20-way 5-shot (meta-batch 15) and
                                                                  # Mini-ImageNet 5-way 5-shot (meta-batch 2), T=20
    python few_shot/time_upper_iteration.py --datasets omniglot --methods penalty --repeats 3

Every setting (N, K, queries, meta-batch, T, learning rates) is the runner's default; the first (tracing) call
is reported separately and excluded from the medians of wall-clock ("seconds") and process CPU time
("cpu_seconds", the steadier figure when other jobs share the machine).
"""

import argparse
import importlib.util
import json
import os
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from bilevel_tf.runner import console  # noqa: E402
from bilevel_tf.apps.few_shot import config as few_shot_config  # noqa: E402  (no TensorFlow before the flags are parsed)

SETTINGS = {  # data set -> (its runner, the bilevel_tf.models factory of its representation, image shape)
    "omniglot": ("few_shot/omniglot/test_bilevel_few_shot_learning_omniglot.py", "omniglot_encoder", (28, 28, 1)),
    "miniimagenet": (
        "few_shot/miniimagenet/test_bilevel_few_shot_learning_miniimagenet.py",
        "miniimagenet_resnet",
        (84, 84, 3),
    ),
}


def runner_defaults(relative_path):
    spec = importlib.util.spec_from_file_location(
        "runner_" + os.path.basename(relative_path)[:-3], os.path.join(ROOT, relative_path)
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DEFAULTS


def main(argv=None):
    p = console.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--datasets",
        nargs="+",
        default=list(SETTINGS),
        choices=list(SETTINGS),
        help="paper settings to time (random data of their shapes)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=list(few_shot_config.METHODS),
        choices=list(few_shot_config.METHODS),
        help="bilevel solvers to time",
    )
    p.add_argument("--repeats", type=int, default=2, help="timed iterations after the first call")
    p.add_argument(
        "--inner-steps",
        type=int,
        nargs="+",
        default=[None],
        help="values of T to time (default: the runner's, 20); on a slow machine time small T values "
        "and extrapolate linearly, the inner loop costing the same per step",
    )
    p.add_argument("--jit", action="store_true", help="compile the step with XLA")
    cli = p.parse_args(argv)
    from bilevel_tf import models
    from bilevel_tf.apps.few_shot import meta_learning

    for name in cli.datasets:
        path, encoder, shape = SETTINGS[name]
        make_encoder = getattr(models, encoder)
        defaults = runner_defaults(path)
        for method, inner_steps in ((m, t) for m in cli.methods for t in cli.inner_steps):
            args = few_shot_config.build_parser("", defaults, (name,)).parse_args(["--method", method])
            args.jit = cli.jit
            args.inner_steps = inner_steps or args.inner_steps
            args.meta_batch = defaults["meta_batch"](args.n_way, args.k_shot, method)
            model = meta_learning.FewShotModel(make_encoder(shape), args.n_way, args.meta_batch, seed=0)
            t0 = time.perf_counter()
            timing = meta_learning.seconds_per_upper_iteration(
                model, args, args.k_shot, args.query, shape, repeats=cli.repeats
            )
            print(
                json.dumps(
                    dict(
                        dataset=name,
                        method=method,
                        n_way=args.n_way,
                        k_shot=args.k_shot,
                        query=args.query,
                        meta_batch=args.meta_batch,
                        inner_steps=args.inner_steps,
                        **{k: round(v, 3) for k, v in timing.items()},
                        total_seconds=round(time.perf_counter() - t0, 1),
                    )
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()

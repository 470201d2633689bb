"""Seconds per upper iteration of every data-denoising runner at the paper's sizes, on this machine.

The real data sets are not needed: each runner's problem is built on random arrays of the real shapes and
dtypes (59000 x 28x28x1 MNIST, 40000 x 32x32x3 CIFAR-10, 72257 x 32x32x1 SVHN, 5000 x 784 for the
small-scale and hyper-cleaning setups), with the runner's model, batch size, T and solver options, and a few
upper iterations are timed after the first (tracing) one. Warm start and evaluation are skipped.

    python data_denoising/time_paper_sizes.py                       # all runners, penalty and approxgrad
    python data_denoising/time_paper_sizes.py --runners cifar10 --methods penalty --steps 2
"""

import argparse
import importlib.util
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))  # run from anywhere

from bilevel_tf.runner import console  # noqa: E402  (TensorFlow-free)

RUNNERS = {
    "mnist_small_scale": "mnist_small_scale/test_bilevel_importance_learning_mnist.py",
    "mnist_large_scale": "mnist_large_scale/test_bilevel_importance_learning_mnist.py",
    "cifar10": "cifar10/test_bilevel_importance_learning_cifar10.py",
    "svhn": "svhn/test_bilevel_importance_learning_svhn.py",
}
HYPER_CLEANING = "hyper_cleaning/data_hyper_clean.py"
#: (method, net, extra flags); RHG with the MLP at T = 500 costs minutes per iteration on a CPU, so it is timed
#: at T = K = 50 (its cost is linear in T: multiply by 10)
HYPER_CLEANING_CONFIGS = [(m, net, []) for m in ("penalty", "vpbgd", "gpbgd") for net in ("linear", "MLP")] + [
    ("rhg", "linear", []),
    ("rhg", "MLP", ["--T", "50", "--K", "50"]),
]


def load(relative):
    path = os.path.join(HERE, relative)
    spec = importlib.util.spec_from_file_location("runner_" + os.path.basename(os.path.dirname(path)), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    p = console.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--runners",
        nargs="+",
        default=list(RUNNERS) + ["hyper_cleaning"],
        choices=list(RUNNERS) + ["hyper_cleaning"],
        help="denoising runners to time at the paper's size",
    )
    p.add_argument("--methods", nargs="+", default=["penalty", "approxgrad"], help="bilevel solvers to time")
    p.add_argument("--steps", type=int, default=3, help="timed upper iterations per configuration")
    p.add_argument("--out", default="runs/data_denoising_timing.json", help="JSON file the timings are written to")
    args = p.parse_args(argv)
    from bilevel_tf.apps.denoising import hyper_cleaning_config, importance, hyper_cleaning

    rows = []
    for name in args.runners:
        if name == "hyper_cleaning":
            module = load(HYPER_CLEANING)
            for method, net, extra in HYPER_CLEANING_CONFIGS:
                flags = ["--method", method, "--net", net, "--out", os.path.join("runs", "timing")] + extra
                run_args = hyper_cleaning_config.parse("", flags, module.CONFIG)
                t0 = time.perf_counter()
                r = hyper_cleaning.time_upper_iterations(run_args, module.CONFIG.penalty, args.steps)
                rows.append(
                    dict(
                        runner=f"hyper_cleaning ({net})",
                        method=method,
                        flags=" ".join(extra),
                        **r,
                        wall_seconds=time.perf_counter() - t0,
                    )
                )
                print(json.dumps(rows[-1]), flush=True)
            continue
        spec = load(RUNNERS[name]).SPEC
        for method in args.methods:
            t0 = time.perf_counter()
            r = importance.time_upper_iterations(spec, method, steps=args.steps, out=os.path.join("runs", "timing"))
            rows.append(dict(runner=name, method=method, **r, wall_seconds=time.perf_counter() - t0))
            print(json.dumps(rows[-1]), flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()

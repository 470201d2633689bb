"""Every data-denoising runner's offline demo (scikit-learn's 8x8 digits, the runner's own demo settings, the
library's default Penalty schedule) over several seeds: does training with the learned importance beat
training with uniform weights, and do the weights pick out the flipped labels?

    python benchmarks/denoising_demos.py                       # 5 runners x seeds 0-4 (~15 minutes on 2 cores)
    python benchmarks/denoising_demos.py --seeds 0 1 --runners cifar10 svhn

Each run is the runner as a user starts it (``--dataset digits --seed S``) in ``<out>/<runner>/<seed>``; a run
whose ``results.json`` exists is not repeated, so an interrupted sweep continues. Writes ``<out>/summary.md``:
per runner, the mean and spread over seeds of the test accuracy with the learned weights and with uniform
weights, their difference, and how well low weight identifies a flipped label (precision among the
n_flipped lowest weights).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUNNERS = {
    "mnist_large_scale": "data_denoising/mnist_large_scale/test_bilevel_importance_learning_mnist.py",
    "mnist_small_scale": "data_denoising/mnist_small_scale/test_bilevel_importance_learning_mnist.py",
    "cifar10": "data_denoising/cifar10/test_bilevel_importance_learning_cifar10.py",
    "svhn": "data_denoising/svhn/test_bilevel_importance_learning_svhn.py",
    "hyper_cleaning": "data_denoising/hyper_cleaning/data_hyper_clean.py",
}


def run_one(runner: str, seed: int, out: Path) -> Dict[str, float]:
    folder = out / runner / str(seed)
    results = folder / "results.json"
    if not results.exists():
        command = [
            sys.executable,
            str(ROOT / RUNNERS[runner]),
            "--dataset",
            "digits",
            "--seed",
            str(seed),
            "--out",
            str(folder),
            "--verbose",
            "0",
        ]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        subprocess.run(command, check=True, cwd=ROOT, env=env)
    return json.loads(results.read_text())["metrics"]


def _stats(values: List[float]) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def summary(rows: Dict[str, List[Dict[str, float]]]) -> str:
    lines = [
        "| runner | seeds | learned weights | uniform weights | difference (min / mean) | noise precision |",
        "|---|---|---|---|---|---|",
    ]
    for runner, metrics in rows.items():
        learned = [m["test_accuracy"] for m in metrics]
        uniform = [m["noisy_baseline_test_accuracy"] for m in metrics]
        gain = np.subtract(learned, uniform)
        lines.append(
            f"| {runner} | {len(metrics)} | {_stats(learned)} | {_stats(uniform)} | "
            f"{gain.min():+.4f} / {gain.mean():+.4f} | {_stats([m['noise_precision'] for m in metrics])} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    p.add_argument("--runners", nargs="+", default=list(RUNNERS), choices=list(RUNNERS))
    p.add_argument("--seeds", nargs="+", type=int, default=list(range(5)))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "denoising_demos"))
    args = p.parse_args(argv)
    out = Path(args.out)
    rows = {}
    for runner in args.runners:
        rows[runner] = [run_one(runner, seed, out) for seed in args.seeds]
        print(f"{runner}: done ({len(args.seeds)} seeds)", flush=True)
    table = summary(rows)
    (out / "summary.md").write_text("# Denoising demos (digits, default schedule)\n\n" + table + "\n")
    print(table)


if __name__ == "__main__":
    main()

"""Speed and memory benchmark of every bilevel solver: one command, a JSON, a markdown table and plots.

    python benchmarks/run.py --quick          # about 2 minutes: small split MLP, T in {1, 10, 50}, inner-step ratios
    nice python benchmarks/run.py             # the full run (hours on a 2-core CPU)

Full run sections (``--sections`` picks a subset):

- ``sweep``: for each solver and T in {1, 5, 10, 20, 50}, seconds per upper iteration and peak memory on
  (a) the MNIST denoising CNN at batch 128 and (b) the split MLP of the paper's largest size (3.8M upper /
  1.4M lower variables), each in a fresh process; every time also as a ratio to a plain Keras train step of
  the same model and batch measured interleaved in the same process.
- ``scale``: the split MLP at 1/64, 1/16, 1/4 and 1 of the largest size, T = 10.
- ``inner``: the cost of one Penalty / ApproxGrad inner step relative to the plain step, at a compute-bound
  size (MLP 784-1024-1024-10, batch 512) and an overhead-bound one (64-32-10, batch 32), graph and XLA, and
  the building blocks (gradients, HVPs, optimizer update) that make up their time.
- ``hvp``: double backward vs forward-over-reverse second-order products, per solver.
- ``xla``: ``jit_compile`` off vs on, per solver.
- ``precision``: float32 vs mixed_bfloat16 (``bl.precision``) for Penalty and ApproxGrad on the split MLP.
- ``overhead``: seconds per upper iteration through ``bl.fit`` with ``steps_per_execution`` k in {1, 10, 100},
  graph and XLA, on paper Example 1 (u, v in R^10, Penalty T = 10) and on the digits denoising demo's bilevel
  problem (its tf.data streams, T = 20, batch 100), next to ``solver.run``'s in-graph loop (the floor):
  ``python benchmarks/run.py --sections overhead --out benchmarks/results/overhead``.

Writes ``<out>/results.json``, ``<out>/results.md`` and ``<out>/*.png`` (default ``benchmarks/results/full``
or ``benchmarks/results/quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402  (matplotlib only: the orchestrator never imports TensorFlow)

SOLVERS = ("penalty", "approxgrad", "rmd", "gd", "vpbgd", "gpbgd")
SECOND_ORDER = ("penalty", "approxgrad", "rmd", "gpbgd")
FULL_T = (1, 5, 10, 20, 50)
QUICK_T = (1, 10, 50)
SCALES = (1 / 64, 1 / 16, 1 / 4, 1.0)
SECTIONS = ("sweep", "scale", "inner", "hvp", "xla", "precision", "overhead")


def plan(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """The worker specs of this run; ``isolate`` specs hold one configuration each (fresh process)."""
    solvers = args.solvers
    specs: List[Dict[str, Any]] = []

    def sweep(problem: str, scale: float, ts, isolate: bool, **extra):
        configs = [dict(method=m, T=t) for m in solvers for t in ts]
        groups = [[c] for c in configs] if isolate else [configs]
        for group in groups:
            specs.append(
                dict(kind="sweep", problem=problem, scale=scale, batch=args.batch, configs=group, jit=args.jit, **extra)
            )

    if args.quick:  # one process per study: imports and compilations dominate a 2-minute budget
        if "inner" in args.sections:
            specs.append(dict(kind="inner", problem="inner-small", batch=32, K=11, jit=[False], reps=5, blocks=False))
        if "sweep" in args.sections:
            sweep("mlp", 1 / 64, args.T or QUICK_T, isolate=False, budget_s=1, min_reps=3, max_reps=3)
        return specs
    ts = args.T or FULL_T
    if "inner" in args.sections:
        specs.append(dict(kind="inner", problem="inner-small", batch=32, K=21, jit=[False, True], reps=9))
        specs.append(dict(kind="inner", problem="inner-compute", batch=512, K=6, jit=[False, True], reps=7))
    if "sweep" in args.sections:
        for problem in args.problems:
            sweep(problem, 1.0, ts, isolate=True)
    if "scale" in args.sections:
        for scale in SCALES[:-1]:  # the largest size is in the sweep
            sweep("mlp", scale, (10,), isolate=True)
    if "hvp" in args.sections:
        variants = [dict(hvp="double_backward"), dict(hvp="forward_over_reverse")]
        for problem, scale in (("mlp", 1 / 16), ("cnn", 1.0)):
            specs.append(
                dict(
                    kind="compare",
                    study="hvp",
                    problem=problem,
                    scale=scale,
                    batch=args.batch,
                    T=5,
                    methods=[m for m in SECOND_ORDER if m in solvers],
                    variants=variants,
                )
            )
    if "xla" in args.sections:
        for problem, scale in (("mlp", 1 / 16), ("cnn", 1.0)):
            specs.append(
                dict(
                    kind="compare",
                    study="xla",
                    problem=problem,
                    scale=scale,
                    batch=args.batch,
                    T=5,
                    methods=list(solvers),
                    variants=[dict(jit=False), dict(jit=True)],
                )
            )
    if "overhead" in args.sections:  # bl.fit with steps_per_execution k vs solver.run's in-graph loop
        for problem, iterations in (("ex1", 1000), ("digits", 200)):
            specs.append(
                dict(
                    kind="overhead", problem=problem, iterations=iterations, ks=[1, 10, 100], jit=[False, True], reps=5
                )
            )
    if "precision" in args.sections:
        variants = [dict(precision="float32"), dict(precision="mixed_bfloat16")]
        specs.append(
            dict(
                kind="compare",
                study="precision",
                problem="mlp",
                scale=1 / 16,
                batch=args.batch,
                T=5,
                methods=[m for m in ("penalty", "approxgrad") if m in solvers],
                variants=variants,
            )
        )
    return specs


def run_worker(spec: Dict[str, Any], log) -> List[Dict[str, Any]]:
    """Run one spec in a fresh Python process; returns its records (an error record if it failed)."""
    cmd = [sys.executable, str(HERE / "worker.py"), json.dumps(spec)]
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    records = [json.loads(line[len("RESULT ") :]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    log.write(f"--- {json.dumps(spec)} ({time.time() - start:.0f} s, exit {proc.returncode})\n{proc.stderr[-4000:]}\n")
    log.flush()
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        records.append(dict(kind="error", spec=spec, error=tail))
        print(f"  FAILED: {tail}", flush=True)
    return records


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the ~2-minute version (small MLP, few T values)")
    parser.add_argument("--out", default=None, help="output folder (default benchmarks/results/{quick,full})")
    parser.add_argument(
        "--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS, help="which studies to run (default: all)"
    )
    parser.add_argument("--solvers", nargs="+", default=list(SOLVERS), choices=SOLVERS)
    parser.add_argument("--T", nargs="+", type=int, default=None, help="inner-step counts of the sweep")
    parser.add_argument("--batch", type=int, default=128, help="batch size of the sweep, scale, hvp, xla problems")
    parser.add_argument("--jit", action="store_true", help="compile the sweep's solvers and plain steps with XLA")
    parser.add_argument(
        "--problems",
        nargs="+",
        default=["mlp", "cnn"],
        choices=["mlp", "cnn"],
        help="which problems the sweep covers (default: both)",
    )
    parser.add_argument(
        "--append",
        action="store_true",
        help="add this run's records to an existing results.json (e.g. to finish an interrupted "
        "full run section by section) instead of starting a new one",
    )
    parser.add_argument("--report-only", action="store_true", help="rebuild the table and plots from results.json")
    args = parser.parse_args(argv)
    out = Path(args.out or HERE / "results" / ("quick" if args.quick else "full"))
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    if args.report_only:
        report.write(json.loads(results_path.read_text()), out)
        return
    specs = plan(args)
    meta = report.machine_info(args, sys.argv if argv is None else ["benchmarks/run.py", *argv])
    records: List[Dict[str, Any]] = []
    earlier_seconds = 0.0
    if args.append and results_path.exists():
        earlier = json.loads(results_path.read_text())
        records, earlier_seconds = earlier["records"], earlier["meta"].get("seconds", 0.0)
        meta = dict(earlier["meta"], appended=earlier["meta"].get("appended", []) + [meta.get("command")])
    start = time.time()
    with open(out / "workers.log", "a" if args.append else "w") as log:
        for i, spec in enumerate(specs, 1):
            label = {k: spec[k] for k in ("kind", "problem", "scale", "study") if k in spec}
            if spec["kind"] == "sweep":
                label["configs"] = [f"{c['method']} T={c['T']}" for c in spec["configs"]]
            print(f"[{i}/{len(specs)} {time.time() - start:6.0f} s] {label}", flush=True)
            records.extend(run_worker(spec, log))
            meta["seconds"] = earlier_seconds + time.time() - start
            report.write(dict(meta=meta, records=records), out)  # partial results survive a kill
    print(f"done in {time.time() - start:.0f} s: {out / 'results.md'}")


if __name__ == "__main__":
    main()

"""Every bilevel_tf solver on benchopt's simulated quadratic, for a fixed wall time: suboptimality vs time and
vs iterations, full batch and mini-batch, with ``bl.make_solver`` defaults and with recommended settings.

    python benchmarks/simulated.py                          # all of bl.METHODS, 60 s per run (4 runs each)
    python benchmarks/simulated.py --seconds 10 --solvers penalty,approxgrad --full-batch
    python benchmarks/simulated.py --tune --seconds 10      # the grid behind the recommended settings
    python benchmarks/simulated.py --timing                 # fast and slow ways to write the problem

The problem (``simulated_quadratic.py``): the benchmark's dataset defaults, 1024 inner and 1024 outer
per-sample quadratics, 100 lower and 100 upper dimensions, mu = 0.1, L = 1, float64; h* in closed form; start
x0 = -2, z0 = 0. Measured: (h(x) - h*) / (h(x0) - h*), evaluated between compiled chunks of iterations and
outside the timed region (``simulated_runs.py``). Mini-batches are the benchmark's: contiguous blocks of
``--batch-size`` samples in a new random order each epoch, one per level and upper iteration.

Runs: every method of ``bl.METHODS`` (or ``--solvers``) x {full batch, mini-batch} x {``default``: no option
given to ``bl.make_solver``; ``recommended``: ``simulated_runs.RECOMMENDED`` (tuned learning rates / T, and
``jit_compile=True``), or the best of a ``--tune`` run with ``--recommended-from tune.json`` (plus XLA)}.
Writes ``<out>/results.json`` (every curve), ``<out>/results.md`` (the table: suboptimality reached in the
budget, time to 1e-4) and ``<out>/suboptimality.png``. Runs already in ``<out>/results.json`` with the same
budget are kept and skipped (``--fresh`` reruns everything), so an interrupted run resumes and a rerun after
new solvers land only runs those.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import simulated_report as report  # noqa: E402  (TensorFlow-free)
from simulated_quadratic import SPECS  # noqa: E402

SETTINGS = ("default", "recommended")


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    p.add_argument("--seconds", type=float, default=60.0, help="solver wall time per run (default 60)")
    p.add_argument("--solvers", default=None, help="comma-separated method names (default: every name of bl.METHODS)")
    p.add_argument("--batch-size", type=int, default=64, help="mini-batch size of the mini-batch runs (default 64)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--full-batch", action="store_true", help="full-batch runs only")
    mode.add_argument("--minibatch", action="store_true", help="mini-batch runs only")
    p.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated subset of default,recommended")
    p.add_argument(
        "--recommended-from",
        default=None,
        help="a tune.json written by --tune: its best options per method and mode replace RECOMMENDED",
    )
    p.add_argument(
        "--spec",
        choices=sorted(SPECS),
        default="benchmark",
        help="problem size: benchmark (the dataset defaults, 1024/1024 samples, 100/100 dims), "
        "published (the best-parameter run's 32768/1024 samples, 100/10 dims), tiny",
    )
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--seed", type=int, default=0, help="mini-batch order seed")
    p.add_argument("--points", type=int, default=150, help="objective evaluations per run, about (default 150)")
    p.add_argument("--out", default=str(HERE / "results" / "simulated"), help="output folder")
    p.add_argument(
        "--fresh", action="store_true", help="ignore runs already in <out>/results.json (or tune.json with --tune)"
    )
    p.add_argument("--tune", action="store_true", help="run the tuning grid instead (writes tune.json, tune.md)")
    p.add_argument(
        "--timing",
        action="store_true",
        help="time the ways to write the problem instead (writes timing.json, timing.md)",
    )
    args = p.parse_args(argv)
    if args.seconds <= 0:
        p.error("--seconds must be positive")
    if args.batch_size < 1:
        p.error("--batch-size must be >= 1")
    args.settings = [s for s in args.settings.split(",") if s]
    bad = sorted(set(args.settings) - set(SETTINGS))
    if bad:
        p.error(f"--settings: unknown {bad}; choose from {list(SETTINGS)}")
    return args


def _modes(args):
    modes = []
    if not args.minibatch:
        modes.append(None)
    if not args.full_batch:
        modes.append(args.batch_size)
    return modes


def _methods(args, bl):
    if args.solvers is None:
        return list(bl.METHODS)
    names = [s.strip().lower() for s in args.solvers.split(",") if s.strip()]
    unknown = sorted(set(names) - set(bl.METHODS))
    if unknown:
        raise SystemExit(f"--solvers: unknown {unknown}; bl.METHODS is {list(bl.METHODS)}")
    return names


def _load(path: Path, key: dict) -> list:
    """Runs of an earlier results.json made with the same budget and problem (else none)."""
    if not path.exists():
        return []
    old = json.loads(path.read_text())
    return old.get("runs", []) if old.get("key") == key else []


def _write(out: Path, name: str, payload: dict) -> None:
    tmp = out / (name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=float))
    os.replace(tmp, out / name)


def _tuned(path: str) -> dict:
    from simulated_runs import RECOMMENDED_COMMON

    best = json.loads(Path(path).read_text())["best"]
    return {(b["method"], b["mode"]): dict(b["options"], **RECOMMENDED_COMMON) for b in best}


def benchmark(args, bl, data, out: Path) -> None:
    from simulated_problem import SimulatedProblem
    import simulated_runs as runs

    key = dict(seconds=args.seconds, spec=args.spec, dtype=args.dtype, seed=args.seed, batch_size=args.batch_size)
    done = [] if args.fresh else _load(out / "results.json", key)
    quad = SimulatedProblem(data, dtype=args.dtype)
    tuned = _tuned(args.recommended_from) if args.recommended_from else {}
    methods = _methods(args, bl)
    header = dict(
        key=key,
        problem=data.summary(),
        machine=dict(platform=platform.platform(), cpus=os.cpu_count()),
        recommended=runs.RECOMMENDED,
        recommended_minibatch=runs.RECOMMENDED_MINIBATCH,
        recommended_common=runs.RECOMMENDED_COMMON,
    )
    for batch_size in _modes(args):
        mode = "full" if batch_size is None else f"minibatch{batch_size}"
        for settings in args.settings:
            for method in methods:
                if any(r["method"] == method and r["mode"] == mode and r["settings"] == settings for r in done):
                    continue
                options = (
                    {}
                    if settings == "default"
                    else tuned.get((method, mode), runs.recommended_options(method, batch_size))
                )
                record = runs.run_solver(quad, method, options, args.seconds, batch_size, args.seed, args.points)
                record["settings"] = settings
                done.append(record)
                print(
                    f"{method:>10} {settings:>11} {mode:>11}: {record['final']:.3g} after "
                    f"{record['iterations'][-1]} iterations, 1e-4 at {record['time_to_0.0001']} s",
                    flush=True,
                )
                _write(out, "results.json", dict(header, runs=done))
    ordered = report.order(done, methods)
    table = report.markdown_table(ordered, args.seconds, thresholds=(1e-2, 1e-4, 1e-6))
    options = "\n".join(
        f"- {r['method']} ({r['mode']}): `{r['options']}`" for r in ordered if r["settings"] == "recommended"
    )
    load = [r["load_average"][0] for r in ordered]
    (out / "results.md").write_text(
        f"# bilevel_tf on benchopt's simulated quadratic ({args.spec}, {args.dtype}, {args.seconds:g} s per run)\n\n"
        f"Problem: {json.dumps(data.summary())}\n\n{table}\nRecommended options:\n\n{options}\n\n"
        f"Load average (1 min) at the start of the runs: {min(load):.1f}-{max(load):.1f} on {os.cpu_count()} CPUs.\n"
    )
    report.plot(ordered, str(out / "suboptimality.png"), "bilevel_tf")
    print(table)


def tune(args, bl, data, out: Path) -> None:
    from simulated_problem import SimulatedProblem
    import simulated_tuning as tuning

    quad = SimulatedProblem(data, dtype=args.dtype)
    key = dict(seconds=args.seconds, spec=args.spec, dtype=args.dtype, seed=args.seed)
    old = {} if args.fresh or not (out / "tune.json").exists() else json.loads((out / "tune.json").read_text())
    done = old.get("runs", []) if old.get("key") == key else []

    def save(records):
        _write(out, "tune.json", dict(key=key, runs=records, best=tuning.best_settings(records)))

    records = tuning.run_grid(quad, _methods(args, bl), _modes(args), args.seconds, args.seed, args.points, done, save)
    save(records)
    text = tuning.markdown(records, tuning.best_settings(records), args.seconds)
    (out / "tune.md").write_text(text)
    print(text)


def timing(args, data, out: Path) -> None:
    import simulated_timing

    rows = simulated_timing.measure(data)
    _write(out, "timing.json", dict(rows=rows, load_average=os.getloadavg()))
    (out / "timing.md").write_text(simulated_timing.markdown(rows))
    print(simulated_timing.markdown(rows))


def main(argv=None) -> None:
    args = parse(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import bilevel_tf as bl
    from simulated_quadratic import SimulatedQuadratic

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    data = SimulatedQuadratic(SPECS[args.spec])
    if args.timing:
        timing(args, data, out)
    elif args.tune:
        tune(args, bl, data, out)
    else:
        benchmark(args, bl, data, out)
    print(f"done in {time.time() - start:.0f} s; results in {out}")


if __name__ == "__main__":
    main()

"""The benchmark's own JAX solvers and bilevel_tf's solvers on the same simulated quadratic, in one run.

    python benchmarks/side_by_side.py SNAPSHOT --jax-python /path/to/jaxvenv/bin/python [--seconds 60]

SNAPSHOT: a checkout of github.com/benchopt/benchmark_bilevel (``git clone
https://github.com/benchopt/benchmark_bilevel``), or a git directory holding it (e.g. a bare mirror; its HEAD
is exported to a temporary folder). Its solver files are used in place, for measurement only: nothing of it
is copied here and bilevel_tf never depends on it. The JAX side runs in its own virtualenv (``--jax-python``,
or the environment variable JAX_PYTHON), made with::

    python -m venv jaxvenv && jaxvenv/bin/pip install jax jaxlib benchopt

One problem for both: ``simulated_quadratic.py`` generates it (the benchmark dataset's defaults: 1024/1024
samples, 100/100 dimensions, mu 0.1, L 1) and both frameworks load the same numbers (a temporary .npz). Each
solver runs ``--seconds`` of solver time from x0 = -2, z0 = 0; the relative suboptimality
(h(x) - h*) / (h(x0) - h*) is our closed form, evaluated outside the timed region on both sides.

- JAX (``side_by_side_jax.py``): SABA, SRBA, AmIGO, StocBiO, F2SA with the published best parameters for
  the quadratic (``config/quadratics_021424_best_params.yml``), SOBA and BOME (not in that file) with their
  solver files' defaults; mini-batches of 64 except BOME (full batch). With ``--oracles benchmark`` their own
  oracle code on the per-sample matrices (their code path exactly), with ``factored`` the same functions on
  the rank-one factors (the form bilevel_tf uses), or both (the default).
- bilevel_tf: every method of ``bl.METHODS`` (or ``--solvers``) with ``simulated_runs.RECOMMENDED`` settings,
  mini-batches of 64 (``--full-batch`` adds full-batch runs).

Writes ``<out>/results.json``, ``<out>/results.md`` (one table: suboptimality at the end, time to 1e-4 and
1e-6) and ``<out>/suboptimality.png``.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import simulated_report as report  # noqa: E402
from simulated_quadratic import SPECS  # noqa: E402

JAX_SOLVERS = ("SABA", "SRBA", "AmIGO", "StocBiO", "F2SA", "SOBA", "BOME")
ORACLES = ("benchmark", "factored")


class UsageError(SystemExit):
    def __init__(self, message: str):
        super().__init__(f"side_by_side.py: error: {message}")


def snapshot_folder(path: str) -> Path:
    """The benchmark checkout at ``path`` (exported to a temporary folder if it is a git directory)."""
    root = Path(path)
    if not root.exists():
        raise UsageError(
            f"snapshot {path!r} does not exist; pass a checkout of benchopt/benchmark_bilevel "
            "(git clone https://github.com/benchopt/benchmark_bilevel)"
        )
    if (root / "solvers" / "saba.py").is_file() and (root / "benchmark_utils").is_dir():
        return root
    if (root / "HEAD").is_file() and (root / "objects").is_dir():
        target = Path(tempfile.mkdtemp(prefix="benchmark_bilevel_"))
        atexit.register(shutil.rmtree, target, True)
        archive = subprocess.run(["git", "--git-dir", str(root), "archive", "HEAD"], capture_output=True)
        if archive.returncode:
            raise UsageError(f"snapshot {path!r}: git archive failed: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
        return snapshot_folder(str(target))
    raise UsageError(
        f"snapshot {path!r} is not a checkout of benchopt/benchmark_bilevel "
        "(expected solvers/saba.py and benchmark_utils/ in it)"
    )


def check_jax_python(python: str) -> None:
    if not python:
        raise UsageError(
            "no JAX interpreter: pass --jax-python (or set JAX_PYTHON) to the python of a virtualenv "
            "with jax, jaxlib and benchopt (python -m venv jaxvenv && jaxvenv/bin/pip install jax "
            "jaxlib benchopt)"
        )
    try:
        probe = subprocess.run([python, "-c", "import jax, benchopt"], capture_output=True, timeout=120)
    except OSError as e:
        raise UsageError(f"--jax-python {python!r} cannot be run ({e})")
    if probe.returncode:
        raise UsageError(
            f"--jax-python {python!r} cannot import jax and benchopt: {probe.stderr.decode().strip().splitlines()[-1]}"
        )


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    p.add_argument("snapshot", help="checkout (or git directory) of benchopt/benchmark_bilevel")
    p.add_argument(
        "--jax-python",
        default=os.environ.get("JAX_PYTHON"),
        help="python of the virtualenv with jax, jaxlib, benchopt (default: $JAX_PYTHON)",
    )
    p.add_argument("--seconds", type=float, default=60.0, help="solver time per run (default 60)")
    p.add_argument("--jax-solvers", default=",".join(JAX_SOLVERS), help="comma-separated subset of %(default)s")
    p.add_argument("--oracles", default=",".join(ORACLES), help="JAX oracles, comma-separated subset of %(default)s")
    p.add_argument("--solvers", default=None, help="bilevel_tf methods, comma-separated (default: bl.METHODS)")
    p.add_argument("--full-batch", action="store_true", help="also run the bilevel_tf solvers in full batch")
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="precision of BOTH frameworks (float32: JAX's and the benchmark's default)",
    )
    p.add_argument("--spec", choices=sorted(SPECS), default="benchmark")
    p.add_argument("--points", type=int, default=150)
    p.add_argument("--seed", type=int, default=1, help="mini-batch order seed (both frameworks)")
    p.add_argument("--out", default=str(HERE / "results" / "side_by_side"))
    args = p.parse_args(argv)
    if args.seconds <= 0:
        p.error("--seconds must be positive")
    bad = sorted(set(args.jax_solvers.split(",")) - set(JAX_SOLVERS) - {""})
    if bad:
        p.error(f"--jax-solvers: unknown {bad}; choose from {list(JAX_SOLVERS)}")
    bad = sorted(set(args.oracles.split(",")) - set(ORACLES) - {""})
    if bad:
        p.error(f"--oracles: unknown {bad}; choose from {list(ORACLES)}")
    return args


def run_jax(args, snapshot: Path, data_path: Path) -> list:
    records = []
    for oracle in [o for o in args.oracles.split(",") if o]:
        target = data_path.parent / f"jax_{oracle}.json"  # temporary: results.json gets every run
        command = [
            args.jax_python,
            str(HERE / "side_by_side_jax.py"),
            "--snapshot",
            str(snapshot),
            "--data",
            str(data_path),
            "--out",
            str(target),
            "--solvers",
            args.jax_solvers,
            "--seconds",
            str(args.seconds),
            "--points",
            str(args.points),
            "--seed",
            str(args.seed),
            "--oracle",
            oracle,
            "--dtype",
            args.dtype,
        ]
        print("running", " ".join(command), flush=True)
        subprocess.run(command, check=True)
        for r in json.loads(target.read_text())["runs"]:
            r["framework"] = f"jax ({oracle} oracle)"
            records.append(r)
    return records


def run_ours(args, data) -> list:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import bilevel_tf as bl
    import simulated_runs as runs
    from simulated_problem import SimulatedProblem

    methods = list(bl.METHODS) if args.solvers is None else [s for s in args.solvers.split(",") if s]
    quad = SimulatedProblem(data, dtype=args.dtype)
    records = []
    for batch_size in [64, None] if args.full_batch else [64]:
        for method in methods:
            r = runs.run_solver(
                quad,
                method,
                runs.recommended_options(method, batch_size),
                args.seconds,
                batch_size,
                args.seed,
                args.points,
            )
            r["settings"] = "recommended"
            print(f"bilevel_tf {method} {r['mode']}: {r['final']:.3g}, 1e-4 at {r['time_to_0.0001']}", flush=True)
            records.append(r)
    return records


def main(argv=None) -> None:
    args = parse(argv)
    snapshot = snapshot_folder(args.snapshot)
    check_jax_python(args.jax_python)
    import numpy as np
    from simulated_quadratic import SimulatedQuadratic

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = SimulatedQuadratic(SPECS[args.spec])
    with tempfile.TemporaryDirectory(prefix="side_by_side_") as scratch:  # 10 MB of arrays, not kept
        data_path = Path(scratch) / "problem.npz"
        np.savez(data_path, **data.arrays())
        records = run_jax(args, snapshot, data_path)
    records += run_ours(args, data)
    for r in records:
        r.pop("config", None)
    (out / "results.json").write_text(
        json.dumps(
            dict(problem=data.summary(), spec=args.spec, dtype=args.dtype, seconds=args.seconds, runs=records),
            default=float,
        )
    )
    (out / "results.md").write_text(markdown(records, args))
    report.plot(records, str(out / "suboptimality.png"), "side by side", with_framework=True)
    print(markdown(records, args))


def markdown(records: list, args) -> str:
    """The table, each run's options and the machine's load."""
    table = report.markdown_table(records, args.seconds, thresholds=(1e-4, 1e-6), with_framework=True)
    options = "\n".join(
        f"- {report.label(r, True)} ({r['mode']}): `{r['options']}`"
        for r in records
        if "benchmark oracle" not in r["framework"]
    )
    load = [r["load_average"][0] for r in records]
    return (
        f"# Side by side ({args.spec}, {args.dtype}, {args.seconds:g} s per run)\n\n{table}\nOptions:\n\n"
        f"{options}\n\nLoad average (1 min) at the start of the runs: {min(load):.1f}-{max(load):.1f} on "
        f"{os.cpu_count()} CPUs.\n"
    )


if __name__ == "__main__":
    main()

"""The JAX half of ``side_by_side.py``: the benchmark's own JAX solvers on OUR generated problem.

Runs in a virtualenv with ``jax``, ``jaxlib`` and ``benchopt`` (never bilevel_tf's): ``side_by_side.py`` starts
it with ``--jax-python``. It imports the solver files of a benchopt/benchmark_bilevel checkout in place
(``--snapshot``; nothing is copied), hands them the problem saved by ``simulated_quadratic.py`` (``--data``,
an .npz) through the oracle interface their objective gives them (``f(inner_var, outer_var, start,
batch_size)``), runs each for ``--seconds`` of solver time and writes run records (``simulated_report.py``'s
keys) to ``--out``. The objective is our closed form, evaluated in float64 at every callback (after the
solver's asynchronous work has finished, outside the timed region), as benchopt does between callbacks.

Oracles (``--oracle``): ``benchmark`` = the benchmark's own ``get_function`` (``datasets/simulated.py``) on
the per-sample d x d matrices written out, i.e. their code path exactly; ``factored`` = the same functions
computed from the rank-one factors (written here), for a framework-to-framework comparison with
bilevel_tf's factored form.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from simulated_quadratic import SampleSet, from_arrays  # noqa: E402

#: The published best parameters for the quadratic (config/quadratics_021424_best_params.yml); SOBA and BOME
#: have no entry there, so they run with their solver files' default parameters.
PUBLISHED = {
    "SABA": dict(batch_size=64, eval_freq=64, mode_init_memory="zero", outer_ratio=1.0, step_size=0.1),
    "SRBA": dict(batch_size=64, eval_freq=64, outer_ratio=1.0, period_frac=0.5, step_size=0.1),
    "AmIGO": dict(batch_size=64, eval_freq=16, n_inner_steps=10, outer_ratio=0.1, step_size=0.01),
    "StocBiO": dict(batch_size=64, eval_freq=16, n_inner_steps=10, n_shia_steps=10, outer_ratio=1.0, step_size=0.1),
    "F2SA": dict(
        batch_size=64, delta_lmbda=0.01, eval_freq=16, lmbda0=1.0, n_inner_steps=10, outer_ratio=1.0, step_size=0.1
    ),
    "SOBA": dict(batch_size=64, eval_freq=16, outer_ratio=1.0, step_size=0.1),
    "BOME": dict(outer_ratio=1.0, step_size=0.1, eta=0.5, n_inner_steps=10, choice_phi="grad_norm"),
}
FILES = {
    "SABA": "saba.py",
    "SRBA": "srba.py",
    "AmIGO": "amigo.py",
    "StocBiO": "stocbio.py",
    "F2SA": "f2sa.py",
    "SOBA": "soba.py",
    "BOME": "bome.py",
}
THRESHOLDS = (1e-2, 1e-4, 1e-6)


def factored_oracle(samples: SampleSet):
    """f(inner_var, outer_var, start=0, batch_size=1): mean of the samples [start, start + batch_size)."""
    import jax
    import jax.numpy as jnp

    arrays = {k: jnp.asarray(v) for k, v in vars(samples).items()}

    def rows(name, start, size):
        return jax.lax.dynamic_slice_in_dim(arrays[name], start, size, axis=0)

    def f(inner_var, outer_var, start=0, batch_size=1):
        def dot(name, vector):
            return rows(name, start, batch_size) @ vector

        return jnp.mean(
            0.5 * dot("zz", inner_var) ** 2
            + 0.5 * dot("xx", outer_var) ** 2
            + dot("cross_x", outer_var) * dot("cross_z", inner_var)
            + dot("lin_z", inner_var)
            + dot("lin_x", outer_var)
        )

    return jax.jit(f, static_argnames=("batch_size",))


def benchmark_oracle(snapshot: Path, samples: SampleSet):
    """The benchmark's own oracle (its ``get_function``) on our per-sample matrices written out."""
    import jax.numpy as jnp

    dataset = _load(snapshot / "datasets" / "simulated.py", "benchmark_simulated_dataset")
    dense = samples.dense()
    return dataset.get_function(*(jnp.asarray(dense[k]) for k in ("zz", "xx", "cross", "lin_z", "lin_x")))


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Clock:
    """The callback handed to a solver's ``run``: times the solver between calls, evaluates outside."""

    def __init__(self, solver, problem, seconds: float, per_call: int, points: int, floor: float = 1e-14):
        self.solver, self.problem, self.seconds, self.per_call = solver, problem, seconds, per_call
        self.spacing, self.floor = seconds / points, floor
        self.elapsed, self.iterations, self.last = 0.0, 0, None
        self.record = dict(
            seconds=[],
            iterations=[],
            suboptimality=[],
            stopped="time",
            **{f"time_to_{t:g}": None for t in THRESHOLDS},
            **{f"iterations_to_{t:g}": None for t in THRESHOLDS},
        )

    def __call__(self) -> bool:
        import jax

        outer = jax.block_until_ready(self.solver.outer_var)  # the last chunk is done: stop the clock
        if self.last is not None:
            self.elapsed += time.perf_counter() - self.last
            self.iterations += self.per_call
        value = self.problem.relative_suboptimality(np.asarray(outer, np.float64))
        self._note(value)
        go = self.elapsed < self.seconds and math.isfinite(value) and value >= self.floor
        if not math.isfinite(value):
            self.record["stopped"] = "diverged"
        elif value < self.floor:
            self.record["stopped"] = "floor"
        self.last = time.perf_counter()
        return go

    def _note(self, value: float) -> None:
        r = self.record
        for t in THRESHOLDS:
            if r[f"time_to_{t:g}"] is None and value <= t:
                r[f"time_to_{t:g}"], r[f"iterations_to_{t:g}"] = self.elapsed, self.iterations
        last = not (self.elapsed < self.seconds and math.isfinite(value) and value >= self.floor)
        if not r["seconds"] or self.elapsed - r["seconds"][-1] >= self.spacing or len(r["seconds"]) < 20 or last:
            r["seconds"].append(self.elapsed)
            r["iterations"].append(self.iterations)
            r["suboptimality"].append(value)


def run_one(name: str, snapshot: Path, problem, oracles, seconds: float, points: int, seed: int) -> dict:
    import jax.numpy as jnp

    module = _load(snapshot / "solvers" / FILES[name], f"benchmark_solver_{name.lower()}")
    params = dict(PUBLISHED[name], random_state=seed)
    solver = module.Solver.get_instance(**params)
    solver.run_once = lambda calls=1: solver.run(_StopAfter(calls))  # benchopt's warm-up without its runner
    f_inner, f_outer = oracles
    start = time.perf_counter()
    solver.set_objective(
        f_inner=f_inner,
        f_outer=f_outer,
        n_inner_samples=problem.inner.size,
        n_outer_samples=problem.outer.size,
        inner_var0=jnp.asarray(problem.z0),
        outer_var0=jnp.asarray(problem.x0),
    )  # includes the solver's own warm-up (compiles)
    compile_seconds = time.perf_counter() - start
    clock = Clock(solver, problem, seconds, params.get("eval_freq", 1), points)
    solver.run(clock)
    r = clock.record
    finite = [v for v in r["suboptimality"] if math.isfinite(v)]
    r.update(
        framework="jax",
        method=name,
        settings="published",
        options=params,
        mode="full" if "batch_size" not in params else f"minibatch{params['batch_size']}",
        final=r["suboptimality"][-1],
        best=min(finite) if finite else float("nan"),
        solver_seconds=clock.elapsed,
        seconds_per_iteration=clock.elapsed / max(clock.iterations, 1),
        compile_seconds=compile_seconds,
        load_average=list(os.getloadavg()),
    )
    print(
        f"jax {name}: {r['final']:.3g} after {clock.iterations} iterations ({clock.elapsed:.1f} s), "
        f"1e-4 at {r['time_to_0.0001']}",
        flush=True,
    )
    return r


class _StopAfter:
    def __init__(self, calls: int):
        self.left = calls

    def __call__(self) -> bool:
        self.left -= 1
        return self.left >= 0


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--snapshot", required=True, help="a checkout of benchopt/benchmark_bilevel")
    p.add_argument("--data", required=True, help="the .npz written by SimulatedQuadratic.arrays()")
    p.add_argument("--out", required=True, help="JSON file for the run records")
    p.add_argument("--solvers", default=",".join(PUBLISHED), help=f"comma-separated subset of {list(PUBLISHED)}")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--points", type=int, default=150)
    p.add_argument("--seed", type=int, default=1, help="the solvers' random_state (mini-batch order)")
    p.add_argument("--oracle", choices=("benchmark", "factored"), default="benchmark")
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="JAX's precision (float32 is JAX's and the benchmark's default)",
    )
    args = p.parse_args(argv)
    snapshot = Path(args.snapshot)
    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    sys.path.insert(0, str(snapshot))  # the solvers import benchmark_utils from the benchmark's root
    out = Path(args.out).resolve()
    problem = from_arrays(dict(np.load(args.data)))
    os.chdir(Path(args.data).resolve().parent)  # benchmark_utils' joblib cache, if any, lands beside the data
    make = factored_oracle if args.oracle == "factored" else (lambda s: benchmark_oracle(snapshot, s))
    oracles = (make(problem.inner), make(problem.outer))
    names = [n.strip() for n in args.solvers.split(",") if n.strip()]
    records = []
    for name in names:
        records.append(run_one(name, snapshot, problem, oracles, args.seconds, args.points, args.seed))
        for r in records:
            r.update(oracle=args.oracle, dtype=args.dtype)
        out.write_text(json.dumps(dict(jax_version=jax.__version__, runs=records), default=float))


if __name__ == "__main__":
    main()

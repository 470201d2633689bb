"""One benchmark process: builds a problem, times and measures what its JSON spec asks, prints the records.

Run by ``run.py`` (one fresh process per configuration in the full run, so one configuration's peak memory
cannot hide another's); each record is printed as a line ``RESULT {json}`` on stdout.

Spec kinds:
- ``sweep``: for each (method, T) config: seconds per upper iteration (``solver.step``), the plain Keras train
  step interleaved with it, their ratio, and peak resident memory during steady-state steps.
- ``inner``: the marginal cost of ONE inner step (slope of step time between T=1 and T=K) of Penalty and
  ApproxGrad against the plain step, plus the building blocks of both (where their time goes).
- ``compare``: one solver and T under several option sets (``hvp`` modes, ``jit_compile``), interleaved.
- ``overhead``: seconds per upper iteration through ``bl.fit`` with ``steps_per_execution`` k (graph and XLA) on
  paper Example 1 and on the digits denoising problem, next to ``solver.run``'s in-graph loop (the floor).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import bilevel_tf as bl  # noqa: E402
from bilevel_tf.core import autodiff  # noqa: E402
import measure  # noqa: E402
import problems  # noqa: E402


def emit(record: Dict[str, Any]) -> None:
    print("RESULT " + json.dumps(record), flush=True)


def _bench(spec: Dict[str, Any]) -> problems.Bench:
    return problems.build(spec["problem"], spec.get("scale", 1.0), spec.get("batch", 128))


def _step_fn(solver, bench) -> Callable[[], object]:
    return lambda: solver.step(bench.upper_batch, bench.lower_batch)


def _warm(fn: Callable[[], object], twice: bool = True) -> float:
    """First call (trace + compile + run), optionally one more; returns the first call's seconds."""
    start = time.perf_counter()
    measure.sync(fn())
    first = time.perf_counter() - start
    if twice:
        measure.sync(fn())
    return first


def run_sweep(spec: Dict[str, Any]) -> None:
    bench = _bench(spec)
    jit = bool(spec.get("jit", False))
    plain = bench.plain_step(jit)
    _warm(plain)
    baseline = measure.rss_mb()  # model, data, TensorFlow and a warmed-up plain step
    for config in sorted(spec["configs"], key=lambda c: (c["method"], c["T"])):
        solver = bl.make_solver(
            config["method"],
            bench.problem,
            **problems.solver_options(bench, config["method"], config["T"], jit, config.get("hvp")),
        )
        step = _step_fn(solver, bench)
        compile_s = _warm(step, twice=False)  # its time (compile + one step) bounds a step's from above
        reps = measure.reps_for(compile_s, spec.get("budget_s", 60), spec.get("min_reps", 3), spec.get("max_reps", 7))
        # peak memory over the timed repetitions (the plain step's own peak is far below the solver's)
        with measure.PeakMemory() as memory:
            samples = measure.interleaved({"solver": step, "plain": plain}, reps)
        emit(
            dict(
                kind="sweep",
                problem=bench.name,
                **bench.info,
                method=config["method"],
                T=config["T"],
                jit=jit,
                hvp=solver.hvp,
                **_timing(samples, "solver", "plain"),
                reps=reps,
                compile_seconds=compile_s,
                baseline_rss_mb=baseline,
                peak_above_baseline_mb=memory.peak_mb - baseline,
                peak_rss_mb=memory.peak_mb,
                rss_before_mb=memory.before_mb,
                peak_is_lifetime=not memory.reset_ok,
                lifetime_peak_mb=measure.lifetime_peak_mb(),
                isolated=len(spec["configs"]) == 1,
            )
        )
        del solver, step
        gc.collect()


def _timing(samples: measure.Samples, name: str, plain: str) -> Dict[str, float]:
    """Medians of wall and CPU seconds of ``name`` and of the plain step, and their paired ratios."""
    return dict(
        seconds=measure.median(samples[name]),
        plain_seconds=measure.median(samples[plain]),
        ratio=measure.ratio(samples, name, plain),
        cpu_seconds=measure.median(samples.cpu[name]),
        plain_cpu_seconds=measure.median(samples.cpu[plain]),
        cpu_ratio=measure.ratio(samples.cpu, name, plain),
    )


def _blocks(bench: problems.Bench, jit: bool) -> Dict[str, Callable[[], object]]:
    """The building blocks of one inner step, each compiled alone."""
    problem, ub, lb = bench.problem, bench.upper_batch, bench.lower_batch
    lower = problem.lower_vars
    vector = [tf.random.stateless_normal(v.shape, [0, i]) for i, v in enumerate(lower)]
    adam = keras.optimizers.Adam(1e-9)
    adam.build(lower)
    zeros = [tf.zeros(v.shape) for v in lower]

    def first(xs):  # depend on EVERY output: a graph returning one entry would prune the others' work
        return tf.add_n([tf.reduce_sum(tf.convert_to_tensor(x)) for x in xs])

    blocks = {
        "lower gradient (F+B of g)": lambda: first(autodiff.lower_value_and_grad(problem, lb)[1]),
        "upper gradient (F+B of f)": lambda: first(autodiff.upper_value_and_grad(problem, ub, lower)[1]),
        "HVP, double backward": lambda: first(autodiff.hvp(problem, lb, vector)),
        "HVP, forward-over-reverse": lambda: first(
            autodiff.hvp(problem, lb, vector, mode=autodiff.FORWARD_OVER_REVERSE)
        ),
        "Penalty pass: grad_v [f + <grad_v g, nu + rho grad_v g>]": lambda: first(
            autodiff.second_order(problem, lb, lambda gv: [0.01 * x for x in gv], lower, extra=lambda: problem.f(ub))[3]
        ),
        "Adam update of v": lambda: (adam.apply_gradients(zip(zeros, lower)), tf.constant(0.0))[1],
    }
    return {name: tf.function(fn, jit_compile=jit) for name, fn in blocks.items()}


def run_inner(spec: Dict[str, Any]) -> None:
    bench = _bench(spec)
    k = int(spec.get("K", 11))
    for jit in spec.get("jit", [False]):
        plain = bench.plain_step(jit)
        fns: Dict[str, Callable[[], object]] = {"plain": plain}
        for method in ("penalty", "approxgrad"):
            for T in (1, k):
                solver = bl.make_solver(method, bench.problem, **problems.solver_options(bench, method, T, jit))
                fns[f"{method} T={T}"] = _step_fn(solver, bench)
        if spec.get("blocks", True):
            fns.update(_blocks(bench, jit))
        for fn in fns.values():
            _warm(fn)
        samples = measure.interleaved(fns, spec.get("reps", 5))
        for method in ("penalty", "approxgrad"):
            record = dict(kind="inner", problem=bench.name, **bench.info, method=method, jit=jit, K=k)
            for prefix, clock in (("", samples), ("cpu_", samples.cpu)):
                slopes = [(b - a) / (k - 1) for a, b in zip(clock[f"{method} T=1"], clock[f"{method} T={k}"])]
                record.update(
                    {
                        f"{prefix}inner_seconds": measure.median(slopes),
                        f"{prefix}plain_seconds": measure.median(clock["plain"]),
                        f"{prefix}ratio": measure.median([s / p for s, p in zip(slopes, clock["plain"])]),
                        f"{prefix}step_T1_ratio": measure.ratio(clock, f"{method} T=1", "plain"),
                    }
                )
            emit(record)
        plain_flops = measure.graph_flops(plain.concrete())
        for name in fns:
            if name == "plain" or " T=" in name:
                continue
            flops = measure.graph_flops(fns[name].get_concrete_function())
            emit(
                dict(
                    kind="block",
                    problem=bench.name,
                    **bench.info,
                    jit=jit,
                    block=name,
                    flops=flops,
                    plain_flops=plain_flops,
                    flop_ratio=flops / plain_flops,
                    **_timing(samples, name, "plain"),
                )
            )


def run_compare(spec: Dict[str, Any]) -> None:
    benches: Dict[str, problems.Bench] = {}

    def bench_for(variant: Dict[str, Any]) -> problems.Bench:
        """The problem built under the variant's dtype policy (same seed: same initial weights and batches)."""
        policy = variant.get("precision", "float32")
        if policy not in benches:
            bl.precision.set_policy(policy)
            benches[policy] = _bench(spec)
            bl.precision.set_policy("float32")
        return benches[policy]

    bench = bench_for({})  # the float32 problem: its plain step is the reference of every variant
    variants: List[Dict[str, Any]] = spec["variants"]
    for method in spec["methods"]:
        fns = {}
        for variant in variants:
            vb = bench_for(variant)
            solver = bl.make_solver(
                method,
                vb.problem,
                **problems.solver_options(vb, method, spec["T"], variant.get("jit", False), variant.get("hvp")),
            )
            fns[json.dumps(variant, sort_keys=True)] = _step_fn(solver, vb)
        fns["plain"] = bench.plain_step(False)
        compile_s = {name: _warm(fn) for name, fn in fns.items()}
        seconds = max(measure.timed(fn)[0] for fn in fns.values())
        samples = measure.interleaved(fns, measure.reps_for(seconds, spec.get("budget_s", 30), 3, 7))
        reference = json.dumps(variants[0], sort_keys=True)
        for variant in variants:
            name = json.dumps(variant, sort_keys=True)
            emit(
                dict(
                    kind="compare",
                    study=spec["study"],
                    problem=bench.name,
                    **bench.info,
                    method=method,
                    T=spec["T"],
                    variant=variant,
                    **_timing(samples, name, "plain"),
                    ratio_to_first=measure.ratio(samples, name, reference),
                    cpu_ratio_to_first=measure.ratio(samples.cpu, name, reference),
                    compile_seconds=compile_s[name],
                )
            )


# ------------------------------------------------------------------------------------------ overhead
def _overhead_problem(name: str, jit: bool):
    """(solver, upper data, lower data, (upper batch, lower batch) for the solver.run floor)."""
    if name == "ex1":  # paper Example 1, u, v in R^10, Penalty with T = 10, full batch (no data)
        from bilevel_tf.apps.synthetic import problems as synthetic, config as synthetic_config

        example = synthetic.make_example(1, dim=10)
        solver = bl.make_solver(
            "penalty",
            example.problem,
            inner_steps=10,
            jit_compile=jit,  # the paper's setup
            **synthetic_config.SOLVER_OPTIONS["penalty"](synthetic_config.PAPER_SETTINGS),
        )
        return solver, None, None, (None, None)
    if name == "digits":  # the digits denoising demo's bilevel phase (its tf.data streams), no warm start
        import importlib.util
        import tempfile

        path = (
            Path(__file__).resolve().parents[1]
            / "data_denoising"
            / "mnist_small_scale"
            / "test_bilevel_importance_learning_mnist.py"
        )
        loader = importlib.util.spec_from_file_location("digits_runner", path)
        runner = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(runner)
        from bilevel_tf.apps.denoising import importance

        argv = ["--dataset", "digits", "--out", tempfile.mkdtemp(), "--verbose", "0"] + (["--jit"] if jit else [])
        args, spec = importance._parse(runner.SPEC, argv)
        setup = importance.prepare(spec, args, warm_start=False)
        first = (next(iter(setup.val_stream)), next(iter(setup.train_stream)))
        return setup.solver, setup.val_stream, setup.train_stream, first
    raise ValueError(f"unknown overhead problem {name!r}")


def run_overhead(spec: Dict[str, Any]) -> None:
    """For each k: a warm-up fit (traces the k-iteration call), then ``reps`` timed fits of ``iterations``
    upper iterations each (a multiple of every k), timed around the whole ``bl.fit`` call (its Python loop,
    batch handling and logging included); the floor is ``solver.run(iterations)`` on one fixed pair of batches."""
    n, reps = spec["iterations"], spec.get("reps", 3)
    for jit in spec["jit"]:
        solver, upper, lower, (ub, lb) = _overhead_problem(spec["problem"], jit)
        info = dict(
            kind="overhead", problem=spec["problem"], method="penalty", T=solver.inner_steps, jit=jit, iterations=n
        )
        base = None
        for k in spec["ks"]:

            def fit(count):
                start = int(solver.iterations.numpy())
                t0, c0 = time.perf_counter(), time.process_time()
                bl.fit(solver, upper, lower, steps=start + count, steps_per_execution=k, verbose=0)
                return (time.perf_counter() - t0) / count, (time.process_time() - c0) / count

            warm = -int(solver.iterations.numpy()) % k + 2 * k  # end on a multiple of k: every timed call is k long
            compile_s = fit(warm)[0] * warm
            samples = [fit(n) for _ in range(reps)]
            wall, cpu = measure.median([w for w, _ in samples]), measure.median([c for _, c in samples])
            base = wall if base is None else base
            emit(
                dict(
                    info,
                    k=k,
                    seconds=wall,
                    cpu_seconds=cpu,
                    samples=[w for w, _ in samples],
                    speedup_vs_first_k=base / wall,
                    warmup_seconds=compile_s,
                )
            )
        measure.sync(solver.run(n, ub, lb))  # trace
        samples = [measure.timed(lambda: solver.run(n, ub, lb)) for _ in range(reps)]
        emit(
            dict(
                info,
                k="solver.run",
                seconds=measure.median([w for w, _ in samples]) / n,
                cpu_seconds=measure.median([c for _, c in samples]) / n,
                speedup_vs_first_k=base / (measure.median([w for w, _ in samples]) / n),
            )
        )


def main(argv: List[str]) -> None:
    spec = json.loads(argv[0])
    {"sweep": run_sweep, "inner": run_inner, "compare": run_compare, "overhead": run_overhead}[spec["kind"]](spec)


if __name__ == "__main__":
    main(sys.argv[1:])

"""bl.fit(..., steps_per_execution=k): k upper iterations per compiled call, the same trajectory as k = 1,
exact resume, call-boundary logging/checkpoints, the exact NaN step, Python sources stacked on the host."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf.apps.synthetic import config as synthetic_config, problems
from quadratic import Quadratic
from test_fit import _importance_problem

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"


def _penalty(problem, jit=False):
    # the default schedule calibrates rho and lam in _prepare from the first batches
    return bl.Penalty(
        problem,
        upper_optimizer=keras.optimizers.Adam(0.05),
        lower_optimizer=keras.optimizers.Adam(0.01),
        inner_steps=3,
        jit_compile=jit,
    )


def _values(problem, solver):
    return [np.array(v) for v in list(problem.upper_vars) + list(problem.lower_vars) + list(solver.nu)]


TIMINGS = ("seconds", "step_seconds")


def _assert_same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)  # bit for bit


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_k_steps_per_call_follow_the_one_step_trajectory_and_resume_exactly(tmp_path, jit):
    problem, up, lo = _importance_problem()
    reference = _penalty(problem, jit)
    ref_history = bl.fit(reference, up, lo, steps=12, verbose=0)
    expected = _values(problem, reference)
    ref_logs = {r["step"]: r for r in ref_history}

    problem, up, lo = _importance_problem()
    solver = _penalty(problem, jit)
    # calls 1-5, 6-10, 11-12: the last one is shorter
    history = bl.fit(solver, up, lo, steps=12, steps_per_execution=5, verbose=0)
    assert [r["step"] for r in history] == [5, 10, 12]
    _assert_same(_values(problem, solver), expected)
    for record in history:  # each call returns its last iteration's logs
        assert {k: v for k, v in record.items() if k not in TIMINGS} == {
            k: v for k, v in ref_logs[record["step"]].items() if k not in TIMINGS
        }
    assert int(solver.lower_optimizer.iterations.numpy()) == 36
    assert solver.schedule() == reference.schedule()

    if jit:  # resuming does not depend on XLA (and every XLA fit compiles anew): the graph case covers it
        return
    # interrupted at 7 (calls 1-4, 5-7 with k = 4), resumed with k = 4: calls 8, 9-12
    problem, up, lo = _importance_problem()
    first = _penalty(problem, jit)
    bl.fit(first, up, lo, steps=7, steps_per_execution=4, checkpoint_dir=str(tmp_path), checkpoint_every=100, verbose=0)
    problem, up, lo = _importance_problem()
    resumed = _penalty(problem, jit)
    history = bl.fit(resumed, up, lo, steps=12, steps_per_execution=4, checkpoint_dir=str(tmp_path), verbose=0)
    # the whole run's records (4, 7 restored); calls end on multiples of k after a resume too
    assert [r["step"] for r in history] == [4, 7, 8, 12]
    _assert_same(_values(problem, resumed), expected)


def test_calls_do_not_retrace_and_callbacks_run_at_call_boundaries(tmp_path):
    problem, up, lo = _importance_problem()
    solver = _penalty(problem)
    seen, evaluated = [], []
    history = bl.fit(
        solver,
        up,
        lo,
        steps=23,
        steps_per_execution=4,
        checkpoint_dir=str(tmp_path),
        checkpoint_every=6,
        max_to_keep=10,
        log_every=5,
        verbose=0,
        csv_path=str(tmp_path / "log.csv"),
        callbacks=[
            bl.LambdaCallback(on_step_end=lambda s, logs: seen.append(s)),
            bl.Evaluate(lambda: evaluated.append(1) or {"x": 1.0}, every=8),
        ],
    )
    assert seen == [4, 8, 12, 16, 20, 23]
    # the first boundary at or after each multiple of log_every (5, 10, 15, 20) and the last step
    assert [r["step"] for r in history] == [8, 12, 16, 20, 23]
    assert [int(line.split(",")[0]) for line in (tmp_path / "log.csv").read_text().splitlines()[1:]] == [8, 12, 16, 20]
    assert len(evaluated) == 3  # at 8, 16 and the final step
    # checkpoints: the boundaries at or after 6, 12, 18 (8, 12, 20) and the final step
    saved = sorted(int(f[5:-6]) for f in os.listdir(tmp_path) if f.startswith("ckpt-") and f.endswith(".index"))
    assert saved == [8, 12, 20, 23]
    # in-graph draws have the dataset's shapes ([None, ...]): one more trace than the eager first batch, then none
    assert solver.trace_count == 2
    assert int(solver.iterations.numpy()) == 23


@pytest.mark.parametrize("kind", ["callable", "iterable", "dataset", "dataset_xla"])
def test_nan_stops_the_call_at_the_exact_step(tmp_path, kind):
    q = Quadratic()
    base = q.problem()
    bad_at = 6  # the batch of step 6 poisons the upper loss; calls are 1-4, 5-8

    def f(batch):
        return base.upper_loss(batch) + tf.reduce_sum(batch)

    problem = bl.BilevelProblem(f, base.lower_loss, base.upper_vars, base.lower_vars)
    solver = bl.GD(problem, inner_steps=1, jit_compile=kind == "dataset_xla")
    batches = [tf.constant([np.nan if i == bad_at - 1 else 0.0]) for i in range(10)]
    source = {"callable": lambda step: batches[step], "iterable": batches}.get(
        kind, tf.data.Dataset.from_tensor_slices(tf.stack(batches)).batch(1).map(lambda b: tf.reshape(b, [1]))
    )
    with pytest.raises(bl.NonFiniteError, match=r"step 6: upper_loss = nan; stopped, last good checkpoint kept: .*-4"):
        bl.fit(
            solver,
            source,
            None,
            steps=10,
            steps_per_execution=4,
            checkpoint_dir=str(tmp_path),
            checkpoint_every=2,
            verbose=0,
        )
    assert int(solver.iterations.numpy()) == bad_at  # the call stopped at the bad step
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("-4")


def test_python_sources_are_stacked_per_call():
    results = []
    for k in (1, 3):
        q = Quadratic()
        solver = bl.GD(q.problem(), inner_steps=1)
        calls = []

        def upper(step):
            calls.append(step)
            return tf.fill([2], float(step))

        bl.fit(
            solver,
            upper_data=upper,
            lower_data=[tf.ones([2]) * i for i in range(4)],
            steps=8,
            steps_per_execution=k,
            verbose=0,
        )
        assert calls == list(range(8))  # called once per step, in order, on the host
        results.append((q.u.numpy(), q.v.numpy()))
    _assert_same(results[0], results[1])

    solver = bl.GD(Quadratic().problem(), inner_steps=1)
    with pytest.raises(ValueError, match="steps_per_execution > 1 stacks the batches"):
        bl.fit(solver, upper_data=lambda step: tf.zeros([step + 1]), steps=4, steps_per_execution=3, verbose=0)
    with pytest.raises(ValueError, match="steps_per_execution must be an integer >= 1"):
        bl.fit(solver, steps=4, steps_per_execution=0, verbose=0)


def test_ex1_hundred_steps_per_call_follow_the_same_trajectory():
    """Paper Ex.1 (u, v in R^10), Penalty with T = 10, XLA, through bl.fit: k = 100 ends where k = 1 does (its
    speed-up is measured by ``benchmarks/run.py --sections overhead``, not here)."""
    states = {}
    for k in (1, 100):
        example = problems.make_example(1)
        problems.initialize(example, seed=0)
        solver = bl.make_solver(
            "penalty",
            example.problem,
            inner_steps=10,
            jit_compile=True,
            **synthetic_config.SOLVER_OPTIONS["penalty"](synthetic_config.PAPER_SETTINGS),
        )
        bl.fit(solver, steps=300, steps_per_execution=k, verbose=0)
        states[k] = (example.u.numpy(), example.v.numpy(), solver.schedule())
    _assert_same(states[1][:2], states[100][:2])
    assert states[1][2] == states[100][2]
    assert np.any(states[1][0] != 0)  # u moved


def test_runner_flag_gives_the_same_run(tmp_path):
    """--steps-per-execution reaches bl.fit in a runner (the digits denoising one: 100 points, batch 20, so 5 upper
    iterations per epoch, logged every step; k = 10 is lowered to 5, a divisor, so that the end-of-epoch
    renormalisation keeps its steps) and changes nothing in the results."""
    from runner_utils import run_runner

    runner = "data_denoising/mnist_small_scale/test_bilevel_importance_learning_mnist.py"
    flags = ["--dataset", "digits", "--smoke", "--batch-size", "20", "--inner-steps", "2", "--seed", "4"]
    one = run_runner(runner, flags, tmp_path / "k1")
    more = run_runner(runner, flags + ["--steps-per-execution", "10"], tmp_path / "k10")
    logged = [r["step"] for r in one["history"] if "upper_loss" in r]
    assert logged == list(range(1, 11))
    assert [r["step"] for r in more["history"] if "upper_loss" in r] == [5, 10]  # call boundaries only
    by_step = {r["step"]: r for r in one["history"] if "upper_loss" in r}
    for record in more["history"]:
        if "upper_loss" in record:
            for key in ("upper_loss", "lower_loss", "penalty"):
                assert record[key] == pytest.approx(by_step[record["step"]][key], rel=1e-5, abs=1e-7), key
    for key, value in one["metrics"].items():
        assert more["metrics"][key] == (
            pytest.approx(value, rel=1e-5, abs=1e-7) if isinstance(value, float) else value
        ), key

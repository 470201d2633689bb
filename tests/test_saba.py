"""bl.SABA over bl.FiniteSum losses: its per-sample memory (exact values, checkpointed, reset), mini-batches
from bl.fit, no retracing, XLA, and the errors for batches or losses of the wrong form."""

import numpy as np
import pytest
import tensorflow as tf

import bilevel_tf as bl
from finite_sum_quadratic import FiniteSumQuadratic

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"


def _memory(solver):
    return {name: [t.numpy().copy() for t in tables + means] for name, (tables, means) in solver.memory.items()}


def _state(q, solver):
    return [q.u.numpy(), q.v.numpy(), solver.z[0].numpy()] + [x for xs in _memory(solver).values() for x in xs]


def test_mini_batches_through_fit_reach_the_solution_that_soba_only_approaches():
    errors = {}
    for method in ("saba", "soba"):
        q = FiniteSumQuadratic()
        solver = bl.make_solver(method, q.finite_sum_problem())
        bl.fit(solver, *q.datasets(), steps=3000, steps_per_execution=100, verbose=0)
        errors[method] = q.u_error()
        assert solver.trace_count == 1
    # SOBA's constant steps stop at the noise floor of its mini-batch oracles; SAGA's estimates lose their variance
    assert errors["saba"] < 2e-3 and errors["soba"] > 10 * errors["saba"], errors


def test_the_memory_holds_each_samples_last_oracle_and_their_mean():
    q = FiniteSumQuadratic(n_lower=6, n_upper=4)
    solver = bl.SABA(q.finite_sum_problem())
    rng = np.random.default_rng(1)
    u, v, z = rng.normal(size=3), rng.normal(size=5), rng.normal(size=5)
    q.u.assign(u), q.v.assign(v), solver.z[0].assign(z)
    solver.step((tf.constant([2, 0]),), (tf.constant([4, 1, 4]),))  # a repeated index: its row moves once
    A, B, c, D = (q.samples[k].numpy() for k in "ABcD")
    seen = [1, 4]
    r = A @ v - B @ u - c
    expected = {
        "lower_grad": r[:, None] * A + q.mu * v,
        "lower_hvp": (A @ z)[:, None] * A + q.mu * z,
        "lower_cross": -(A @ z)[:, None] * B,
        "upper_grad_v": v - D,
    }
    for name, rows in expected.items():
        (table,), (mean,) = solver.memory[name]
        drawn = seen if name.startswith("lower") else [0, 2]
        np.testing.assert_allclose(table.numpy()[drawn], rows[drawn], rtol=1e-12, atol=1e-12)
        assert not np.delete(table.numpy(), drawn, axis=0).any()  # rows never drawn stay zero
        np.testing.assert_allclose(mean.numpy(), rows[drawn].sum(0) / len(table.numpy()), rtol=1e-12, atol=1e-12)
    solver.reset_state()  # memory back to zero
    assert not any(x.any() for xs in _memory(solver).values() for x in xs)


def test_full_batch_saba_takes_sobas_steps():
    # batch None = the whole set: the SAGA estimates are the exact full-batch oracles
    results = []
    for cls in (bl.SABA, bl.SOBA):
        q = FiniteSumQuadratic()
        solver = cls(q.finite_sum_problem())
        solver.run(20)
        results.append((q.u.numpy(), q.v.numpy(), solver.z[0].numpy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("per_call", [1, 4])
def test_checkpointed_memory_resumes_the_uninterrupted_trajectory(tmp_path, per_call):
    q = FiniteSumQuadratic()
    reference = bl.SABA(q.finite_sum_problem())
    bl.fit(reference, *q.datasets(), steps=11, verbose=0)
    expected = _state(q, reference)

    q = FiniteSumQuadratic()
    first = bl.SABA(q.finite_sum_problem())
    bl.fit(first, *q.datasets(), steps=6, steps_per_execution=per_call, checkpoint_dir=str(tmp_path), verbose=0)
    assert any(x.any() for xs in _memory(first).values() for x in xs)
    q = FiniteSumQuadratic()  # a fresh problem and solver: everything comes from the checkpoint
    resumed = bl.SABA(q.finite_sum_problem())
    bl.fit(resumed, *q.datasets(), steps=11, steps_per_execution=per_call, checkpoint_dir=str(tmp_path), verbose=0)
    for got, want in zip(_state(q, resumed), expected):
        np.testing.assert_array_equal(got, want)  # bit for bit, memory included


def test_steps_do_not_retrace_and_xla_takes_the_same_steps():
    results = []
    for jit in (False, True):
        q = FiniteSumQuadratic()
        calls = []
        problem = q.finite_sum_problem()
        per_sample = problem.lower_loss.per_sample_loss

        def counted(batch):
            calls.append(1)
            return per_sample(batch)

        problem.lower_loss.per_sample_loss = counted
        solver = bl.SABA(problem, jit_compile=jit, inner_steps=2)
        for seed in range(4):  # new index batches, same shapes
            rng = np.random.default_rng(seed)
            solver.step((tf.constant(rng.permutation(12)[:4]),), (tf.constant(rng.permutation(24)[:6]),))
        assert solver.trace_count == 1
        traced = len(calls)
        solver.step((tf.constant([0, 1, 2, 3], tf.int64),), (tf.constant([5, 4, 3, 2, 1, 0], tf.int64),))
        assert len(calls) == traced  # no Python loss code ran again
        results.append(_state(q, solver))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def _problem_with(lower_loss=None, plain_upper=False):
    q = FiniteSumQuadratic()
    fs = q.finite_sum_problem()
    return bl.BilevelProblem(q.upper_loss if plain_upper else fs.upper_loss, lower_loss or fs.lower_loss, [q.u], [q.v])


BATCH = (tf.constant([0, 1]),)


@pytest.mark.parametrize(
    "make_problem, upper, lower, message",
    [
        (
            lambda: FiniteSumQuadratic().problem(),
            None,
            BATCH,
            "SABA: lower_loss is not a bl.FiniteSum but got lower batches",
        ),
        (
            lambda: _problem_with(plain_upper=True),
            BATCH,
            None,
            "SABA: upper_loss is not a bl.FiniteSum but got upper batches",
        ),
        (
            lambda: FiniteSumQuadratic().finite_sum_problem(),
            None,
            tf.constant([0, 1]),
            "a tensor batch carries no sample indices",
        ),
        (
            lambda: FiniteSumQuadratic().finite_sum_problem(),
            None,
            {"x": tf.constant([0, 1])},
            "the dict batch has no 'index' entry",
        ),
        (
            lambda: FiniteSumQuadratic().finite_sum_problem(),
            None,
            (tf.constant([0.0, 1.0]),),
            "the sample indices must be an integer vector",
        ),
        (
            lambda: _problem_with(lower_loss=bl.FiniteSum(lambda b: tf.reduce_sum(tf.cast(b[0], tf.float64)), 24)),
            None,
            BATCH,
            "per_sample_loss must return a floating vector",
        ),
        (
            lambda: _problem_with(lower_loss=bl.FiniteSum(lambda b: tf.zeros([3], tf.float64), 24)),
            None,
            BATCH,
            "the batch holds 2 indices but per_sample_loss returned 3 losses",
        ),
    ],
)
def test_batches_and_losses_of_the_wrong_form(make_problem, upper, lower, message):
    solver = bl.SABA(make_problem())
    with pytest.raises(ValueError, match=message):
        solver.step(upper, lower)


def test_finite_sum_arguments_are_checked():
    with pytest.raises(ValueError, match="size must be a positive integer"):
        bl.FiniteSum(lambda b: b, size=0)
    with pytest.raises(ValueError, match="per_sample_loss must be callable"):
        bl.FiniteSum("loss", size=3)
    with pytest.raises(ValueError, match="indices must be None or callable"):
        bl.FiniteSum(lambda b: b, size=3, indices=[0, 1])
    loss = bl.FiniteSum(lambda b: tf.cast(b["x"], tf.float32), size=5, indices=lambda b: b["ids"])
    batch = {"ids": tf.constant([3, 1]), "x": tf.constant([1.0, 3.0])}
    assert float(loss(batch)) == 2.0 and loss.indices(batch).numpy().tolist() == [3, 1]
    assert loss.indices(None).numpy().tolist() == [0, 1, 2, 3, 4]

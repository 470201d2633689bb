"""benchmarks/simulated_quadratic.py (benchopt's simulated quadratic) and its bl.BilevelProblem, at a tiny size:
the closed form is right, every way of writing the losses gives the same numbers, and a solver reaches h*."""

import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import bilevel_tf as bl

sys.path.append(str(Path(__file__).resolve().parents[1] / "benchmarks"))  # after tests/: no shadowing

import simulated_quadratic as sq  # noqa: E402
from simulated_problem import BlockSampler, SimulatedProblem  # noqa: E402
from simulated_runs import chunk_functions, problem_for, recommended_options, run_solver, timed_loop  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return sq.SimulatedQuadratic(sq.SPECS["tiny"])


def test_closed_form(data):
    cf, rng = data.closed_form, np.random.default_rng(0)
    x = rng.normal(size=data.spec.dim_outer)
    z = cf.inner_solution(x)
    # z*(x) is stationary for g, h(x) is f at z*(x), and the hypergradient matches finite differences
    eps = 1e-6
    for k in range(data.spec.dim_inner):
        e = np.eye(data.spec.dim_inner)[k] * eps
        assert abs(data.inner.value(x, z + e) - data.inner.value(x, z - e)) / (2 * eps) < 1e-6
    assert data.outer.value(x, z) == pytest.approx(cf.value(x), rel=1e-12)
    e = np.eye(data.spec.dim_outer)[1] * 1e-5
    fd = (cf.value(x + e) - cf.value(x - e)) / 2e-5
    assert fd == pytest.approx(cf.hypergradient(x)[1], rel=1e-6)
    assert np.abs(cf.hypergradient(cf.x_star)).max() < 1e-10
    assert cf.suboptimality(x) == pytest.approx(cf.value(x) - cf.h_star, rel=1e-9)
    assert data.relative_suboptimality(data.x0) == pytest.approx(1.0)


def test_generator_matches_its_description(data):
    # rank-one per-sample matrices whose mean z-z block has eigenvalues in about [mu, L]; same seed, same data
    again = sq.SimulatedQuadratic(sq.SPECS["tiny"])
    np.testing.assert_array_equal(again.inner.zz, data.inner.zz)
    dense = data.inner.dense()
    assert np.linalg.matrix_rank(dense["cross"][0]) == 1
    big = sq.sample_set(np.random.default_rng(1), 20000, 5, 3, 1.0, 1.0, 0.1, 0.1)
    eig = np.linalg.eigvalsh(big.averaged()["zz"])
    np.testing.assert_allclose(eig, np.geomspace(0.1, 1.0, 5), rtol=0.1)
    assert np.linalg.eigvalsh(big.averaged()["xx"])[0] < 0.01  # one zero eigenvalue in the x-x block
    saved = sq.from_arrays(data.arrays())
    assert saved.closed_form.h_star == data.closed_form.h_star


@pytest.mark.parametrize("per_sample,full_batch", [("factored", "averaged"), ("dense", "per_sample")])
def test_losses_agree_with_numpy(data, per_sample, full_batch):
    quad = SimulatedProblem(data, per_sample=per_sample, full_batch=full_batch)
    rng = np.random.default_rng(2)
    x, z = rng.normal(size=data.spec.dim_outer), rng.normal(size=data.spec.dim_inner)
    quad.x.assign(x)
    quad.z.assign(z)
    batch = np.array([1, 5, 6], np.int32)
    assert float(quad.upper_loss(None)) == pytest.approx(data.outer.value(x, z), rel=1e-12)
    assert float(quad.lower_loss(tf.constant(batch))) == pytest.approx(data.inner.value(x, z, batch), rel=1e-12)
    # the bl.FiniteSum form (SABA's): the same means, and one loss per sample
    finite = quad.finite_sum_problem()
    assert float(finite.upper_loss(None)) == pytest.approx(data.outer.value(x, z), rel=1e-12)
    assert float(finite.lower_loss(tf.constant(batch))) == pytest.approx(data.inner.value(x, z, batch), rel=1e-12)
    assert finite.lower_loss.size == data.inner.size
    np.testing.assert_allclose(
        finite.lower_loss.per_sample_loss(tf.constant(batch)).numpy(),
        [data.inner.value(x, z, np.array([i])) for i in batch],
        rtol=1e-12,
    )


def test_block_sampler_visits_every_block_once_per_epoch():
    sampler = BlockSampler(12, 3, seed=0)
    epoch = sampler.take(4)
    assert sorted(epoch[:, 0].tolist()) == [0, 3, 6, 9]
    np.testing.assert_array_equal(epoch[:, 1] - epoch[:, 0], 1)
    with pytest.raises(ValueError, match="batch_size"):
        BlockSampler(10, 3, seed=0)


def test_timed_loop_stops_at_the_floor_and_doubles_chunks():
    state = {"value": 1.0, "chunks": []}

    def execute(k):
        state["chunks"].append(k)
        state["value"] *= 0.5**k
        return {"loss": tf.constant(0.0)}, k

    record = timed_loop(lambda k: k, execute, lambda: state["value"], seconds=60.0, min_chunk=1, floor=1e-6)
    assert record["stopped"] == "floor" and record["suboptimality"][-1] < 1e-6
    assert state["chunks"][:3] == [1, 2, 4]  # each chunk far below seconds / points: doubled
    assert record["iterations"][1:] == list(np.cumsum(state["chunks"]))
    assert record["iterations_to_0.01"] == 7 and record["time_to_1e-06"] is not None
    assert record["best"] == record["final"] == record["suboptimality"][-1]


def test_timed_loop_stops_when_a_chunk_ends_early_on_a_non_finite_loss():
    # run_steps stops at the first non-finite iteration: count what ran, stop, never grow the chunk on it
    record = timed_loop(
        lambda k: k, lambda k: ({"loss": tf.constant(np.inf)}, 1), lambda: 1e300, seconds=60.0, min_chunk=2
    )
    assert record["stopped"] == "diverged" and record["iterations"] == [0, 1]


@pytest.mark.slow  # compiles a Penalty step (seconds on a loaded CPU)
def test_timed_run_compiles_once_and_makes_progress(data):
    quad, batch_size = SimulatedProblem(data), 8
    record = run_solver(
        quad, "penalty", dict(upper_optimizer=1e-2, lower_optimizer=1e-2), seconds=0.5, batch_size=batch_size, points=10
    )
    assert record["retraces"] == 0
    assert record["suboptimality"][0] == pytest.approx(1.0)
    assert record["final"] < 0.5, record["final"]
    assert record["iterations"][-1] > 0 and record["seconds"][-1] >= 0.5


def test_saba_runs_on_the_finite_sum_form_and_converges(data):
    record = run_solver(
        SimulatedProblem(data), "saba", recommended_options("saba", 8, jit=False), seconds=0.2, batch_size=8, points=10
    )
    assert record["retraces"] == 0 and record["config"]["method"] == "saba"
    # convergence counted in iterations, not seconds (a loaded machine makes fewer per second)
    quad = SimulatedProblem(data)
    quad.reset()
    solver = bl.make_solver("saba", problem_for(quad, "saba"), **recommended_options("saba", 8, jit=False))
    prepare, execute, _ = chunk_functions(solver, data.outer.size, data.inner.size, 8, 0)
    for _ in range(100):  # 10 000 mini-batch iterations
        execute(prepare(100))
    assert quad.relative_suboptimality() < 1e-3  # variance reduced: no mini-batch noise floor

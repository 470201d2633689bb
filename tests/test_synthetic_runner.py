"""The synthetic examples: distance metrics, Penalty vs GD on Ex.1, and smoke runs of both runners."""

import numpy as np
import pytest

import bilevel_tf as bl
from bilevel_tf.apps.synthetic import config as synthetic_config, problems, toy_problem
from runner_utils import SOLVER_CLASSES, assert_solver_config, load_runner, run_runner

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"

RUNNER = "synthetic_examples/test_synthetic.py"
TOY = "synthetic_examples/pbgd_toy.py"


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    """No cached data sets or weights: the smoke runs below are also the check that --smoke alone runs offline."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "no_keras_cache"))


def _distance_at(example, u, v):
    example.u.assign(np.asarray(u, np.float32))
    example.v.assign(np.asarray(v, np.float32))
    return float(example.distance())


def test_distances_vanish_exactly_at_the_solutions():
    dim, seed = 6, 3
    a = problems.random_matrix(dim, seed)
    assert a.shape == (3, dim)
    null = np.linalg.svd(a.astype(np.float64))[2][3:]  # orthonormal basis of the null space of A
    in_null = 2.0 * null[0] - 1.5 * null[1]
    in_rows = a.T @ np.array([0.4, -0.3, 0.2])  # a row-space direction, seen by P
    e1, half = np.eye(dim)[0], np.full(dim, 0.5)
    ex1, ex2, ex3, ex4 = (problems.make_example(k, dim, seed) for k in (1, 2, 3, 4))

    assert _distance_at(ex1, half, half) == pytest.approx(0.0, abs=1e-6)
    assert _distance_at(ex1, half + e1, half) == pytest.approx(1.0, rel=1e-5)
    assert _distance_at(ex2, np.zeros(dim), np.zeros(dim)) == pytest.approx(0.0, abs=1e-6)
    assert _distance_at(ex2, e1, 2 * e1) == pytest.approx(np.sqrt(5.0), rel=1e-5)
    # Ex.3: the lower solution set is u + v = 1 + null(A); the metric ignores null-space components.
    assert _distance_at(ex3, half + in_null, half - 3 * in_null) == pytest.approx(0.0, abs=1e-5)
    assert _distance_at(ex3, half + in_rows, half) == pytest.approx(np.linalg.norm(in_rows), rel=1e-4)
    # Ex.4: u only matters through P u, v must be 0.
    assert _distance_at(ex4, in_null, np.zeros(dim)) == pytest.approx(0.0, abs=1e-5)
    assert _distance_at(ex4, in_rows, e1) == pytest.approx(np.sqrt(np.sum(in_rows**2) + 1), rel=1e-4)
    # The solutions are lower-level optimal: g vanishes there.
    ex3.u.assign((half + in_null).astype(np.float32))
    ex3.v.assign((half - in_null).astype(np.float32))
    assert float(ex3.problem.g(None)) == pytest.approx(0.0, abs=1e-5)


def test_penalty_reaches_the_ex1_solution_where_gd_does_not():
    """Ex.1: GD ignores dv*/du and converges to u = 0, v = 1 (distance sqrt(dim / 2)); Penalty converges
    to u = v = 0.5 (distance < 0.03 after 4000 iterations). Larger learning rates than the paper's so that it
    takes seconds."""
    example = problems.make_example(1, dim=4, seed=0)
    fast = synthetic_config.SolverSettings(lr_u=0.1, lr_v=0.1)
    final = {}
    for method in ("penalty", "gd"):
        solver = bl.make_solver(method, example.problem, inner_steps=1, **synthetic_config.SOLVER_OPTIONS[method](fast))
        cell = problems.run_trials(solver, example, trials=3, iterations=4000, record_every=500, seed=0)
        assert np.all(cell.curves[:, 0] > 4.0)  # random starts in the box are far away
        final[method] = cell.curves[:, -1]
    assert np.all(final["penalty"] < 0.05), final
    assert np.all(final["gd"] > 0.3), final
    assert final["gd"] == pytest.approx(np.sqrt(2.0), abs=0.05)  # its non-solution limit


def test_implicit_reaches_the_ex1_solution():
    """The runners' Implicit (CG on H_vv g + 1e-6 I, Adam steps at both levels) with T = 10."""
    example = problems.make_example(1, dim=4, seed=0)
    options = synthetic_config.SOLVER_OPTIONS["implicit"](synthetic_config.SolverSettings(lr_u=0.1, lr_v=0.1))
    solver = bl.make_solver("implicit", example.problem, inner_steps=10, **options)
    cell = problems.run_trials(solver, example, trials=3, iterations=1000, record_every=500, seed=0)
    assert np.all(cell.curves[:, 0] > 1.0) and np.all(cell.curves[:, -1] < 1e-2), cell.curves


@pytest.mark.parametrize(
    "method,tolerance", [("soba", 0.02), ("amigo", 0.02), ("stocbio", 0.02), ("f2sa", 0.02), ("bome", 0.2)]
)
def test_modern_solvers_approach_the_ex1_solution(method, tolerance):
    """The runner's rows of the modern solvers, at learning rates 0.1 (the paper's take 4 x 10^4 iterations),
    T = 10, 1000 iterations: from distances 6.7 to 9.8 to within ``tolerance`` (BOME's barrier steps approach
    the solution more slowly)."""
    example = problems.make_example(1, dim=4, seed=0)
    fast = synthetic_config.SolverSettings(lr_u=0.1, lr_v=0.1, lr_p=0.1)
    solver = bl.make_solver(method, example.problem, inner_steps=10, **synthetic_config.SOLVER_OPTIONS[method](fast))
    cell = problems.run_trials(solver, example, trials=3, iterations=1000, record_every=500, seed=0)
    assert np.all(cell.curves[:, 0] > 6.0) and np.all(cell.curves[:, -1] < tolerance), cell.curves


def test_saba_takes_sobas_steps_on_the_full_batch_problem():
    """The synthetic runner draws no mini-batches: SABA's SAGA estimates are the exact gradients there."""
    example = problems.make_example(1, dim=3, seed=0)
    curves = {}
    for method in ("soba", "saba"):
        options = synthetic_config.SOLVER_OPTIONS[method](synthetic_config.SolverSettings(lr_u=0.1, lr_v=0.1, lr_p=0.1))
        solver = bl.make_solver(method, example.problem, inner_steps=2, **options)
        curves[method] = problems.run_trials(solver, example, trials=2, iterations=100, record_every=50, seed=0).curves
    assert curves["soba"][0, -1] < curves["soba"][0, 0]
    np.testing.assert_allclose(curves["saba"], curves["soba"], rtol=1e-5)


def test_trial_runner_records_every_n_iterations_and_resets():
    example = problems.make_example(2, dim=3, seed=0)
    solver = bl.make_solver(
        "gd", example.problem, inner_steps=2, **synthetic_config.SOLVER_OPTIONS["gd"](synthetic_config.PAPER_SETTINGS)
    )
    cell = problems.run_trials(solver, example, trials=2, iterations=25, record_every=10, seed=5)
    assert cell.curves.shape == (2, 4)  # iterations 0, 10, 20, 25
    np.testing.assert_array_equal(problems.record_iterations(25, 10), [0, 10, 20, 25])
    assert int(solver.iterations.numpy()) == 25  # the state was reset before each trial
    again = problems.run_trials(solver, example, trials=2, iterations=25, record_every=10, seed=5)
    np.testing.assert_allclose(again.curves, cell.curves, rtol=1e-6)  # paired, reproducible trials
    assert np.all(np.abs(example.u.numpy()) <= problems.BOX)


def test_synthetic_runner_smoke_and_resume(tmp_path):
    res = run_runner(RUNNER, ["--smoke"], tmp_path)
    assert res["experiment"] == "synthetic"
    m = res["metrics"]
    assert sorted(k for k in m if k.startswith("ex")) == ["ex1", "ex4"]
    for ex in ("ex1", "ex4"):
        assert sorted(m[ex]) == sorted(load_runner(RUNNER).METHODS)  # the runner's default --methods
        for method, by_t in m[ex].items():
            cell = by_t["T1"]
            assert len(cell["distance_to_solution"]) == 2
            assert np.isfinite(cell["distance_to_solution_mean"]) and cell["distance_to_solution_mean"] > 0
            assert cell["distance_to_solution_std"] >= 0 and cell["seconds_per_upper_iteration"] > 0
    ablation = m["ablation"]
    assert sorted(ablation) == ["with_nu", "without_nu"]
    assert sorted(ablation["with_nu"]["T1"]) == ["lam0=0", "lam0=0.0001", "lam0=0.01", "lam0=1"]
    curves = [h for h in res["history"] if "ablation" not in h]
    assert len(curves) == 8 and len(res["history"]) == 16
    for h in res["history"]:
        assert h["iteration"][0] == 0 and h["iteration"][-1] == 60 and len(h["iteration"]) <= 200
        assert len(h["distance_mean"]) == len(h["iteration"])
    assert res["seconds_per_upper_iteration"] > 0
    for name in ("fig2.png", "fig3.png", "fig5.png"):
        assert (tmp_path / name).stat().st_size > 1000
    # A rerun with the same --out reuses the finished cells and reports the same numbers.
    again = run_runner(RUNNER, ["--smoke"], tmp_path)
    assert again["metrics"]["ex4"]["penalty"] == m["ex4"]["penalty"]


def test_synthetic_runner_offers_the_modern_solvers(tmp_path):
    modern = ["soba", "saba", "amigo", "stocbio", "f2sa", "bome"]
    res = run_runner(RUNNER, ["--smoke", "--skip-ablation", "--examples", "1", "--methods"] + modern, tmp_path)
    for method in modern:
        cell = res["metrics"]["ex1"][method]["T1"]
        assert np.all(np.isfinite(cell["distance_to_solution"])) and cell["seconds_per_upper_iteration"] > 0
        assert res["config"]["solver"][f"{method}/T1"]["class"] == SOLVER_CLASSES[method]


def test_pbgd_toy_smoke(tmp_path):
    res = run_runner(TOY, ["--smoke"], tmp_path)
    m = res["metrics"]
    minima = [d["x"] for d in m["local_minima"]]
    np.testing.assert_allclose(minima, [0.382, 1.215, 2.830], atol=2e-3)  # of phi(x) = f(x, -x) on [0, 3]
    fractions = [d["fraction"] for d in m["local_minima"]]
    assert sum(fractions) == pytest.approx(m["fraction_at_a_local_minimum"])
    assert m["fraction_at_a_local_minimum"] >= 0.9  # 300 iterations already settle the runs
    assert m["fraction_at_global_minimum"] == fractions[1]
    assert 0.0 <= m["final_x"]["min"] <= m["final_x"]["max"] <= 3.0
    assert m["max_lower_level_gap"] < 0.1  # y tracks argmin_y g = -x
    assert m["iterations_used"]["total"] <= 300
    assert (tmp_path / "hyper_objective.png").stat().st_size > 1000
    assert assert_solver_config(res, "vpbgd")["gamma_max"] == res["config"]["gamma"]


def test_toy_projected_gradient_respects_the_box():
    """PBGD's stopping measure: the gradient of F = f + gamma g inside [0, 3]; at x = 3 with F decreasing
    beyond the box the x part vanishes (the projected step does not move x)."""
    gamma, h = 10.0, 1e-6
    toy = toy_problem.make_toy(2, seed=0)
    x, y = np.array([1.0, 3.0]), np.array([0.3, -3.5])
    toy.x.assign(x)
    toy.y.assign(y)

    def F(x, y):
        return (toy_problem.toy_f(x, y) + gamma * toy_problem.toy_g(x, y)).numpy()

    gx = (F(x + h, y) - F(x - h, y)) / (2 * h)
    gy = (F(x, y + h) - F(x, y - h)) / (2 * h)
    assert gx[1] < 0  # F keeps decreasing past x = 3
    pg = toy_problem.toy_projected_gradient_norm(toy, gamma, 0.1 / gamma)().numpy()
    np.testing.assert_allclose(pg, [np.hypot(gx[0], gy[0]), abs(gy[1])], rtol=1e-5)

"""bl.Implicit (CG / Neumann linear solves) and the linear solvers it shares with ApproxGrad: closed forms of
three quadratics with make_solver's defaults, the exact hypergradient and finite differences, the solvers on an
explicit matrix, bad options, checkpoint/resume with several steps per call."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_modern_solvers import U0, _converged_hypergradient, check_resume_follows_the_uninterrupted_run

import bilevel_tf as bl
from bilevel_tf import toy
from bilevel_tf.solvers import linear_solvers

LINEAR = ("cg", "neumann")
#: three instances of the robustness family (float64), lower curvature in [4.7, 14], [1.6, 16], [0.55, 17]
#: (the default lower step 0.1 needs curvature < 20)
INSTANCES = [
    toy.random_quadratic_data(seed, n_u=4, n_v=6, cond=cond, coupling=coupling)
    for seed, cond, coupling in ((0, 3.0, "weak"), (1, 10.0, "strong"), (3, 30.0, "weak"))
]


def test_registered_under_its_name():
    assert "implicit" in bl.METHODS and bl.get_solver("implicit") is bl.Implicit is bl.SOLVERS["implicit"]


@pytest.mark.parametrize("linear_solver", LINEAR)
def test_defaults_reach_the_closed_form_of_three_quadratics(linear_solver):
    q = toy.QuadraticBilevel(*INSTANCES[0], dtype=np.float64)
    options = {} if linear_solver == "cg" else dict(linear_solver=linear_solver)  # cg is the default
    solver = bl.make_solver("implicit", q.problem(), **options)
    for data in INSTANCES:  # one compiled solver, three problems
        q.assign(*data)
        solver.reset_state()
        solver.run(3000)  # the default upper step 0.02 (stable on mini-batches) needs 3000
        v_error = np.linalg.norm(q.v.numpy() - q.v_star) / np.linalg.norm(q.v_star)
        assert q.u_error() < 1e-6 and v_error < 1e-6, (linear_solver, q.u_error(), v_error)
    assert solver.trace_count == 2  # nothing retraced across problems


def _finite_difference(u, h=1e-5):
    q = toy.least_squares_quadratic(seed=0, mu=1.0, dtype=np.float64)  # _converged_hypergradient's problem
    steps = np.eye(u.size) * h
    return np.array([(q.value(u + e) - q.value(u - e)) / (2 * h) for e in steps])


@pytest.mark.parametrize("linear_solver, linear_steps", [("cg", 6), ("neumann", 1000)])  # dim v = 6
def test_hypergradient_is_exact_and_matches_finite_differences(linear_solver, linear_steps):
    got, exact, solver = _converged_hypergradient(
        "implicit", inner_steps=300, linear_solver=linear_solver, linear_steps=linear_steps, warm_start=False
    )
    np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(got, _finite_difference(U0), rtol=1e-5, atol=1e-7)
    assert solver.get_config()["linear_solver"] == linear_solver


@pytest.mark.parametrize("linear_solver", LINEAR)
def test_approxgrad_takes_the_same_linear_solvers(linear_solver):
    got, exact, _ = _converged_hypergradient(
        "approxgrad",
        inner_steps=300,
        linear_steps=1000,
        sigma=0.0,
        lower_optimizer=keras.optimizers.SGD(0.1),
        linear_optimizer=keras.optimizers.SGD(0.1),
        linear_solver=linear_solver,
    )
    np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-8)


def test_linear_solvers_on_an_explicit_matrix():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(5, 5)))[0]
    a = tf.constant(basis @ np.diag([0.5, 1.0, 2.0, 3.0, 4.0]) @ basis.T)
    b = [tf.constant(rng.normal(size=5))]
    exact = np.linalg.solve(a.numpy(), b[0].numpy())
    operator = lambda x: [tf.linalg.matvec(a, x[0])]  # noqa: E731
    for solve, steps in [
        (linear_solvers.make_linear_solver("cg"), 5),  # exact after dim steps
        (linear_solvers.make_linear_solver("neumann", step_size=0.4), 200),
        (linear_solvers.make_linear_solver("gd", optimizer=keras.optimizers.SGD(0.05)), 2000),
    ]:
        x = [tf.Variable(tf.zeros(5, tf.float64))]
        solve(operator, b, x, steps, range)
        np.testing.assert_allclose(x[0].numpy(), exact, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(linear_solver="lu"), r"linear_solver must be one of \['cg', 'neumann'\], got 'lu'"),
        (dict(linear_solver="gd"), r"linear_solver must be one of \['cg', 'neumann'\], got 'gd'"),
        (dict(linear_steps=0), "linear_steps must be an integer >= 1"),
        (dict(linear_solver="neumann", neumann_step=-0.1), "neumann_step must be a positive number"),
        (dict(sigma=-1e-3), "sigma must be a non-negative number"),
    ],
)
def test_bad_options_raise_value_errors_naming_the_argument(options, message):
    with pytest.raises(ValueError, match=message):
        bl.make_solver("implicit", toy.least_squares_quadratic().problem(), **options)
    with pytest.raises(ValueError, match=r"linear_solver must be one of \['gd', 'cg', 'neumann'\], got 'lu'"):
        bl.make_solver("approxgrad", toy.least_squares_quadratic().problem(), linear_solver="lu")


@pytest.mark.parametrize("linear_solver", LINEAR)
def test_resume_with_several_steps_per_call_follows_the_uninterrupted_run(tmp_path, linear_solver):
    check_resume_follows_the_uninterrupted_run(tmp_path, "implicit", linear_solver=linear_solver)

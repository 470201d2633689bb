"""SOBA, SABA, AmIGO, StocBiO, F2SA and BOME with their defaults: the closed form of three quadratic problems,
the exact hypergradient at converged inner variables, and their bad options."""

import keras
import numpy as np
import pytest

import bilevel_tf as bl
from bilevel_tf import toy

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"

MODERN = ("soba", "saba", "amigo", "stocbio", "f2sa", "bome")
#: three strongly convex instances (float64), each given as the toy's data: lower curvature in [1, 2.7],
#: [0.3, 2.8] and [0.2, 1]
INSTANCES = (
    toy.least_squares_data(seed=0, mu=1.0),
    toy.least_squares_data(seed=2, mu=0.3),
    toy.conditioned_data(cond=5, seed=1),
)
#: upper iterations and the relative error of u and v each method reaches with its defaults. StocBiO stops at
#: the truncation bias of its Neumann series, F2SA at the O(1/lam_max) bias of its penalty, BOME where its
#: decaying step has brought it (its error is proportional to the step, 1 / L_joint measured: 0.3-0.6 here).
BUDGET = {
    "soba": (2000, 1e-2),
    "saba": (2000, 1e-2),
    "amigo": (600, 1e-3),
    "stocbio": (600, 2e-2),
    "f2sa": (2000, 3e-2),
    "bome": (3000, 3e-2),
}
U0 = np.array([0.3, -0.5, 0.8, 0.1])


def _v_error(q):
    return np.linalg.norm(q.v.numpy() - q.v_star) / np.linalg.norm(q.v_star)


def test_the_new_methods_are_registered():
    assert set(MODERN) <= set(bl.METHODS) and set(MODERN) == set(BUDGET)
    for name, cls in zip(MODERN, (bl.SOBA, bl.SABA, bl.AmIGO, bl.StocBiO, bl.F2SA, bl.BOME)):
        assert bl.get_solver(name) is cls and cls.method == name and name in bl.SOLVERS


@pytest.mark.parametrize("method", MODERN)
def test_defaults_reach_the_closed_form_of_three_quadratics(method):
    steps, tolerance = BUDGET[method]
    q = toy.QuadraticBilevel(*INSTANCES[0], dtype=np.float64)
    solver = bl.make_solver(method, q.problem())  # no option at all
    for data in INSTANCES:  # one compiled solver, three problems (QuadraticBilevel.assign + reset_state)
        q.assign(*data[:5])
        solver.reset_state()
        solver.run(steps)
        assert q.u_error() < tolerance and _v_error(q) < tolerance, (method, q.u_error(), _v_error(q))
    assert solver.trace_count == 2  # the first step and run's loop body: nothing retraced across problems


def _converged_hypergradient(method, **options):
    q = toy.least_squares_quadratic(seed=0, mu=1.0, dtype=np.float64)
    q.u.assign(U0)
    solver = bl.make_solver(method, q.problem(), **options)
    got = solver.hypergradient()[0].numpy()
    np.testing.assert_array_equal(q.u.numpy(), U0)  # hypergradient() leaves u alone
    return got, q.hypergradient(U0), solver


@pytest.mark.parametrize(
    "method, options",
    [
        ("soba", dict(inner_steps=3000)),  # 2999 joint (v, z) steps before the direction is read
        ("saba", dict(inner_steps=3000)),
        ("amigo", dict(inner_steps=300, linear_steps=1000)),
        ("stocbio", dict(inner_steps=300, linear_steps=1000)),
    ],
)
def test_implicit_hypergradient_is_exact_at_converged_inner_variables(method, options):
    got, exact, _ = _converged_hypergradient(method, **options)
    np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-8)


def test_f2sa_hypergradient_is_exact_up_to_its_penalty_bias():
    lam = 1e4  # held fixed: the estimate is off by O(1/lam)
    got, exact, solver = _converged_hypergradient("f2sa", inner_steps=3000, lam_init=lam, lam_growth=0.0, lam_max=None)
    np.testing.assert_allclose(got, exact, rtol=1e-3, atol=1e-4)  # lam_0 / lam = 1: the direction is h itself
    assert solver.schedule()["lam"] == lam  # hypergradient() leaves the schedule alone
    # and the penalized copy y sits at argmin f/lam + g, O(1/lam) away from v*
    gap = np.linalg.norm(solver.y[0].numpy() - solver.problem.lower_vars[0].numpy())
    assert 0 < gap < 1e-2


def test_f2sa_lambda_schedule_and_bome_decay():
    q = toy.least_squares_quadratic(seed=0, mu=1.0)
    f2sa = bl.F2SA(q.problem(), lam_init=2.0, lam_growth=3.0, lam_max=6.0, inner_steps=2)
    assert [float(f2sa.step()["lam"]) for _ in range(3)] == [5.0, 6.0, 6.0]
    unbounded = bl.F2SA(toy.least_squares_quadratic().problem(), lam_max=None, inner_steps=1)
    assert [float(unbounded.step()["lam"]) for _ in range(2)] == [11.0, 12.0]
    bome = bl.BOME(toy.least_squares_quadratic(seed=1).problem(), decay_steps=None, warm_start=False, inner_steps=2)
    logs = bome.step()
    assert float(logs["barrier_lam"]) >= 0 and "w" not in bome._state  # no copy kept without warm start


@pytest.mark.parametrize(
    "method, options, message",
    [
        ("amigo", dict(linear_steps=0), "linear_steps must be an integer >= 1"),
        ("stocbio", dict(linear_steps=-3), "linear_steps must be an integer >= 1"),
        ("stocbio", dict(neumann_step=0.0), "neumann_step must be a positive number"),
        ("stocbio", dict(neumann_step=True), "neumann_step must be a positive number"),
        ("soba", dict(inner_steps=0), "inner_steps must be an integer >= 1"),
        ("soba", dict(linear_optimizer=-0.1), "linear_optimizer: a learning rate must be positive"),
        ("saba", dict(upper_optimizer=0.0), "upper_optimizer: a learning rate must be positive"),
        ("f2sa", dict(lam_init=0.0), "lam_init must be a positive number"),
        ("f2sa", dict(lam_growth=-1.0), "lam_growth must be a non-negative number"),
        ("f2sa", dict(lam_init=10.0, lam_max=5.0), "lam_max must be None or >= lam_init"),
        ("f2sa", dict(penalty_optimizer=-1.0), "penalty_optimizer: a learning rate must be positive"),
        ("bome", dict(eta=-0.5), "eta must be a non-negative number"),
        ("bome", dict(decay_steps=0), "decay_steps must be an integer >= 1"),
        ("bome", dict(inner_optimizer=keras.optimizers.SGD(0.0)), "inner_optimizer has learning rate 0.0"),
    ],
)
def test_bad_options_raise_value_errors_naming_the_argument(method, options, message):
    with pytest.raises(ValueError, match=message):
        bl.make_solver(method, toy.least_squares_quadratic().problem(), **options)


def test_one_optimizer_instance_cannot_serve_two_slots():
    problem = toy.least_squares_quadratic().problem()
    shared = keras.optimizers.SGD(0.1)
    with pytest.raises(ValueError, match="linear_optimizer must be a separate optimizer instance"):
        bl.SOBA(problem, lower_optimizer=shared, linear_optimizer=shared)


def _carried(q, solver):
    """Everything an iteration hands to the next: u, v and the solver's own state (z, y, w, q, lam, slots)."""
    state = [q.u.numpy(), q.v.numpy()]
    for name in ("z", "y", "w", "q"):
        state += [x.numpy() for x in getattr(solver, name, [])]
    return state + [solver.schedule(), int(solver.iterations.numpy())]


@pytest.mark.parametrize("method", MODERN)
def test_resume_with_several_steps_per_call_follows_the_uninterrupted_run(tmp_path, method):
    check_resume_follows_the_uninterrupted_run(tmp_path, method)


def check_resume_follows_the_uninterrupted_run(tmp_path, method, **options):
    """An interrupted and resumed bl.fit with 3 steps per call ends bit for bit where the uninterrupted run does,
    and where one step per call does (to rounding)."""

    def run(steps, per_call, folder=None):
        q = toy.least_squares_quadratic(seed=3, mu=1.0, dtype=np.float64)
        solver = bl.make_solver(method, q.problem(), inner_steps=3, **options)
        bl.fit(solver, steps=steps, steps_per_execution=per_call, checkpoint_dir=folder, verbose=0)
        return _carried(q, solver)

    one_per_call, expected = run(9, 1), run(9, 3)
    run(5, 3, str(tmp_path))  # interrupted after 5 (calls 1-3, 4-5) ...
    got = run(9, 3, str(tmp_path))  # ... and resumed from its checkpoint (calls 6, 7-9)
    for a, b, c in zip(got[:-2], expected[:-2], one_per_call[:-2]):
        np.testing.assert_array_equal(a, b)  # bit for bit
        # the same iterations as one call per step; AmIGO's graph loop inside the multi-step loop rounds 1 ulp
        # differently on this CPU
        np.testing.assert_allclose(a, c, rtol=1e-13, atol=1e-15)
    assert got[-2:] == expected[-2:] == one_per_call[-2:]

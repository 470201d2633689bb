"""Default steps measured on the problem (bilevel_tf.solvers.default_steps): bl.make_solver(name, problem) with no
other option reaches the closed form of unseen instances of the quadratic family (g's top curvature up to 50),
a learning rate the user gives is never changed, a measured step is c / L of the problem it was measured on,
survives a checkpoint without being measured again, and is measured again after reset_state."""

import keras
import numpy as np
import pytest

import bilevel_tf as bl
from bilevel_tf import toy

#: three instances of bl.toy's family that no default was tuned on (the benchmark's seeds are 100-119): one drawn,
#: one strongly coupled, one with g's curvatures spanning [0.5, 50] (cond 100: the top of the family)
INSTANCES = [
    toy.random_quadratic_data(seed, n_u=4, n_v=6, **knobs)
    for seed, knobs in ((601, {}), (602, dict(coupling="strong")), (603, dict(cond=100.0)))
]
#: the methods whose defaults reach u* (relative error below the tolerance) within the budget (upper iterations);
#: BOME's error falls as its step decays (about as k^-0.8): 12000 iterations on the strongly coupled instance
REACH = {
    "approxgrad": (3000, 0.03),
    "soba": (3000, 0.03),
    "saba": (3000, 0.03),
    "amigo": (3000, 0.03),
    "stocbio": (3000, 0.03),
    "f2sa": (3000, 0.03),
    "implicit": (3000, 0.03),
    "bome": (12000, 0.03),
}


def _top_curvature(data):
    return float(np.linalg.eigvalsh(data[0])[-1])


def test_the_instances_span_the_family():
    assert _top_curvature(INSTANCES[2]) == pytest.approx(50.0) and _top_curvature(INSTANCES[0]) < 50.0
    assert len({float(data[5]) for data in INSTANCES}) == 2  # weak (alpha 1) and strong (alpha 0.5) coupling


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(REACH))
def test_defaults_reach_the_closed_form_of_unseen_family_instances(method):
    steps, tolerance = REACH[method]
    q = toy.QuadraticBilevel(*INSTANCES[0])  # float32, as a user's problem
    solver = bl.make_solver(method, q.problem())  # no option at all
    for data in INSTANCES:  # one compiled solver; reset_state measures the steps again on each instance
        q.assign(*data)
        solver.reset_state()
        solver.run(steps)
        assert q.u_error() < tolerance, (method, _top_curvature(data), q.u_error())
    assert solver.trace_count == 2  # the first step and run's loop body: measuring retraces nothing


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(set(bl.METHODS) - set(REACH)))
def test_the_other_defaults_stay_finite_where_fixed_steps_diverged(method):
    """GD ignores dv*/du, RMD's 20 unrolled steps and the PBGD penalties are biased, Penalty keeps Adam (see the
    benchmark); on g's top curvature 50 (where SGD at 0.1 diverges) they stay finite, and the lower loops of GD
    and RMD put v at v*(u)."""
    q = toy.QuadraticBilevel(*INSTANCES[2])
    solver = bl.make_solver(method, q.problem())
    solver.run(1000)
    assert np.isfinite(q.u.numpy()).all() and np.isfinite(q.v.numpy()).all()
    if method in ("gd", "rmd"):
        v_star = q.J @ q.u.numpy() + q.j
        assert np.linalg.norm(q.v.numpy() - v_star) < 1e-3 * np.linalg.norm(v_star)


def _slots(solver):
    return [name for name, obj in solver._state.items() if isinstance(obj, keras.optimizers.Optimizer)]


@pytest.mark.parametrize("method", bl.METHODS)
def test_given_learning_rates_are_never_changed(method):
    q = toy.QuadraticBilevel(*INSTANCES[2])  # L = 50: a measured step would be 0.02
    rates = {slot: 0.003 * (i + 1) for i, slot in enumerate(_slots(bl.make_solver(method, q.problem())))}
    given = {slot: keras.optimizers.SGD(rate) for slot, rate in rates.items()}
    solver = bl.make_solver(method, q.problem(), inner_steps=2, **given)
    lower_only = bl.make_solver(method, q.problem(), inner_steps=2, lower_optimizer=rates["lower_optimizer"])
    for s in (solver, lower_only):
        s.run(3)
    assert not solver.default_steps.rules and "default_steps" not in solver.get_config()
    for slot, rate in rates.items():
        assert given[slot] is getattr(solver, slot) and float(given[slot].learning_rate.numpy()) == pytest.approx(rate)
    # a slot that follows the lower optimizer (the linear system, the lower-level copies) takes its given rate
    assert "lower_optimizer" not in lower_only.default_steps.rules
    assert float(lower_only.lower_optimizer.learning_rate.numpy()) == pytest.approx(rates["lower_optimizer"])
    follows = {"linear_optimizer", "penalty_optimizer"} | ({"inner_optimizer"} if method == "bome" else set())
    for slot in follows & set(rates):
        assert float(getattr(lower_only, slot).learning_rate.numpy()) == pytest.approx(rates["lower_optimizer"])


@pytest.mark.parametrize(
    "method, slot, expected",
    [
        ("amigo", "lower_optimizer", lambda lo, hi, joint: 1 / hi),
        ("amigo", "linear_optimizer", lambda lo, hi, joint: 1 / hi),
        ("stocbio", "neumann_step", lambda lo, hi, joint: 1.8 / (hi + lo)),
        ("approxgrad", "linear_optimizer", lambda lo, hi, joint: 0.5 / hi**2),
        ("bome", "upper_optimizer", lambda lo, hi, joint: 1 / joint),
        ("bome", "inner_optimizer", lambda lo, hi, joint: 1 / hi),
        ("gpbgd", "lower_optimizer", lambda lo, hi, joint: 1 / joint**2),
    ],
)
def test_measured_steps_are_c_over_the_problems_curvature(method, slot, expected):
    data = INSTANCES[1]
    q = toy.QuadraticBilevel(*data, dtype=np.float64)
    solver = bl.make_solver(method, q.problem())
    assert solver.default_steps.values()[slot] == 0.0  # nothing measured before the first step
    solver.step()
    H, M = data[0], data[1]
    lo, hi = np.linalg.eigvalsh(H)[[0, -1]]
    joint = np.abs(np.linalg.eigvalsh(np.block([[np.zeros((M.shape[1],) * 2), -M.T], [-M, H]]))).max()
    assert solver.default_steps.values()[slot] == pytest.approx(expected(lo, hi, joint), rel=1e-6)
    config = solver.get_config()
    assert config.get(slot) is None and config["default_steps"][slot].endswith("at the first step")
    again = type(solver).from_config(q.problem(), config)  # the rule is recorded: rebuilt, it measures again
    assert again.get_config() == config and again.default_steps.rules == solver.default_steps.rules


def test_a_measured_step_survives_a_checkpoint_and_reset_state_measures_again(tmp_path):
    first, other = INSTANCES[2], INSTANCES[0]  # top curvatures 50 and below
    q = toy.QuadraticBilevel(*first)
    solver = bl.make_solver("implicit", q.problem())
    bl.fit(solver, steps=2, checkpoint_dir=str(tmp_path), verbose=0)
    measured = solver.default_steps.values()["lower_optimizer"]
    assert measured == pytest.approx(1 / 50.0, rel=1e-4)
    resumed = bl.make_solver("implicit", toy.QuadraticBilevel(*other).problem())  # same shapes, other curvature
    bl.fit(resumed, steps=4, checkpoint_dir=str(tmp_path), verbose=0)  # restores iteration 2, runs 2 more
    assert int(resumed.iterations.numpy()) == 4
    assert resumed.default_steps.values()["lower_optimizer"] == measured  # restored, not measured on `other`
    resumed.reset_state()
    resumed.step()
    assert resumed.default_steps.values()["lower_optimizer"] == pytest.approx(1 / _top_curvature(other), rel=1e-4)

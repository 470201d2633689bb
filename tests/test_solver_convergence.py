"""Every solver but GD reaches the closed-form solution of a strongly convex quadratic bilevel problem."""

import keras
import numpy as np
import pytest

import bilevel_tf as bl
from quadratic import Quadratic


SGD = keras.optimizers.SGD

CASES = {
    # Fixed rho/lam with the multiplier nu: the augmented-Lagrangian fixed point is the exact solution.
    "penalty_T5": (
        "penalty",
        800,
        lambda: dict(
            inner_steps=5,
            upper_optimizer=SGD(0.1),
            lower_optimizer=SGD(0.1),
            rho=1.0,
            lam=1.0,
            eps=1.0,
            c_rho=1.0,
            c_lam=1.0,
            lr_decay=None,
            tolerance="paper",
        ),
    ),
    "penalty_T1": (
        "penalty",
        800,
        lambda: dict(
            inner_steps=1,
            upper_optimizer=SGD(0.1),
            lower_optimizer=SGD(0.1),
            rho=1.0,
            lam=1.0,
            eps=1.0,
            c_rho=1.0,
            c_lam=1.0,
            lr_decay=None,
        ),
    ),
    "approxgrad": (
        "approxgrad",
        800,
        lambda: dict(
            inner_steps=10, upper_optimizer=SGD(0.3), lower_optimizer=SGD(0.3), linear_optimizer=SGD(0.2), sigma=0.0
        ),
    ),
    "rmd": ("rmd", 800, lambda: dict(inner_steps=30, upper_optimizer=SGD(0.3), lower_optimizer=0.3)),
    "rmd_truncated": (
        "rmd",
        800,
        lambda: dict(inner_steps=30, truncation=20, upper_optimizer=SGD(0.3), lower_optimizer=0.3),
    ),
    "vpbgd": (
        "vpbgd",
        3000,
        lambda: dict(
            inner_steps=5,
            upper_optimizer=0.5,
            lower_optimizer=0.5,
            inner_optimizer=0.5,
            gamma_init=200.0,
            gamma_max=200.0,
            gamma_argmax_step=1,
        ),
    ),
    "gpbgd": (
        "gpbgd",
        3000,
        lambda: dict(upper_optimizer=0.4, lower_optimizer=0.4, gamma_init=200.0, gamma_max=200.0, gamma_argmax_step=1),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_reaches_closed_form_solution(case):
    method, steps, kwargs = CASES[case]
    q = Quadratic()
    solver = bl.make_solver(method, q.problem(), **kwargs())
    for _ in range(steps):
        solver.step()
    assert q.u_error() < 1e-2, (case, q.u_error())
    if method in ("vpbgd", "gpbgd"):
        # The penalized problems keep v at O(1/gamma) from v*(u); u still converges.
        assert q.v_error() < 5e-2
    else:
        assert q.v_error() < 1e-2, (case, q.v_error())
    assert solver.trace_count == 1


@pytest.mark.slow
@pytest.mark.parametrize("case", ["penalty_T5", "approxgrad", "rmd", "vpbgd", "gpbgd"])
def test_float64_problems_are_solved_in_float64(case):
    # Schedule scalars (rho, lam, eps, gamma) and loop accumulators take the variables' dtype.
    method, steps, kwargs = CASES[case]
    q = Quadratic()
    solver = bl.make_solver(method, q.problem(dtype=np.float64), **kwargs())
    logs = solver.run(steps)
    assert q.u.dtype == np.float64 and q.u_error() < 1e-2, (case, q.u_error())
    assert all(np.asarray(value).dtype != np.float32 for key, value in logs.items() if key != "schedule_fired"), logs


def test_gd_misses_the_solution_when_the_implicit_term_matters():
    # f depends on v, so dropping -H_uv H_vv^-1 grad_v f sends u to argmin_u f(u, v) = 0, not u*.
    q = Quadratic()
    solver = bl.GD(q.problem(), upper_optimizer=SGD(0.3), lower_optimizer=SGD(0.3), inner_steps=10)
    for _ in range(800):
        solver.step()
    assert np.linalg.norm(q.u.numpy()) < 1e-3
    assert q.u_error() > 0.9
    # ... while the lower level itself is solved exactly for the u it ends at.
    np.testing.assert_allclose(q.v.numpy(), q.v_of(q.u.numpy()), atol=1e-3)


def test_penalty_with_the_original_schedule_approaches_the_solution():
    # The defaults of the original code (rho grows by 1.1, lr decays by 1/1.1 when the schedule fires)
    # converge too, more slowly, as rho grows and nu accumulates.
    q = Quadratic()
    solver = bl.Penalty(
        q.problem(),
        upper_optimizer=SGD(0.1),
        lower_optimizer=SGD(0.1),
        inner_steps=5,
        schedule="original",
        rho=1.0,
        lam=1.0,
        eps=1.0,
        lr_decay=1 / 1.1,
        tolerance="paper",
    )
    errors = []
    for i in range(1500):
        solver.step()
        if i % 500 == 499:
            errors.append(q.u_error())
    assert errors[-1] < 0.1 and errors[-1] < errors[0]
    assert solver.schedule()["rho"] > 5.0

"""The Penalty schedule: when the tolerance test passes, rho, lam, eps, nu and the learning rates move."""

import keras
import numpy as np
import pytest

import bilevel_tf as bl
from quadratic import Quadratic

SGD = keras.optimizers.SGD
U0 = np.array([0.3, -0.5, 0.8])


def _grad_v_g(q, u, v):
    return q.A @ v - q.B @ u


@pytest.mark.parametrize("nu_rho", ["new", "old"])
def test_schedule_fires_and_updates_every_quantity(nu_rho):
    q = Quadratic()
    solver = bl.Penalty(
        q.problem(u0=U0),
        upper_optimizer=SGD(0.1),
        lower_optimizer=SGD(0.05),
        inner_steps=3,
        rho=2.0,
        lam=5.0,
        eps=1e6,
        nu=0.25,
        c_rho=1.5,
        c_lam=0.5,
        c_eps=0.8,
        lr_decay=0.9,
        nu_rho=nu_rho,
        schedule="original",
    )
    logs = solver.step()
    assert float(logs["schedule_fired"]) == 1.0
    s = solver.schedule()
    assert s == pytest.approx({"rho": 3.0, "lam": 2.5, "eps": 8e5})
    # nu is updated with grad_v g at the point of the u step (v after the T steps, u before its step).
    v = q.v.numpy()
    rho_used = 3.0 if nu_rho == "new" else 2.0
    np.testing.assert_allclose(solver.nu[0].numpy(), 0.25 + rho_used * _grad_v_g(q, U0, v), rtol=1e-5, atol=1e-6)
    assert float(solver.upper_optimizer.learning_rate) == pytest.approx(0.09)
    assert float(solver.lower_optimizer.learning_rate) == pytest.approx(0.045)
    assert int(solver.schedule_updates.numpy()) == 1


def test_schedule_holds_when_tolerance_not_met():
    q = Quadratic()
    solver = bl.Penalty(
        q.problem(u0=U0),
        upper_optimizer=SGD(0.1),
        lower_optimizer=SGD(0.05),
        inner_steps=3,
        rho=2.0,
        lam=5.0,
        eps=1e-8,
        nu=0.25,
        schedule="original",
    )
    logs = solver.step()
    assert float(logs["schedule_fired"]) == 0.0
    assert solver.schedule() == pytest.approx({"rho": 2.0, "lam": 5.0, "eps": 1e-8})
    np.testing.assert_allclose(solver.nu[0].numpy(), 0.25)
    assert float(solver.lower_optimizer.learning_rate) == pytest.approx(0.05)


def test_tolerance_forms_differ_as_documented():
    # Norms are > 1 at the start, so the original's squared-squared test is harder to pass than the paper's.
    def run(tolerance, eps):
        q = Quadratic()
        solver = bl.Penalty(
            q.problem(u0=3 * U0),
            upper_optimizer=SGD(0.01),
            lower_optimizer=SGD(0.01),
            inner_steps=1,
            rho=1.0,
            lam=1.0,
            eps=eps,
            tolerance=tolerance,
            schedule="original",
        )
        logs = solver.step()
        return logs

    probe = run("paper", 0.0)
    measure_paper = float(probe["upper_grad_norm_sq"]) + float(probe["lower_objective_grad_norm_sq"])
    measure_orig = float(probe["upper_grad_norm_sq"]) ** 2 + float(probe["lower_objective_grad_norm_sq"]) ** 2
    assert measure_orig > measure_paper > 1.0
    eps = np.sqrt((measure_paper + measure_orig) / 2)  # between the two
    assert float(run("paper", eps)["schedule_fired"]) == 1.0
    assert float(run("original", eps)["schedule_fired"]) == 0.0


def test_without_nu_no_multiplier_is_kept():
    q = Quadratic()
    solver = bl.Penalty(q.problem(), use_nu=False, eps=1e6, inner_steps=1, schedule="original")
    solver.step()
    assert solver.nu == []

"""The default Penalty schedule ("auglag") reaches closed-form solutions with the optimizers users pass, with
no schedule tuning; the presets keep the original code's behaviour."""
import keras
import numpy as np
import pytest

import bilevel_tf as bl
from bilevel_tf import toy
from quadratic import Quadratic


Adam, SGD = keras.optimizers.Adam, keras.optimizers.SGD

PROBLEMS = {
    "tests_quadratic": lambda: Quadratic(),
    "least_squares_mu0.1": lambda: toy.least_squares_quadratic(4, 6, mu=0.1, seed=3),
    "least_squares_mu1": lambda: toy.least_squares_quadratic(5, 8, mu=1.0, seed=4),
    "conditioned_10": lambda: toy.conditioned_quadratic(4, 6, cond=10.0, seed=5),
    # (at cond(H) = 100 and beyond, 5000 iterations are too few for every solver with these optimizers:
    # benchmarks/robustness.py measures where each one stops converging)
}
OPTIMIZERS = {"adam": lambda: Adam(1e-2), "sgd": lambda: SGD(0.1)}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_default_schedule_reaches_the_solution(name, optimizer):
    q = PROBLEMS[name]()
    solver = bl.Penalty(q.problem(), upper_optimizer=OPTIMIZERS[optimizer](),
                        lower_optimizer=OPTIMIZERS[optimizer](), inner_steps=10)
    solver.run(5000)
    assert q.u_error() < 3e-2, (name, optimizer, q.u_error(), solver.schedule())
    assert solver.schedule()["eps"] == 0.0 and int(solver.schedule_updates.numpy()) == 0  # nothing fired


@pytest.mark.slow
def test_original_schedule_misses_where_the_default_converges():
    # The case: with Adam at both levels the original schedule decays the learning rates every time
    # its test fires and freezes u far from u*; the default does not.
    errors = {}
    for schedule in ("auglag", "original"):
        q = toy.least_squares_quadratic(4, 6, mu=0.1, seed=3)
        solver = bl.Penalty(q.problem(), upper_optimizer=Adam(1e-2), lower_optimizer=Adam(1e-2), inner_steps=10,
                            schedule=schedule)
        solver.run(5000)
        errors[schedule] = q.u_error()
    assert errors["auglag"] < 3e-2 < 0.1 < errors["original"], errors


def test_calibration_balances_the_curvatures():
    # H_f = I for f = 1/2||v - d||^2 + ..., H_g = H: rho = ||w|| / ||H^2 w||, lam = 0.1 ||w|| / ||H w||,
    # w = grad_v f = v - d at the first iteration (v = 0).
    q = toy.conditioned_quadratic(4, 6, cond=10.0, seed=1)
    solver = bl.Penalty(q.problem(), upper_optimizer=SGD(1e-3), lower_optimizer=SGD(1e-3), inner_steps=1)
    assert solver.schedule() == {"rho": 1.0, "lam": 1.0, "eps": 0.0}  # placeholders until the first step
    solver.step()
    w = -q.d
    expected_rho = np.linalg.norm(w) / np.linalg.norm(q.H @ q.H @ w)
    expected_lam = 0.1 * np.linalg.norm(w) / np.linalg.norm(q.H @ w)
    s = solver.schedule()
    assert s["rho"] == pytest.approx(expected_rho, rel=1e-4) and s["lam"] == pytest.approx(expected_lam, rel=1e-4)
    # once calibrated, later steps (and a restored checkpoint) keep the values
    solver.step()
    assert solver.schedule()["rho"] == pytest.approx(expected_rho, rel=1e-4)
    assert bool(solver.calibrated.numpy())


def test_calibration_survives_a_checkpoint_and_reset_recalibrates(tmp_path):
    q = toy.conditioned_quadratic(4, 6, cond=10.0, seed=1)
    solver = bl.Penalty(q.problem(), inner_steps=2)
    solver.step()
    rho = solver.schedule()["rho"]
    path = solver.checkpoint.write(str(tmp_path / "ckpt"))
    q2 = toy.conditioned_quadratic(4, 6, cond=10.0, seed=1)
    other = bl.Penalty(q2.problem(), inner_steps=2)
    other.checkpoint.read(path).assert_existing_objects_matched()
    q2.assign(*toy.conditioned_data(4, 6, cond=1000.0, seed=2)[:5])  # another problem: no recalibration
    other.step()
    assert other.schedule()["rho"] == pytest.approx(rho)
    other.reset_state()
    other.step()  # reset: calibrated on the new problem
    assert other.schedule()["rho"] != pytest.approx(rho)


def test_explicit_values_override_the_preset():
    q = Quadratic()
    solver = bl.Penalty(q.problem(), rho=3.0, lam=0.5)
    assert solver.auto == () and solver.calibrated is None
    solver.step()
    assert solver.schedule()["rho"] == 3.0 and solver.schedule()["lam"] == 0.5
    config = bl.Penalty(Quadratic().problem(), schedule="original", lr_decay=None, c_rho=2.0).get_config()
    assert (config["schedule"], config["lr_decay"], config["c_rho"], config["c_lam"], config["tolerance"]) == \
        ("original", None, 2.0, 0.9, "original")
    paper = bl.Penalty(Quadratic().problem(), schedule="paper").get_config()
    assert (paper["tolerance"], paper["nu_rho"], paper["lr_decay"], paper["nu_update"]) == \
        ("paper", "old", None, "on_tolerance")


def test_bad_schedule_values():
    with pytest.raises(ValueError, match="schedule must be one of"):
        bl.Penalty(Quadratic().problem(), schedule="fast")
    with pytest.raises(ValueError, match="rho must be a non-negative number or 'auto'"):
        bl.Penalty(Quadratic().problem(), rho="big")
    with pytest.raises(ValueError, match="nu_update must be one of"):
        bl.Penalty(Quadratic().problem(), nu_update="sometimes")


def test_original_preset_is_the_former_default_trajectory():
    # schedule="original" with the constants spelled out and with the preset give the same numbers, and the
    # documented quirks hold: squared-squared tolerance, nu with the new rho, lr x0.9 on every firing.
    def run(**kwargs):
        q = Quadratic()
        solver = bl.Penalty(q.problem(u0=[0.3, -0.5, 0.8]), upper_optimizer=Adam(1e-2), lower_optimizer=Adam(1e-2),
                            inner_steps=3, eps=1e3, **kwargs)
        solver.run(50)
        return np.concatenate([q.u.numpy(), q.v.numpy(), solver.nu[0].numpy()]), solver
    preset, solver = run(schedule="original")
    explicit, _ = run(schedule="auglag", rho=1.0, lam=10.0, nu=0.0, c_rho=1.1, c_lam=0.9, c_eps=0.9,
                      lr_decay=0.9, tolerance="original", nu_rho="new", nu_update="on_tolerance")
    np.testing.assert_array_equal(preset, explicit)
    fired = int(solver.schedule_updates.numpy())
    assert fired > 0
    assert float(solver.lower_optimizer.learning_rate.numpy()) == pytest.approx(1e-2 * 0.9 ** fired, rel=1e-4)

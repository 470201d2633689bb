"""get_config / from_config, the solver-state registry, and checkpoints written before the registry existed."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

import bilevel_tf as bl
from quadratic import Quadratic


LEGACY = Path(__file__).resolve().parent / "data" / "legacy_checkpoints"
U0 = [0.3, -0.5, 0.8]

SOLVER_OPTIONS = {
    "penalty": dict(rho=2.0, lam=5.0, eps=1e6, nu=0.25),
    "approxgrad": dict(sigma=1e-2, linear_steps=4),
    "rmd": dict(truncation=2),
    "gd": {},
    "vpbgd": dict(gamma_max=3.0),
    "gpbgd": dict(gamma_max=3.0),
    "soba": dict(linear_optimizer=0.05),
    "saba": dict(linear_optimizer={"class_name": "Adam", "config": {"learning_rate": 0.01}}),
    "amigo": dict(linear_steps=4),
    "stocbio": dict(linear_steps=4, neumann_step=0.2),
    "f2sa": dict(lam_init=5.0, lam_growth=0.5, lam_max=None),
    "bome": dict(eta=0.3, decay_steps=None, warm_start=False),
    "implicit": dict(linear_solver="neumann", linear_steps=4, neumann_step=0.2, warm_start=False),
}


@pytest.mark.parametrize("method", sorted(SOLVER_OPTIONS))
def test_config_is_json_and_rebuilds_the_same_solver(method):
    opts = dict(SOLVER_OPTIONS[method], inner_steps=3)
    if method == "rmd":
        opts["lower_optimizer"] = keras.optimizers.SGD(0.05)
    q1, q2 = Quadratic(), Quadratic()
    a = bl.make_solver(method, q1.problem(u0=U0), **opts)
    config = json.loads(json.dumps(a.get_config()))
    assert config["method"] == method and config["inner_steps"] == 3
    for slot in ("upper_optimizer", "lower_optimizer"):
        if config[slot] is None:  # left to its default, measured on the problem at the first step: the rule
            assert config["default_steps"][slot].startswith("plain SGD at ")
        else:
            assert config[slot]["class_name"] and "learning_rate" in config[slot]["config"]
    b = type(a).from_config(q2.problem(u0=U0), config)
    assert b.get_config() == config
    for _ in range(3):
        a.step()
        b.step()
    np.testing.assert_allclose(q1.u.numpy(), q2.u.numpy(), rtol=1e-6)
    np.testing.assert_allclose(q1.v.numpy(), q2.v.numpy(), rtol=1e-6)


def test_config_records_the_construction_learning_rate_not_the_decayed_one():
    q = Quadratic()
    s = bl.Penalty(q.problem(), upper_optimizer=keras.optimizers.Adam(0.01), schedule="original", eps=1e9)
    s.step()  # fires, decays the learning rates
    assert float(s.upper_optimizer.learning_rate.numpy()) < 0.01
    assert s.get_config()["upper_optimizer"]["config"]["learning_rate"] == pytest.approx(0.01)


def test_state_registry_feeds_checkpoint_reset_and_schedule():
    q = Quadratic()
    s = bl.ApproxGrad(q.problem(u0=U0), inner_steps=2)
    with pytest.raises(ValueError, match="registered twice"):
        s.add_state("p", [])
    s.step()
    s.checkpoint  # built on first use
    assert np.abs(s.p[0].numpy()).sum() > 0
    s.reset_state()
    assert np.abs(s.p[0].numpy()).sum() == 0 and int(s.iterations.numpy()) == 0
    with pytest.raises(RuntimeError, match="after the checkpoint was built"):
        s.add_state("late", [])
    assert bl.VPBGD(Quadratic().problem()).schedule() == {"gamma": 0.0}


@pytest.mark.parametrize("method", ["penalty", "approxgrad", "vpbgd"])
def test_checkpoints_written_before_the_registry_still_restore(method):
    expected = json.loads((LEGACY / "expected.json").read_text())[method]
    q = Quadratic()
    # the checkpoints were written with the former defaults (for Penalty: today's schedule="original")
    opts = dict(SOLVER_OPTIONS["penalty"], schedule="original") if method == "penalty" else {}
    s = bl.make_solver(method, q.problem(u0=U0), inner_steps=3, **opts)
    s.checkpoint.read(str(LEGACY / method / "ckpt")).assert_existing_objects_matched()
    np.testing.assert_allclose(q.u.numpy(), expected["u"], rtol=1e-6)
    np.testing.assert_allclose(q.v.numpy(), expected["v"], rtol=1e-6)
    assert int(s.iterations.numpy()) == expected["iterations"]
    assert s.schedule() == pytest.approx(expected["schedule"])
    if method == "penalty":
        np.testing.assert_allclose(s.nu[0].numpy(), expected["nu"], rtol=1e-6)
        assert float(s.lower_optimizer.learning_rate.numpy()) == pytest.approx(expected["lr"])
    if method == "approxgrad":
        np.testing.assert_allclose(s.p[0].numpy(), expected["p"], rtol=1e-6)
    s.step()  # and it continues
    assert int(s.iterations.numpy()) == expected["iterations"] + 1


def test_reset_state_sets_schedule_values_and_refuses_unknown_names():
    solver = bl.Penalty(Quadratic().problem(), 0.01, 0.01, schedule="original", lam=5.0, inner_steps=2)
    solver.step()
    solver.lam.assign(7.0)
    solver.reset_state()
    assert solver.schedule()["lam"] == 5.0 and int(solver.iterations.numpy()) == 0
    solver.reset_state(lam=1e-2, rho=3.0)  # the synthetic ablation's trials: other lam_0, same compiled step
    assert solver.schedule()["lam"] == pytest.approx(1e-2) and solver.schedule()["rho"] == 3.0
    with pytest.raises(ValueError, match=r"no schedule entries \['gamma'\]"):
        solver.reset_state(gamma=1.0)

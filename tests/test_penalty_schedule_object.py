"""Penalty's schedule as an object (bl.PenaltySchedule) and its presets as factories (bl.penalty_schedules):
a schedule of one's own drives bl.Penalty to a quadratic's closed form, bad constants are refused by name, a
factory with overrides is the named preset with the same keywords, and the names are derived from one table."""

import argparse
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf.runner import experiment
from quadratic import Quadratic

SGD = keras.optimizers.SGD
#: constants that converge on Quadratic with plain SGD: a multiplier step every iteration, fixed weights
FIXED = dict(rho=0.5, lam=0.1, calibration="curvature", lower_scale=False, average_lower=False)


class RampedPenalty(bl.PenaltySchedule):
    """A rule of one's own: the preset's step, then rho grows 5% per iteration up to 1."""

    def update(self, state, aux):
        fired = super().update(state, aux)
        state.rho.assign(tf.minimum(state.rho * 1.05, 1.0))
        return fired


def _solve(schedule, steps=200, **options):
    q = Quadratic()
    solver = bl.Penalty(
        q.problem(), upper_optimizer=SGD(0.1), lower_optimizer=SGD(0.2), inner_steps=5, schedule=schedule, **options
    )
    solver.run(steps)
    return q, solver


@pytest.mark.parametrize(
    "schedule",
    [bl.PenaltySchedule(dual_step=0.5, **FIXED), RampedPenalty(**dict(FIXED, rho=0.1, dual_step=1.0))],
    ids=["custom_constants", "subclass"],
)
def test_a_schedule_of_ones_own_reaches_the_closed_form(schedule):
    q, solver = _solve(schedule)
    assert q.u_error() < 1e-4 and q.v_error() < 1e-4, (q.u_error(), q.v_error())
    assert solver.penalty_schedule is schedule and solver.get_config()["dual_step"] == schedule.dual_step
    # the subclass's own rule ran (rho 0.1 -> 1 in 48 steps); the plain schedule keeps its rho
    assert solver.schedule()["rho"] == (1.0 if isinstance(schedule, RampedPenalty) else 0.5)


def test_a_pure_penalty_does_not_reach_the_closed_form():
    # the control of the test above: without the multiplier a finite rho leaves a bias
    q, _ = _solve(bl.PenaltySchedule(use_nu=False, **FIXED))
    assert q.u_error() > 1e-2


@pytest.mark.parametrize(
    "field, value",
    [
        ("rho", -1.0),
        ("lam", "big"),
        ("eps", -0.1),
        ("nu", "zero"),
        ("nu", float("nan")),
        ("c_rho", -2.0),
        ("c_lam", None),
        ("c_eps", True),
        ("use_nu", "yes"),
        ("lr_decay", 0.0),
        ("lr_decay", 1.5),
        ("tolerance", "strict"),
        ("nu_rho", "newest"),
        ("nu_update", "sometimes"),
        ("calibration", "guess"),
        ("dual_step", 0.0),
        ("dual_step", 2.0),
        ("lower_scale", "on"),
        ("average_lower", 2),
        ("name", ""),
    ],
)
def test_a_bad_field_is_refused_by_name(field, value):
    with pytest.raises(ValueError, match=f"^{field} must be"):
        bl.PenaltySchedule(**{field: value})
    if field != "name":  # and so through a factory, a replace and bl.Penalty's keywords
        with pytest.raises(ValueError, match=f"^{field} must be"):
            bl.penalty_schedules.paper(**{field: value})
        with pytest.raises(ValueError, match=f"^{field} must be"):
            bl.Penalty(Quadratic().problem(), **{field: value})


def test_bad_combinations_and_names_are_refused():
    with pytest.raises(ValueError, match="^lower_scale needs calibration='spectral'"):
        bl.PenaltySchedule(calibration="curvature")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['gamma'\]"):
        bl.penalty_schedules.original(gamma=1.0)
    with pytest.raises(ValueError, match=r"^schedule must be one of \['balanced', 'auglag', 'original', 'paper'\]"):
        bl.Penalty(Quadratic().problem(), schedule=bl.penalty_schedules.original)  # the factory, not called


def _without_optimizers(solver):
    return {k: v for k, v in solver.get_config().items() if not k.endswith("_optimizer")}


OVERRIDES = [
    {},
    dict(c_rho=1.2),
    dict(use_nu=False),
    dict(nu_update="on_tolerance", eps=1e2),
    dict(lr_decay=None),
    dict(rho=0.5, lam="auto"),
]


@pytest.mark.parametrize("name", list(bl.penalty_schedules.SCHEDULES))
@pytest.mark.parametrize("overrides", OVERRIDES, ids=lambda o: ",".join(o) or "preset")
def test_a_factory_with_overrides_is_the_named_preset_with_those_keywords(name, overrides):
    factory = getattr(bl.penalty_schedules, name)
    by_name = bl.Penalty(Quadratic().problem(), schedule=name, **overrides)
    made = factory(**overrides)
    assert made == by_name.penalty_schedule and made.name == name
    assert _without_optimizers(bl.Penalty(Quadratic().problem(), schedule=made)) == _without_optimizers(by_name)
    assert bl.penalty_schedules.get(name, **overrides) == made
    assert made.replace(**overrides) == made and factory() == bl.penalty_schedules.get(name)


@pytest.mark.parametrize("name", ["balanced", "original"])
def test_the_object_and_the_name_give_the_same_iterates(name):
    def iterates(schedule, **overrides):
        q = Quadratic()
        solver = bl.Penalty(q.problem(u0=[0.3, -0.5, 0.8]), 1e-2, 1e-2, inner_steps=3, schedule=schedule, **overrides)
        for _ in range(3):
            solver.step()
        return np.concatenate([q.u.numpy(), q.v.numpy(), solver.nu[0].numpy(), list(solver.schedule().values())])

    factory = bl.penalty_schedules.SCHEDULES[name]
    np.testing.assert_array_equal(iterates(name, eps=1e3), iterates(factory(eps=1e3)))
    np.testing.assert_array_equal(iterates(name, eps=1e3), iterates(factory(), eps=1e3))  # keywords over an object


def test_config_rebuilds_a_schedule_object_and_keeps_the_checkpoint_keys():
    solver = bl.Penalty(Quadratic().problem(), schedule=bl.penalty_schedules.original(c_rho=1.2, lr_decay=None))
    config = json.loads(json.dumps(solver.get_config()))
    assert (config["schedule"], config["c_rho"], config["lr_decay"]) == ("original", 1.2, None)
    rebuilt = bl.Penalty.from_config(Quadratic().problem(), config)
    assert rebuilt.penalty_schedule == solver.penalty_schedule
    ramped = bl.Penalty.from_config(Quadratic().problem(), {**config, "schedule": RampedPenalty()})
    assert type(ramped.penalty_schedule) is RampedPenalty
    assert {k: v for k, v in ramped.get_config().items() if k != "schedule"} == {
        k: v for k, v in config.items() if k != "schedule"
    }


@pytest.mark.parametrize(
    "name, extra",
    [("balanced", {"lower_scale", "calibrated"}), ("auglag", {"calibrated"}), ("original", set()), ("paper", set())],
)
def test_every_preset_keeps_its_checkpoint_keys(name, extra, tmp_path):
    solver = bl.Penalty(Quadratic().problem(), schedule=name)
    path = solver.checkpoint.write(str(tmp_path / "ckpt"))
    keys = {key.split("/")[0] for key, _ in tf.train.list_variables(path)} - {"_CHECKPOINTABLE_OBJECT_GRAPH"}
    common = {
        "upper_vars",
        "lower_vars",
        "upper_optimizer",
        "lower_optimizer",
        "iterations",
        "rho",
        "lam",
        "eps",
        "nu",
        "schedule_updates",
    }
    assert keys == common | extra


def test_the_names_come_from_one_table():
    names = list(bl.penalty_schedules.SCHEDULES)
    assert names == ["balanced", "auglag", "original", "paper"]
    assert all(bl.penalty_schedules.SCHEDULES[n].__name__ == n for n in names)
    parser = argparse.ArgumentParser()
    experiment.add_schedule_flag(parser, bl.penalty_schedules.DEFAULT_SCHEDULE)
    action = next(a for a in parser._actions if a.dest == "schedule")
    assert action.choices == names and action.default == "balanced"
    assert all(n in action.help for n in names)
    # every constant of the schedule is a keyword of bl.Penalty (and so a make_solver / runner option)
    assert set(bl.PenaltySchedule.constant_names()) <= set(bl.Penalty.option_names())
    assert bl.PenaltySchedule() == bl.penalty_schedules.balanced()  # the class defaults are the default preset

"""bl.make_solver, the one solver factory: the forms of its optimizer options, its errors, bl.METHODS."""

import json

import keras
import pytest

import bilevel_tf as bl
from quadratic import Quadratic

ADAM, SGD = keras.optimizers.Adam, keras.optimizers.SGD
#: the class a learning rate becomes, per method and optimizer slot
SLOT_CLASSES = {
    "penalty": dict(upper_optimizer=ADAM, lower_optimizer=ADAM),
    "approxgrad": dict(upper_optimizer=ADAM, lower_optimizer=ADAM, linear_optimizer=ADAM),
    "rmd": dict(upper_optimizer=SGD, lower_optimizer=SGD),
    "gd": dict(upper_optimizer=ADAM, lower_optimizer=ADAM),
    "vpbgd": dict(upper_optimizer=SGD, lower_optimizer=SGD, inner_optimizer=SGD),
    "gpbgd": dict(upper_optimizer=SGD, lower_optimizer=SGD),
    "soba": dict(upper_optimizer=SGD, lower_optimizer=SGD, linear_optimizer=SGD),
    "saba": dict(upper_optimizer=SGD, lower_optimizer=SGD, linear_optimizer=SGD),
    "amigo": dict(upper_optimizer=SGD, lower_optimizer=SGD, linear_optimizer=SGD),
    "stocbio": dict(upper_optimizer=SGD, lower_optimizer=SGD),
    "f2sa": dict(upper_optimizer=SGD, lower_optimizer=SGD, penalty_optimizer=SGD),
    "bome": dict(upper_optimizer=SGD, lower_optimizer=SGD, inner_optimizer=SGD),
    "implicit": dict(upper_optimizer=SGD, lower_optimizer=SGD),
}


def test_every_registered_method_builds_its_class():
    for method in bl.METHODS:
        assert bl.get_solver(method).method == method and bl.SOLVERS[method] is bl.get_solver(method)
    assert bl.get_solver("rhg") is bl.get_solver("itd") is bl.get_solver("R-H-G") is bl.RMD


@pytest.mark.parametrize("method", SLOT_CLASSES)
def test_a_learning_rate_becomes_the_slots_default_class(method):
    rates = {slot: 0.01 * (i + 1) for i, slot in enumerate(SLOT_CLASSES[method])}
    solver = bl.make_solver(method, Quadratic().problem(), inner_steps=2, **rates)
    for slot, cls in SLOT_CLASSES[method].items():
        optimizer = getattr(solver, slot)
        assert type(optimizer) is cls, slot
        assert float(optimizer.learning_rate.numpy()) == pytest.approx(rates[slot])
        assert solver.get_config()[slot]["class_name"] == cls.__name__
    solver.step()


def test_rmd_takes_a_learning_rate_for_its_sgd_lower_level():
    solver = bl.make_solver("rmd", Quadratic().problem(), lower_optimizer=0.05, inner_steps=3)
    assert type(solver.lower_optimizer) is SGD
    assert float(solver.lower_optimizer.learning_rate.numpy()) == pytest.approx(0.05)
    solver.step()
    with pytest.raises(ValueError, match="plain SGD"):
        bl.make_solver("rmd", Quadratic().problem(), lower_optimizer={"class_name": "Adam", "config": {}})


def test_config_dicts_and_names_are_built_by_keras():
    spec = {"class_name": "Adam", "config": {"learning_rate": 1e-2, "epsilon": 1e-8}}
    before = json.dumps(spec)
    solver = bl.make_solver(
        "approxgrad",
        Quadratic().problem(),
        upper_optimizer=spec,
        lower_optimizer=spec,
        linear_optimizer="sgd",
        inner_steps=2,
    )
    assert json.dumps(spec) == before  # not consumed: one table row can serve many solvers
    assert solver.upper_optimizer is not solver.lower_optimizer
    for opt in (solver.upper_optimizer, solver.lower_optimizer):
        assert type(opt) is ADAM and opt.epsilon == 1e-8
        assert float(opt.learning_rate.numpy()) == pytest.approx(1e-2)
    assert type(solver.linear_optimizer) is SGD  # a name: Keras' defaults
    config = solver.get_config()
    assert config["upper_optimizer"]["config"]["epsilon"] == 1e-8
    # the recorded (serialized) form is accepted as it is, custom registered optimizers included
    from bilevel_tf.apps.denoising.per_example_adam import PerExampleAdam

    recorded = bl.make_solver("gd", Quadratic().problem(), upper_optimizer=PerExampleAdam(3.0)).get_config()
    again = bl.make_solver("gd", Quadratic().problem(), upper_optimizer=recorded["upper_optimizer"])
    assert type(again.upper_optimizer) is PerExampleAdam
    assert again.get_config()["upper_optimizer"]["config"]["learning_rate"] == 3.0


def test_unknown_method_names_the_valid_ones():
    with pytest.raises(
        ValueError,
        match=r"unknown method 'newton'; choose one of \['penalty', 'approxgrad', 'rmd', "
        r"'gd', 'vpbgd', 'gpbgd', 'soba', 'saba', 'amigo', 'stocbio', 'f2sa', "
        r"'bome', 'implicit'\]",
    ):
        bl.make_solver("newton", Quadratic().problem())


def test_unknown_option_names_the_method_and_its_options():
    with pytest.raises(
        ValueError,
        match=r"RMD \(method 'rmd'\) got unknown option\(s\) \['sigma'\]; its options are "
        r"\['hvp', 'inner_steps', 'jit_compile', 'lower_optimizer', 'truncation', "
        r"'unroll', 'upper_optimizer'\]",
    ):
        bl.make_solver("rhg", Quadratic().problem(), sigma=1e-3)
    assert "c_rho" in bl.Penalty.option_names() and "upper_optimizer" in bl.Penalty.option_names()
    assert bl.VPBGD.option_names() == sorted(set(bl.GPBGD.option_names()) | {"inner_optimizer"})


@pytest.mark.parametrize(
    "spec, message",
    [
        (-1.0, "a learning rate must be positive"),
        ({"class_name": "Adam", "config": {"learnig_rate": 1e-3}}, "no Keras optimizer from"),
        ({"config": {"learning_rate": 1e-3}}, "no Keras optimizer from"),
        ("not_an_optimizer", "no Keras optimizer from 'not_an_optimizer'"),
        (True, "must be a keras.optimizers.Optimizer, a positive learning rate"),
    ],
)
def test_bad_optimizer_options(spec, message):
    with pytest.raises(ValueError, match=message):
        bl.make_solver("vpbgd", Quadratic().problem(), inner_optimizer=spec)


def test_the_poisoning_table_gives_the_originals_optimizers():
    from bilevel_tf.apps import poisoning

    options = poisoning.attack_solver_options("rmd", lr_u=0.01, lr_v=0.1, inner_steps=2)
    solver = bl.make_solver("rmd", Quadratic().problem(), **options)
    assert type(solver.upper_optimizer) is ADAM and type(solver.lower_optimizer) is SGD  # Adam on the poison
    options = poisoning.attack_solver_options("approxgrad", lr_u=0.01, lr_v=0.1, inner_steps=2)
    solver = bl.make_solver("approxgrad", Quadratic().problem(), **options)
    assert type(solver.linear_optimizer) is ADAM
    assert float(solver.linear_optimizer.learning_rate.numpy()) == pytest.approx(0.1)  # lr_p defaults to lr_v
    with pytest.raises(ValueError, match=r"unknown method 'gd'; choose one of \['penalty', 'approxgrad', 'rmd'\]"):
        poisoning.attack_solver_options("gd", lr_u=0.01, lr_v=0.1, inner_steps=2)

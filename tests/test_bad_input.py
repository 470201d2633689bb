"""Bad construction raises ValueError naming the problem."""

import keras
import pytest
import tensorflow as tf

import bilevel_tf as bl
from quadratic import Quadratic


def _vars():
    return tf.Variable([1.0, 2.0]), tf.Variable([0.0, 0.0])


def _losses(u, v):
    return (lambda b: tf.reduce_sum(v**2) + tf.reduce_sum(u**2)), (lambda b: tf.reduce_sum((v - u) ** 2))


@pytest.mark.parametrize("field", ["upper_vars", "lower_vars"])
def test_empty_variable_lists(field):
    u, v = _vars()
    f, g = _losses(u, v)
    kwargs = dict(upper_vars=[u], lower_vars=[v])
    kwargs[field] = []
    with pytest.raises(ValueError, match=f"{field} is empty"):
        bl.BilevelProblem(f, g, **kwargs)


def test_non_variable_and_shared_and_integer_variables():
    u, v = _vars()
    f, g = _losses(u, v)
    with pytest.raises(ValueError, match=r"upper_vars\[0\] is a EagerTensor"):
        bl.BilevelProblem(f, g, [tf.constant(1.0)], [v])
    with pytest.raises(ValueError, match="share a variable"):
        bl.BilevelProblem(f, g, [u], [u, v])
    with pytest.raises(ValueError, match="only floating variables"):
        bl.BilevelProblem(f, g, [tf.Variable([1, 2])], [v])
    with pytest.raises(ValueError, match="upper_loss must be callable"):
        bl.BilevelProblem(3.0, g, [u], [v])


@pytest.mark.parametrize("which", ["upper_loss", "lower_loss"])
def test_non_scalar_loss_is_rejected_when_traced(which):
    u, v = _vars()
    f, g = _losses(u, v)
    vector = lambda b: (v - u) ** 2  # noqa: E731
    upper, lower = (vector if which == "upper_loss" else f), (vector if which == "lower_loss" else g)
    problem = bl.BilevelProblem(upper, lower, [u], [v])
    solver = bl.Penalty(problem, inner_steps=1)
    with pytest.raises(ValueError, match=f"{which} must return a scalar, got a tensor of shape \\[2\\]"):
        solver.step()


@pytest.mark.parametrize("steps", [0, -3, 2.5, True])
def test_inner_steps_must_be_a_positive_integer(steps):
    with pytest.raises(ValueError, match="inner_steps must be an integer >= 1"):
        bl.Penalty(Quadratic().problem(), inner_steps=steps)


def test_unknown_option_and_method():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['rhoo'\]"):
        bl.Penalty(Quadratic().problem(), rhoo=1.0)
    with pytest.raises(ValueError, match="unknown method 'newton'"):
        bl.get_solver("newton")
    with pytest.raises(ValueError, match="tolerance must be one of"):
        bl.Penalty(Quadratic().problem(), tolerance="loose")


def test_mismatched_constraint_outputs():
    u, v = _vars()
    f, g = _losses(u, v)
    with pytest.raises(ValueError, match="upper_constraint returned 2 tensors for 1 variables"):
        bl.BilevelProblem(f, g, [u], [v], upper_constraint=lambda vals: [vals[0], vals[0]])
    message = r"lower_constraint output 0 has shape \[3\], expected the variable's shape \[2\]"
    with pytest.raises(ValueError, match=message):
        bl.BilevelProblem(f, g, [u], [v], lower_constraint=lambda vals: [tf.zeros([3])])
    with pytest.raises(ValueError, match="must return a list of 1 tensors"):
        bl.BilevelProblem(f, g, [u], [v], upper_constraint=lambda vals: vals[0])


def test_optimizer_misuse():
    opt = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="the same object"):
        bl.Penalty(Quadratic().problem(), upper_optimizer=opt, lower_optimizer=opt)
    with pytest.raises(ValueError, match="upper_optimizer must be a keras.optimizers.Optimizer"):
        bl.Penalty(Quadratic().problem(), upper_optimizer=[1e-3])
    with pytest.raises(ValueError, match="upper_optimizer: no Keras optimizer from 'adamw2'"):
        bl.Penalty(Quadratic().problem(), upper_optimizer="adamw2")
    with pytest.raises(ValueError, match="a learning rate must be positive"):
        bl.GD(Quadratic().problem(), lower_optimizer=-1.0)
    with pytest.raises(ValueError, match="plain SGD"):
        bl.RMD(Quadratic().problem(), lower_optimizer=keras.optimizers.Adam())
    with pytest.raises(ValueError, match="truncation .* cannot exceed inner_steps"):
        bl.RMD(Quadratic().problem(), inner_steps=3, truncation=5)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    with pytest.raises(ValueError, match="lr_decay needs upper_optimizer to have a constant learning rate"):
        bl.Penalty(Quadratic().problem(), upper_optimizer=keras.optimizers.Adam(schedule), schedule="original")
    bl.Penalty(
        Quadratic().problem(), upper_optimizer=keras.optimizers.Adam(schedule), schedule="original", lr_decay=None
    )
    bl.Penalty(Quadratic().problem(), upper_optimizer=keras.optimizers.Adam(schedule))  # default: no decay


def test_negative_schedule_values():
    with pytest.raises(ValueError, match="rho must be a non-negative number"):
        bl.Penalty(Quadratic().problem(), rho=-1.0)
    with pytest.raises(ValueError, match="lr_decay must be in"):
        bl.Penalty(Quadratic().problem(), lr_decay=1.5)
    with pytest.raises(ValueError, match="sigma must be a non-negative number"):
        bl.ApproxGrad(Quadratic().problem(), sigma=float("nan"))

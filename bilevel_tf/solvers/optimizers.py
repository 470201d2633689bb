"""The optimizer options of a solver: what a slot (``upper_optimizer``, ``lower_optimizer``, ApproxGrad's
``linear_optimizer``, V-PBGD's ``inner_optimizer``) accepts, how the solver records it, and how a solver adds
a slot of its own (:func:`add_slot`)."""

from __future__ import annotations

import copy
import json
import numbers
import warnings
from typing import Any, Dict, Type

import keras

#: the forms an optimizer option takes, for error messages
FORMS = (
    "a keras.optimizers.Optimizer, a positive learning rate, a Keras optimizer name or config dict "
    "(keras.optimizers.get), or None"
)


def make_optimizer(
    spec: Any, name: str, default_cls: Type[keras.optimizers.Optimizer], default_lr: float
) -> keras.optimizers.Optimizer:
    """The Keras optimizer of slot ``name`` from any accepted form of ``spec``:

    * ``None``: ``default_cls(learning_rate=default_lr)`` (the slot's defaults);
    * a positive number: ``default_cls(learning_rate=spec)``, the slot's default class at that rate;
    * a ``keras.optimizers.Optimizer`` instance: used as it is (it must not serve another slot);
    * a Keras identifier, built by ``keras.optimizers.get``: a config dict as
      ``keras.saving.serialize_keras_object`` writes it (``module`` and ``registered_name`` optional), e.g.
      ``{"class_name": "Adam", "config": {"learning_rate": 1e-2, "epsilon": 1e-8}}``, or a class name such as
      ``"sgd"`` (Keras' own defaults for that class, learning rate included).
    """
    if spec is None:
        return default_cls(learning_rate=default_lr)
    if isinstance(spec, keras.optimizers.Optimizer):
        return spec
    if isinstance(spec, numbers.Real) and not isinstance(spec, bool):
        if spec <= 0:
            raise ValueError(f"{name}: a learning rate must be positive, got {spec}")
        return default_cls(learning_rate=float(spec))
    if isinstance(spec, (str, dict)):
        try:  # a copy: Keras may replace entries of the config it is given (learning-rate schedules)
            optimizer = keras.optimizers.get(copy.deepcopy(spec))
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(f"{name}: no Keras optimizer from {spec!r} ({type(e).__name__}: {e})") from e
        if isinstance(optimizer, keras.optimizers.Optimizer):
            return optimizer
    raise ValueError(f"{name} must be {FORMS}, got {type(spec).__name__}")


#: learning rates outside this range get a warning (not an error): the paper's runs use 1e-6 to 3
USUAL_LEARNING_RATES = (1e-8, 100.0)


def check_learning_rate(optimizer: keras.optimizers.Optimizer, name: str) -> None:
    """A constant learning rate must be finite and > 0 (a schedule is the user's business), and one far outside
    :data:`USUAL_LEARNING_RATES` is warned about: such a run diverges or stalls while looking normal."""
    lr = optimizer.learning_rate
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule) or callable(lr):
        return
    value = float(keras.ops.convert_to_numpy(lr))
    if not (value > 0 and value < float("inf")):
        raise ValueError(f"{name} has learning rate {value}; it must be a finite number > 0")
    low, high = USUAL_LEARNING_RATES
    if not low <= value <= high:
        side = "above" if value > high else "below"
        warnings.warn(
            f"{name} has learning rate {value:g}, far {side} the usual range [{low:g}, {high:g}]: expect "
            f"the run to {'diverge' if value > high else 'barely move'}",
            UserWarning,
            stacklevel=2,
        )


def optimizer_config(optimizer: keras.optimizers.Optimizer) -> Dict[str, Any]:
    """A JSON-able description of a Keras optimizer (``keras.saving.serialize_keras_object``), read when the
    solver is built so that later learning-rate decay does not change it. :func:`make_optimizer` accepts it."""
    return json.loads(json.dumps(keras.saving.serialize_keras_object(optimizer), default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "numpy"):
        return value.numpy().tolist()
    if hasattr(value, "item"):
        return value.item()
    return repr(value)


def add_slot(
    solver: Any,
    name: str,
    spec: Any,
    default_cls: Type[keras.optimizers.Optimizer],
    variables: Any,
    default_lr: Any = None,
) -> keras.optimizers.Optimizer:
    """An extra optimizer slot of ``solver`` (like ApproxGrad's ``linear_optimizer``) from any form of
    :func:`make_optimizer`: a learning rate gives ``default_cls``; None gives ``default_cls`` at ``default_lr``
    (a number, or a ``default_steps.CurvatureStep``: plain SGD at a step measured on the problem) or, when
    ``default_lr`` is None, what the lower optimizer's default is: its initial learning rate (a step that is
    stable on g), or its measured step when the lower optimizer is measured too. The slot must be its own
    instance; it is built on ``variables``, checkpointed under ``name`` (``solver.add_state``) and recorded by
    ``solver.get_config()`` under ``name``."""
    if default_lr is None:
        default_lr = solver.default_steps.rule("lower_optimizer") or slot_learning_rate(solver)
    return solver.default_steps.slot(solver, name, spec, default_cls, default_lr, variables)


def slot_learning_rate(solver: Any, slot: str = "lower_optimizer") -> float:
    """The learning rate of the solver's lower optimizer (or another ``slot``) now: at construction, the one
    it was given."""
    return float(keras.ops.convert_to_numpy(getattr(solver, slot).learning_rate))

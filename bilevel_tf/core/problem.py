"""The bilevel problem: min_u f(u, v*(u)) s.t. v*(u) = argmin_v g(u, v)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import tensorflow as tf

from . import options, precision

Loss = Callable[[Any], tf.Tensor]
Constraint = Callable[[List[tf.Tensor]], List[tf.Tensor]]


def is_variable(x: Any) -> bool:
    """True for tf.Variable and Keras 3 variables (which are not tf.Variable subclasses)."""
    if isinstance(x, tf.Variable):
        return True
    return hasattr(x, "assign") and hasattr(x, "value") and hasattr(x, "trainable") and hasattr(x, "shape")


def _check_vars(name: str, variables: Any) -> List[Any]:
    if variables is None or is_variable(variables):
        variables = [] if variables is None else [variables]
    variables = list(variables)
    if not variables:
        raise ValueError(f"{name} is empty: a bilevel problem needs at least one variable at each level")
    for i, v in enumerate(variables):
        if not is_variable(v):
            raise ValueError(f"{name}[{i}] is a {type(v).__name__}, expected a tf.Variable or keras.Variable")
        dtype = tf.as_dtype(v.dtype)
        if not dtype.is_floating:
            raise ValueError(f"{name}[{i}] ({v.name}) has dtype {dtype.name}; only floating variables can be optimized")
        if dtype in precision.HALF:
            raise ValueError(
                f"{name}[{i}] ({v.name}) is {dtype.name}: second-order products and the solvers' "
                "state need float32 or float64 variables; for half-precision compute build the model "
                "after bl.precision.set_policy('mixed_bfloat16'), which keeps its variables float32"
            )
    ids = [id(v) for v in variables]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{name} lists the same variable twice")
    return variables


def _check_one_dtype(upper_vars: List[Any], lower_vars: List[Any]) -> None:
    """Every variable of a problem has one dtype: the solvers combine both levels' gradients in second-order
    products, and TensorFlow refuses to mix float32 and float64 deep inside the compiled step."""
    first_of: Dict[str, str] = {}
    for name, variables in (("upper_vars", upper_vars), ("lower_vars", lower_vars)):
        for i, v in enumerate(variables):
            first_of.setdefault(tf.as_dtype(v.dtype).name, f"{name}[{i}] ({v.name})")
    if len(first_of) > 1:
        (a, where_a), (b, where_b) = list(first_of.items())[:2]
        raise ValueError(
            f"{where_a} is {a} but {where_b} is {b}: every variable of a bilevel problem needs the same "
            "dtype (both levels meet in second-order products); create them with one dtype, e.g. "
            "keras.config.set_floatx('float64') before building the model"
        )


class BilevelProblem:
    """A bilevel problem whose losses close over their variables, the way Keras losses close over a model.

    Args:
        upper_loss: ``f(batch) -> scalar``, the upper-level (outer) loss; ``batch`` may be None.
        lower_loss: ``g(batch) -> scalar``, the lower-level (inner) loss.
        upper_vars: variables ``u`` optimized at the upper level (importance logits, poison images, ...).
        lower_vars: variables ``v`` optimized at the lower level (usually ``model.trainable_variables``).
        upper_constraint: optional ``values -> values`` map (list of tensors in, list of same-shaped tensors
            out) applied to ``u`` after every upper update, e.g. ``bl.constraints.box(0, 1)``.
        lower_constraint: the same for ``v`` after every lower update.
        lower_init: optional zero-argument callable run at the start of every upper iteration, inside the
            compiled step (e.g. re-initialize per-task heads in few-shot learning, or restart ``v`` for RHG).
        extra_state: optional dict of trackables (e.g. the Keras model, for BatchNorm statistics) added to
            the solver's checkpoint so that resuming restores them too.
    """

    def __init__(
        self,
        upper_loss: Loss,
        lower_loss: Loss,
        upper_vars: Sequence[Any],
        lower_vars: Sequence[Any],
        upper_constraint: Optional[Constraint] = None,
        lower_constraint: Optional[Constraint] = None,
        lower_init: Optional[Callable[[], Any]] = None,
        extra_state: Optional[Dict[str, Any]] = None,
    ):
        if not callable(upper_loss):
            raise ValueError(f"upper_loss must be callable(batch) -> scalar, got {type(upper_loss).__name__}")
        if not callable(lower_loss):
            raise ValueError(f"lower_loss must be callable(batch) -> scalar, got {type(lower_loss).__name__}")
        if precision.policy() not in options.PRECISIONS + ("float64",):
            raise ValueError(
                f"Keras' dtype policy is {precision.policy()!r}: bilevel_tf supports float32, float64 and "
                "'mixed_bfloat16' (float16 underflows in second-order products); set it with "
                "bl.precision.set_policy"
            )
        self.upper_loss = upper_loss
        self.lower_loss = lower_loss
        self.upper_vars = _check_vars("upper_vars", upper_vars)
        self.lower_vars = _check_vars("lower_vars", lower_vars)
        shared = {id(v) for v in self.upper_vars} & {id(v) for v in self.lower_vars}
        if shared:
            raise ValueError("upper_vars and lower_vars share a variable; each variable belongs to one level")
        _check_one_dtype(self.upper_vars, self.lower_vars)
        for name, fn in (
            ("upper_constraint", upper_constraint),
            ("lower_constraint", lower_constraint),
            ("lower_init", lower_init),
        ):
            if fn is not None and not callable(fn):
                raise ValueError(f"{name} must be callable or None, got {type(fn).__name__}")
        self.upper_constraint = upper_constraint
        self.lower_constraint = lower_constraint
        self.lower_init = lower_init
        self.extra_state = dict(extra_state or {})
        # Check the constraints eagerly on the current values: a wrong output fails here, not mid-run.
        check_constraint_output("upper_constraint", upper_constraint, self.upper_vars)
        check_constraint_output("lower_constraint", lower_constraint, self.lower_vars)

    def check_connected(self, upper_batch: Any, lower_batch: Any) -> None:
        """Raise ValueError naming the variables that no loss reaches: an upper variable that neither f nor g
        depends on (it would never move), or a lower variable that g does not use (the lower problem says
        nothing about it). Call inside a trace; only the graph's structure is inspected."""
        with tf.GradientTape(persistent=True) as tape:
            f, g = self.f(upper_batch), self.g(lower_batch)
        unused_upper = [
            v.name
            for v, a, b in zip(self.upper_vars, tape.gradient(f, self.upper_vars), tape.gradient(g, self.upper_vars))
            if a is None and b is None
        ]
        unused_lower = [v.name for v, d in zip(self.lower_vars, tape.gradient(g, self.lower_vars)) if d is None]
        del tape
        if unused_upper:
            raise ValueError(
                f"upper_vars {unused_upper} are not used by upper_loss nor lower_loss, so no solver can "
                "move them; remove them or make a loss depend on them"
            )
        if unused_lower:
            raise ValueError(
                f"lower_vars {unused_lower} are not used by lower_loss, so the lower problem does not "
                "determine them; pass only the variables g depends on (e.g. the trainable weights of "
                "the layers g calls)"
            )

    def f(self, batch: Any) -> tf.Tensor:
        """The upper loss, checked to be a scalar."""
        return _scalar("upper_loss", self.upper_loss(batch))

    def g(self, batch: Any) -> tf.Tensor:
        """The lower loss, checked to be a scalar."""
        return _scalar("lower_loss", self.lower_loss(batch))


def _scalar(name: str, value: Any) -> tf.Tensor:
    value = tf.convert_to_tensor(value)
    if value.shape.rank is not None and value.shape.rank != 0:
        if value.shape.num_elements() != 1:
            raise ValueError(
                f"{name} must return a scalar, got a tensor of shape {value.shape.as_list()}; "
                "reduce it (e.g. tf.reduce_mean) before returning"
            )
        value = tf.reshape(value, [])
    if not value.dtype.is_floating:
        raise ValueError(f"{name} must return a floating scalar, got dtype {value.dtype.name}")
    # Mixed precision: a loss computed in bfloat16/float16 is combined and reported in float32.
    return precision.to_float32(value)


def check_constraint_output(name: str, constraint: Optional[Constraint], variables: List[Any]) -> None:
    """Raise ValueError unless ``constraint`` maps the variables' values to a same-shaped list."""
    if constraint is None:
        return
    values = [tf.convert_to_tensor(v) for v in variables]
    out = constraint(values)
    if isinstance(out, (tf.Tensor, tf.Variable)) or not isinstance(out, (list, tuple)):
        raise ValueError(f"{name} must return a list of {len(values)} tensors, got {type(out).__name__}")
    if len(out) != len(values):
        raise ValueError(f"{name} returned {len(out)} tensors for {len(values)} variables")
    for i, (o, v) in enumerate(zip(out, values)):
        o_shape = tf.TensorShape(getattr(o, "shape", None))
        if not o_shape.is_compatible_with(v.shape):
            raise ValueError(
                f"{name} output {i} has shape {o_shape.as_list()}, expected the variable's shape {v.shape.as_list()}"
            )

"""Projections for ``upper_constraint`` / ``lower_constraint``: each helper returns a map from the list of
variable values to the list of projected values (same shapes), applied after every update."""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Union

import tensorflow as tf

Values = List[tf.Tensor]
Constraint = Callable[[Values], Values]
TensorLike = Union[float, tf.Tensor, Sequence]


def _per_variable(arg: TensorLike, n: int, name: str) -> list:
    """Broadcast a single value to all variables, or check a list has one entry per variable."""
    if isinstance(arg, (list, tuple)):
        if len(arg) != n:
            raise ValueError(f"{name} has {len(arg)} entries for {n} variables")
        return list(arg)
    return [arg] * n


def box(lower: TensorLike, upper: TensorLike) -> Constraint:
    """Clip every entry to [lower, upper] (scalars, or one bound per variable)."""

    def project(values: Values) -> Values:
        lo, hi = _per_variable(lower, len(values), "lower"), _per_variable(upper, len(values), "upper")
        return [
            tf.clip_by_value(v, tf.cast(low, v.dtype), tf.cast(high, v.dtype)) for v, low, high in zip(values, lo, hi)
        ]

    return project


def linf_ball(
    center: TensorLike, radius: float, clip: Optional[tuple] = None, axis: Optional[Sequence[int]] = None
) -> Constraint:
    """Project onto {x : ||x - center||_inf <= radius}, then optionally clip to a box ``clip=(lo, hi)``.
    ``axis`` is accepted for symmetry with :func:`l2_ball` (the L-inf projection is elementwise)."""
    del axis
    return _ball(center, radius, clip, lambda d, r, ax: tf.clip_by_value(d, -r, r), None)


def l2_ball(
    center: TensorLike, radius: float, clip: Optional[tuple] = None, axis: Optional[Sequence[int]] = None
) -> Constraint:
    """Project onto {x : ||x - center||_2 <= radius} (the norm over ``axis``, default all axes, so a batch
    of poison images each gets its own ball with ``axis=[1, 2, 3]``), then optionally clip to a box."""

    def shrink(d: tf.Tensor, r: tf.Tensor, ax: Optional[Sequence[int]]) -> tf.Tensor:
        norm = tf.sqrt(tf.reduce_sum(tf.square(d), axis=ax, keepdims=ax is not None) + 1e-12)
        return d * tf.minimum(1.0, r / norm)

    return _ball(center, radius, clip, shrink, axis)


def _ball(
    center: TensorLike,
    radius: float,
    clip: Optional[tuple],
    shrink: Callable[..., tf.Tensor],
    axis: Optional[Sequence[int]],
) -> Constraint:
    if not radius >= 0:
        raise ValueError(f"radius must be non-negative, got {radius!r}")

    def project(values: Values) -> Values:
        centers = _per_variable(center, len(values), "center")
        out = []
        for v, c in zip(values, centers):
            c = tf.cast(tf.convert_to_tensor(c), v.dtype)
            x = c + shrink(v - c, tf.cast(radius, v.dtype), axis)
            if clip is not None:
                x = tf.clip_by_value(x, tf.cast(clip[0], v.dtype), tf.cast(clip[1], v.dtype))
            out.append(x)
        return out

    return project


def compose(*constraints: Constraint) -> Constraint:
    """Apply several projections in order (an approximation of the projection onto their intersection,
    exact when the later sets contain the earlier results, e.g. a ball around a point of the box)."""

    def project(values: Values) -> Values:
        for c in constraints:
            values = c(values)
        return values

    return project

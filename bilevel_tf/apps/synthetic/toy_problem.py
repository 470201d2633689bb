"""The PBGD toy problem of Shen & Chen (2023), V-PBGD/toy::

    g(x, y) = (x + y)^2 + x sin^2(x + y)
    f(x, y) = cos(4y + 2) / (1 + e^(2 - 4x)) + 0.5 log((4x - 2)^2 + 1),     x in [0, 3]

For x >= 0, min_y g = 0 at y = -x, so the hyper-objective is phi(x) = f(x, -x). Many independent starts are
one problem: variables of shape (n,) and summed losses, whose gradient entry i is run i's own gradient.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Tuple

import numpy as np
import tensorflow as tf

import bilevel_tf as bl

TOY_X_BOX = (0.0, 3.0)


def toy_f(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """Per-run upper loss."""
    return tf.cos(4.0 * y + 2.0) / (1.0 + tf.exp(2.0 - 4.0 * x)) + 0.5 * tf.math.log(tf.square(4.0 * x - 2.0) + 1.0)


def toy_g(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """Per-run lower loss."""
    return tf.square(x + y) + x * tf.square(tf.sin(x + y))


def toy_hyper_objective(x: np.ndarray) -> np.ndarray:
    """phi(x) = f(x, -x) in float64."""
    x = np.asarray(x, np.float64)
    return np.cos(2.0 - 4.0 * x) / (1.0 + np.exp(2.0 - 4.0 * x)) + 0.5 * np.log((4.0 * x - 2.0) ** 2 + 1.0)


def toy_local_minima(lo: float = TOY_X_BOX[0], hi: float = TOY_X_BOX[1], points: int = 300001) -> np.ndarray:
    """Local minimizers of phi on [lo, hi] (endpoints included when phi rises away from them), on a grid
    of spacing (hi - lo) / (points - 1)."""
    x = np.linspace(lo, hi, points)
    phi = toy_hyper_objective(x)
    left = np.r_[np.inf, phi[:-1]]
    right = np.r_[phi[1:], np.inf]
    return x[(phi < left) & (phi <= right)]


class ToyProblem(NamedTuple):
    problem: bl.BilevelProblem
    x: tf.Variable
    y: tf.Variable


def make_toy(
    n: int,
    seed: int,
    x_init: Tuple[float, float] = (0.0, 3.5),
    y_init: Tuple[float, float] = (-5.0, 8.5),
    dtype: tf.DType = tf.float64,
) -> ToyProblem:
    """n independent runs from x ~ U(x_init), y ~ U(y_init) (the PBGD script's starts); x is projected onto
    [0, 3] after every update (the start itself may lie outside, as in the original).

    float64 by default: PBGD's stopping test (projected gradient <= 1e-5) lies below float32 resolution
    for runs near x = 2.83 (curvature ~80 times an ulp of 2.4e-7). The solvers' schedule scalars (gamma)
    take the variables' dtype, so everything runs in ``dtype``.
    """
    rng = np.random.default_rng(seed)
    x = tf.Variable(rng.uniform(*x_init, size=n), dtype=dtype, name="toy_x")
    y = tf.Variable(rng.uniform(*y_init, size=n), dtype=dtype, name="toy_y")

    def upper(_):
        return tf.reduce_sum(toy_f(x, y))

    def lower(_):
        return tf.reduce_sum(toy_g(x, y))

    problem = bl.BilevelProblem(upper, lower, [x], [y], upper_constraint=bl.constraints.box(*TOY_X_BOX))
    return ToyProblem(problem, x, y)


def toy_projected_gradient_norm(toy: ToyProblem, gamma: float, step: float) -> Callable[[], tf.Tensor]:
    """Per-run norm of the projected gradient (z - P(z - step grad F)) / step of F = f + gamma (g - min g),
    PBGD's stopping measure (min_y g = 0 here). Inside the box it is written as grad F itself, which avoids
    the float32 cancellation of the difference form."""
    lo, hi = TOY_X_BOX

    @tf.function
    def norm():
        x, y = tf.convert_to_tensor(toy.x), tf.convert_to_tensor(toy.y)
        with tf.GradientTape() as tape:
            tape.watch([x, y])
            total = tf.reduce_sum(toy_f(x, y) + gamma * toy_g(x, y))
        gx, gy = tape.gradient(total, [x, y])
        trial = x - step * gx
        px = tf.where(trial < lo, (x - lo) / step, tf.where(trial > hi, (x - hi) / step, gx))
        return tf.sqrt(tf.square(px) + tf.square(gy))

    return norm

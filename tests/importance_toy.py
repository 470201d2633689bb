"""The small importance-weighted classifier that the data-parallel tests fit: per-example importance (upper,
kept in a box) and a 6-4-3 network (lower), with batches (indices, x, y) below and (x, y) above."""

import keras
import numpy as np
import tensorflow as tf

import bilevel_tf as bl


def importance_problem(n_train: int, bound: float):
    """(problem, importance variable, model); build it inside the strategy's scope."""
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(3)])
    importance = tf.Variable(tf.zeros([n_train]), name="importance")
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)

    def g(batch):
        idx, x, y = batch
        return tf.reduce_mean(tf.sigmoid(tf.gather(importance, idx)) * ce(y, model(x)))

    def f(batch):
        x, y = batch
        return tf.reduce_mean(ce(y, model(x)))

    problem = bl.BilevelProblem(
        f, g, [importance], model.trainable_variables, upper_constraint=bl.constraints.box(-bound, bound)
    )
    return problem, importance, model


def importance_data(n: int):
    """(lower batch (indices, x, y) of n training points, upper batch (x, y) of n validation points)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (np.arange(n) % 3).astype(np.int64)
    x_val = rng.normal(size=(n, 6)).astype(np.float32)
    y_val = (np.arange(n) % 3).astype(np.int64)
    return (np.arange(n), x, y), (x_val, y_val)

"""The benchmark problems, their plain Keras train step, and the solvers with benchmark settings.

(a) ``cnn``: the MNIST denoising experiment (paper Table 2) with the experiment's own pieces: the
    ``mnist_cnn`` classifier (1.39M lower variables), ``ImportanceLearning`` (one importance logit per
    training example, 59,000 upper variables read with ``tf.gather``, so u gradients are sparse) and the
    runner's ``PerExampleAdam`` upper optimizer. Inputs are random images of MNIST's shape (timing only, no
    download).
(b) ``mlp``: the paper's largest problem, 3.8M upper / 1.4M lower variables (supp Table 7: Mini-ImageNet's
    upper level, MNIST's lower level), emulated the way few-shot bilevel learning splits a network: the
    upper level is a representation ``x -> relu(Dense h1) -> relu(Dense h2)`` on 784-d inputs and the lower
    level a head ``relu(Dense h3) -> Dense 10`` on those features; g = training cross-entropy + 1e-4/2
    ||head||^2, f = validation cross-entropy. Both levels are dense (u gradients are dense), and both
    losses run through the whole network. ``scale`` shrinks both counts by the same factor.

The plain Keras train step is the reference every timing is divided by: one Adam step on the mean
cross-entropy of the SAME model (all its weights) on the SAME batch as the lower level, written the way
Keras' own ``train_step`` does it (tape, gradient, ``apply_gradients``) minus metrics bookkeeping, compiled
with the same ``jit_compile`` as the solver it is compared with.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Dict, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf import models
from bilevel_tf.apps.denoising.importance import ImportanceLearning
from bilevel_tf.apps.denoising.per_example_adam import PerExampleAdam

#: per method: ``bl.make_solver``'s options with the denoising runners' settings (the values matter little for
#: timing). Learning rates are the slots' default classes: Adam, and plain SGD for RMD and the PBGD solvers.
SOLVER_OPTIONS: Dict[str, Dict[str, Any]] = {
    "penalty": dict(lower_optimizer=1e-4, schedule="original", rho=1e-2, lam=1e-2, eps=1e-2),
    "approxgrad": dict(lower_optimizer=1e-4, linear_optimizer=1e-5, sigma=1e-3),
    "rmd": dict(lower_optimizer=1e-3),
    "gd": dict(lower_optimizer=1e-4),
    "vpbgd": dict(lower_optimizer=1e-3, inner_optimizer=1e-3),
    "gpbgd": dict(lower_optimizer=1e-3),
}
SOLVERS = tuple(m for m in bl.METHODS if m in SOLVER_OPTIONS)
#: the paper's largest problem (supp Table 7): Mini-ImageNet's 3.8M upper, MNIST's 1.4M lower variables
LARGEST = (3_800_000, 1_400_000)
MNIST_TRAIN = 59_000
INPUT_DIM, CLASSES = 784, 10
_CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@dataclasses.dataclass
class Bench:
    """A bilevel problem with fixed batches, ready to time."""

    name: str
    problem: bl.BilevelProblem
    model: keras.Model  # the whole network (trained by the plain step)
    upper_batch: Any
    lower_batch: Any
    upper_optimizer: Callable[[], keras.optimizers.Optimizer]
    info: Dict[str, Any]

    def plain_step(self, jit_compile: bool = False) -> Callable[[], tf.Tensor]:
        """One plain Keras train step on the lower batch (a fresh Adam, compiled once)."""
        model, (x, y) = self.model, self.lower_batch[-2:]
        optimizer = keras.optimizers.Adam(1e-4)
        optimizer.build(model.trainable_variables)

        @tf.function(jit_compile=jit_compile)
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = _CE(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        run = lambda: step(x, y)  # noqa: E731
        run.concrete = lambda: step.get_concrete_function(x, y)  # for counting its FLOPs
        return run


def _images(rng: np.random.Generator, n: int, shape: Tuple[int, ...]) -> tf.Tensor:
    return tf.constant(rng.random((n,) + shape, dtype=np.float32))


def _labels(rng: np.random.Generator, n: int) -> tf.Tensor:
    return tf.constant(rng.integers(0, CLASSES, n))


def count(variables) -> int:
    return int(sum(np.prod(v.shape) for v in variables))


def cnn(batch: int = 128, seed: int = 0) -> Bench:
    """(a) MNIST importance learning with the paper's CNN, Dropout off (the runner's default)."""
    keras.utils.set_random_seed(seed)
    model = models.mnist_cnn((28, 28, 1), CLASSES)
    task = ImportanceLearning(model, np.zeros(MNIST_TRAIN, np.float32), training=False)
    rng = np.random.default_rng(seed)
    idx = tf.constant(rng.choice(MNIST_TRAIN, batch, replace=False))
    lower = (idx, _images(rng, batch, (28, 28, 1)), _labels(rng, batch))
    upper = (_images(rng, batch, (28, 28, 1)), _labels(rng, batch))
    problem = task.problem()
    info = dict(
        upper_variables=count(problem.upper_vars),
        lower_variables=count(problem.lower_vars),
        batch=batch,
        model="mnist_cnn + per-example importance (59,000)",
    )
    # lr_u = 3 on atanh logits, as the MNIST runner
    return Bench("cnn", problem, model, upper, lower, lambda: PerExampleAdam(3.0), info)


def mlp_widths(scale: float = 1.0) -> Tuple[int, int, int]:
    """Hidden widths (h1, h2, h3) giving about ``scale`` x (3.8M upper, 1.4M lower) variables.

    h1 : h2 is kept at 2048 : 1088 (a wide first layer, as in a feature extractor); h2 solves
    784 h1 + h1 + h1 h2 + h2 = U, then h3 solves (h2 + 1) h3 + 10 (h3 + 1) = L; widths are rounded to 8.
    """
    upper, lower = LARGEST[0] * scale, LARGEST[1] * scale
    r = 2048 / 1088
    h2 = (-(INPUT_DIM + 1) * r - 1 + math.sqrt(((INPUT_DIM + 1) * r + 1) ** 2 + 4 * r * upper)) / (2 * r)
    h1 = r * h2
    h3 = (lower - CLASSES) / (h2 + 1 + CLASSES)
    return tuple(max(8, int(round(h / 8)) * 8) for h in (h1, h2, h3))  # type: ignore[return-value]


def mlp(scale: float = 1.0, batch: int = 128, seed: int = 0) -> Bench:
    """(b) the split MLP: representation (upper) + head (lower), see the module docstring."""
    keras.utils.set_random_seed(seed)
    h1, h2, h3 = mlp_widths(scale)
    body = keras.Sequential(
        [
            keras.Input((INPUT_DIM,)),
            keras.layers.Dense(h1, activation="relu"),
            keras.layers.Dense(h2, activation="relu"),
        ],
        name="representation",
    )
    head = keras.Sequential(
        [keras.Input((h2,)), keras.layers.Dense(h3, activation="relu"), keras.layers.Dense(CLASSES)], name="head"
    )
    inputs = keras.Input((INPUT_DIM,))
    model = keras.Model(inputs, head(body(inputs)), name="split_mlp")
    kernels = [layer.kernel for layer in head.layers]

    def lower_loss(batch):
        x, y = batch
        decay = tf.add_n([tf.reduce_sum(tf.square(k)) for k in kernels])
        return _CE(y, head(body(x, training=False), training=False)) + 0.5e-4 * decay

    def upper_loss(batch):
        x, y = batch
        return _CE(y, head(body(x, training=False), training=False))

    problem = bl.BilevelProblem(upper_loss, lower_loss, body.trainable_variables, head.trainable_variables)
    rng = np.random.default_rng(seed)
    lower = (_images(rng, batch, (INPUT_DIM,)), _labels(rng, batch))
    upper = (_images(rng, batch, (INPUT_DIM,)), _labels(rng, batch))
    info = dict(
        upper_variables=count(problem.upper_vars),
        lower_variables=count(problem.lower_vars),
        batch=batch,
        scale=scale,
        model=f"784-{h1}-{h2} (upper) | {h2}-{h3}-10 (lower)",
    )
    return Bench(f"mlp@{scale:g}", problem, model, upper, lower, lambda: keras.optimizers.Adam(1e-4), info)


def importance_mlp(hidden: Tuple[int, ...], input_dim: int, batch: int, seed: int = 0) -> Bench:
    """An importance-learning problem on ``mlp(input_dim, hidden, 'relu')``: the Penalty inner-step target's
    setting (784-1024-1024-10 at batch 512 is compute-bound on a CPU; 64-32-10 at batch 32 is overhead-bound)."""
    keras.utils.set_random_seed(seed)
    model = models.mlp(input_dim, hidden, "relu", CLASSES)
    task = ImportanceLearning(model, np.zeros(MNIST_TRAIN, np.float32), training=False)
    rng = np.random.default_rng(seed)
    idx = tf.constant(rng.choice(MNIST_TRAIN, batch, replace=False))
    lower = (idx, _images(rng, batch, (input_dim,)), _labels(rng, batch))
    upper = (_images(rng, batch, (input_dim,)), _labels(rng, batch))
    problem = task.problem()
    name = "-".join(str(n) for n in (input_dim, *hidden, CLASSES))
    info = dict(
        upper_variables=count(problem.upper_vars),
        lower_variables=count(problem.lower_vars),
        batch=batch,
        model=f"mlp {name} + per-example importance",
    )
    return Bench(f"mlp {name} b{batch}", problem, model, upper, lower, lambda: PerExampleAdam(3.0), info)


def build(name: str, scale: float = 1.0, batch: int = 128) -> Bench:
    if name == "cnn":
        return cnn(batch)
    if name == "mlp":
        return mlp(scale, batch)
    if name == "inner-compute":
        return importance_mlp((1024, 1024), INPUT_DIM, batch)
    if name == "inner-small":
        return importance_mlp((32,), 64, batch)
    raise ValueError(f"unknown benchmark problem {name!r}")


def solver_options(
    bench: Bench, method: str, inner_steps: int, jit_compile: bool = False, hvp: Optional[str] = None
) -> Dict[str, Any]:
    """``bl.make_solver``'s options for ``method`` on ``bench``: the table's, T, the compile options and the
    bench's upper optimizer (a fresh one)."""
    return dict(
        SOLVER_OPTIONS[method],
        inner_steps=inner_steps,
        jit_compile=jit_compile,
        hvp=hvp,
        upper_optimizer=bench.upper_optimizer(),
    )

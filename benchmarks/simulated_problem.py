"""The benchmark's simulated quadratic (``simulated_quadratic.py``) as a ``bl.BilevelProblem``.

u = x (upper, the benchmark's outer variable), v = z (lower, its inner variable). Both losses take a batch
of sample indices (an int tensor: the mean over those samples' quadratics, as a mini-batch means in the
benchmark) or None (the full batch).

How to write it so that it is fast (measured by ``python benchmarks/simulated.py --timing``):

- **Full batch: the averaged matrices.** The mean of quadratics is one quadratic: precompute
  A = 1/n sum_i A_i once and evaluate 1/2 z'Az + ... with d^2 multiply-adds per term. A direct transcription,
  ``tf.reduce_mean(0.5 * tf.einsum("nij,i,j->n", A_all, z, z) + ...)`` over the n = 1024 per-sample d x d
  matrices, costs n d^2 per term and reads n d^2 x 8 bytes = 80 MB per matrix (float64, d = 100) on every
  loss, gradient and Hessian-vector product: a Penalty step with T = 20 costs about 25 loss-and-gradient
  evaluations, gigabytes of memory traffic per upper iteration (1.5 s here, against 1.5 ms averaged).
- **Mini-batches: gather rows of factors, not matrices.** Each per-sample matrix of this problem is rank one
  (A_i = s_i s_i'), so a batch needs ``tf.gather`` of b rows of length d and costs b d per term
  (1/2 mean (s_i'z)^2). Gathering b dense d x d matrices costs b d^2 (and copies them) every call.
- When per-sample matrices are not low rank, gather them for a batch but still use the precomputed average
  for the full batch: only the full batch pays n d^2.

``per_sample="dense"`` builds the per-sample-matrix form and ``full_batch="per_sample"`` makes the full batch
use it too (the slow transcription), for measuring; the defaults are the fast forms.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

import bilevel_tf as bl
from simulated_quadratic import SampleSet, SimulatedQuadratic

PER_SAMPLE_FORMS = ("factored", "dense")
FULL_BATCH_FORMS = ("averaged", "per_sample")


def _quadratic_form(matrix: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    return tf.tensordot(x, tf.linalg.matvec(matrix, x), 1)


def averaged_loss(c: Dict[str, tf.Tensor], x: tf.Tensor, z: tf.Tensor) -> tf.Tensor:
    """1/2 z'Az + 1/2 x'Bx + x'Cz + a'z + b'x with the averaged matrices: d^2 work per term."""
    return (
        0.5 * _quadratic_form(c["zz"], z)
        + 0.5 * _quadratic_form(c["xx"], x)
        + tf.tensordot(x, tf.linalg.matvec(c["cross"], z), 1)
        + tf.tensordot(c["lin_z"], z, 1)
        + tf.tensordot(c["lin_x"], x, 1)
    )


def _take(tensor: tf.Tensor, batch: Optional[tf.Tensor]) -> tf.Tensor:
    return tensor if batch is None else tf.gather(tensor, batch)


def factored_losses(c: Dict[str, tf.Tensor], x: tf.Tensor, z: tf.Tensor, batch: Optional[tf.Tensor]) -> tf.Tensor:
    """Per sample of ``batch``: 1/2 (s_i'z)^2 + 1/2 (t_i'x)^2 + (p_i'x)(q_i'z) + a_i'z + b_i'x: b d per term."""

    def dot(name, vector):
        return tf.linalg.matvec(_take(c[name], batch), vector)

    return (
        0.5 * tf.square(dot("zz", z))
        + 0.5 * tf.square(dot("xx", x))
        + dot("cross_x", x) * dot("cross_z", z)
        + dot("lin_z", z)
        + dot("lin_x", x)
    )


def dense_losses(c: Dict[str, tf.Tensor], x: tf.Tensor, z: tf.Tensor, batch: Optional[tf.Tensor]) -> tf.Tensor:
    """The same per-sample losses written with the per-sample d x d matrices (gathered): b d^2 per term."""

    def form(name, left, right):
        return tf.reduce_sum(tf.linalg.matvec(_take(c[name], batch), right) * left, axis=-1)

    return (
        0.5 * form("zz", z, z)
        + 0.5 * form("xx", x, x)
        + form("cross", x, z)
        + tf.linalg.matvec(_take(c["lin_z"], batch), z)
        + tf.linalg.matvec(_take(c["lin_x"], batch), x)
    )


def factored_loss(c: Dict[str, tf.Tensor], x: tf.Tensor, z: tf.Tensor, batch: Optional[tf.Tensor]) -> tf.Tensor:
    """The mean of :func:`factored_losses` over ``batch``."""
    return tf.reduce_mean(factored_losses(c, x, z, batch))


def dense_loss(c: Dict[str, tf.Tensor], x: tf.Tensor, z: tf.Tensor, batch: Optional[tf.Tensor]) -> tf.Tensor:
    """The mean of :func:`dense_losses` over ``batch``."""
    return tf.reduce_mean(dense_losses(c, x, z, batch))


class _Level:
    """One level's constants in TensorFlow and its loss of (x, z, batch)."""

    def __init__(self, samples: SampleSet, per_sample: str, full_batch: str, dtype: tf.DType):
        def constants(arrays):
            return {k: tf.constant(v, dtype) for k, v in arrays.items()}

        self.average = constants(samples.averaged())
        self.per_sample = per_sample
        self.full_batch = full_batch
        self.samples = constants(dataclasses.asdict(samples) if per_sample == "factored" else samples.dense())
        self.size = samples.size

    def losses(self, x: tf.Tensor, z: tf.Tensor, batch: Optional[tf.Tensor]) -> tf.Tensor:
        """One loss per sample of ``batch`` (every sample for None), in the per-sample form."""
        per_sample = factored_losses if self.per_sample == "factored" else dense_losses
        return per_sample(self.samples, x, z, batch)

    def loss(self, x: tf.Tensor, z: tf.Tensor, batch: Optional[tf.Tensor]) -> tf.Tensor:
        if batch is None and self.full_batch == "averaged":
            return averaged_loss(self.average, x, z)
        per_sample = factored_loss if self.per_sample == "factored" else dense_loss
        return per_sample(self.samples, x, z, batch)


class SimulatedProblem:
    """Variables x (upper) and z (lower) at the benchmark's start, the two losses and the closed form.

    Args:
        data: the generated problem (:class:`~simulated_quadratic.SimulatedQuadratic`).
        per_sample: ``"factored"`` (rank-one factors, the fast form) or ``"dense"`` (per-sample matrices).
        full_batch: ``"averaged"`` (precomputed mean matrices, the fast form) or ``"per_sample"`` (the mean
            over all per-sample quadratics in the ``per_sample`` form).
        dtype: ``"float64"`` or ``"float32"``.
    """

    def __init__(
        self,
        data: SimulatedQuadratic,
        per_sample: str = "factored",
        full_batch: str = "averaged",
        dtype: str = "float64",
    ):
        for name, value, choices in (
            ("per_sample", per_sample, PER_SAMPLE_FORMS),
            ("full_batch", full_batch, FULL_BATCH_FORMS),
            ("dtype", dtype, ("float64", "float32")),
        ):
            if value not in choices:
                raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
        self.data = data
        self.dtype = tf.as_dtype(dtype)
        self.lower = _Level(data.inner, per_sample, full_batch, self.dtype)
        self.upper = _Level(data.outer, per_sample, full_batch, self.dtype)
        self.x = tf.Variable(data.x0, dtype=self.dtype, name="x_outer")
        self.z = tf.Variable(data.z0, dtype=self.dtype, name="z_inner")

    def upper_loss(self, batch: Optional[tf.Tensor] = None) -> tf.Tensor:
        return self.upper.loss(self.x, self.z, batch)

    def lower_loss(self, batch: Optional[tf.Tensor] = None) -> tf.Tensor:
        return self.lower.loss(self.x, self.z, batch)

    def problem(self) -> bl.BilevelProblem:
        return bl.BilevelProblem(self.upper_loss, self.lower_loss, [self.x], [self.z])

    def finite_sum_problem(self) -> bl.BilevelProblem:
        """The same problem with ``bl.FiniteSum`` losses (batches: index vectors), for SABA's per-sample memory.
        The full batch is then the mean of the n per-sample losses (n d per term, not the averaged d^2)."""

        def finite_sum(level: _Level) -> bl.FiniteSum:
            return bl.FiniteSum(lambda batch: level.losses(self.x, self.z, batch), level.size, indices=lambda b: b)

        return bl.BilevelProblem(finite_sum(self.upper), finite_sum(self.lower), [self.x], [self.z])

    def reset(self) -> None:
        """Back to the benchmark's start x0 = -2, z0 = 0."""
        self.x.assign(tf.constant(self.data.x0, self.dtype))
        self.z.assign(tf.constant(self.data.z0, self.dtype))

    def relative_suboptimality(self) -> float:
        """(h(x) - h*) / (h(x0) - h*) at the current x (closed form, float64)."""
        return self.data.relative_suboptimality(self.x.numpy().astype(np.float64))


class BlockSampler:
    """Mini-batches as the benchmark draws them: the samples cut into contiguous blocks of ``batch_size``
    (the last one shorter if it does not divide), visited in a new random order every epoch."""

    def __init__(self, n_samples: int, batch_size: int, seed: int):
        if not 1 <= batch_size <= n_samples:
            raise ValueError(f"batch_size must be in [1, {n_samples}], got {batch_size!r}")
        if n_samples % batch_size:
            raise ValueError(
                f"batch_size must divide the number of samples ({n_samples}) so that every "
                f"batch has the same shape, got {batch_size}"
            )
        self.blocks = np.arange(n_samples, dtype=np.int32).reshape(-1, batch_size)
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(self.blocks))
        self.position = 0

    def take(self, count: int) -> np.ndarray:
        """The next ``count`` batches, shape (count, batch_size)."""
        out = []
        for _ in range(count):
            if self.position == len(self.order):
                self.order, self.position = self.rng.permutation(len(self.blocks)), 0
            out.append(self.blocks[self.order[self.position]])
            self.position += 1
        return np.stack(out)

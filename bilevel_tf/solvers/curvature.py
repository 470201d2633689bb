"""Curvature estimates from Hessian-vector products: the extreme eigenvalues of a symmetric operator by the
Lanczos process (no Hessian is formed; memory: three vectors shaped like the variables)."""

from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

import tensorflow as tf

from ..core import distribute
from ..core import tensor_ops as ops

Vectors = List[tf.Tensor]
#: a Lanczos step stops once the new direction's norm falls below this fraction of the operator's scale
#: (the Krylov space is exhausted, e.g. fewer variables than steps)
BREAKDOWN = 1e-5


def _scale(x: Sequence[tf.Tensor], c) -> Vectors:
    return [xi * tf.cast(c, xi.dtype) for xi in x]


def lanczos_extremes(
    matvec: Callable[[Vectors], Vectors], start: Sequence[tf.Tensor], steps: int
) -> Tuple[tf.Tensor, tf.Tensor]:
    """(smallest, largest) Ritz value of ``steps`` Lanczos steps of the operator ``matvec`` from ``start``.

    The Ritz values bracket the spectrum from inside and approach its ends fastest: the largest converges in
    a few steps, the smallest approximates the low end of the spectrum *as seen from* ``start`` (components
    of ``start`` along eigenvectors it does not touch are missed, which is what a solve with that right-hand
    side needs). Without reorthogonalization (three vectors of memory), so repeated Ritz values may appear;
    the extremes are unaffected. Runs as a graph loop (unrolled under a multi-replica strategy); stops early
    when the Krylov space is exhausted.
    """
    tridiagonal, _ = _lanczos(matvec, start, steps)
    ritz = tf.linalg.eigvalsh(tridiagonal)
    return ritz[0], ritz[-1]


def lanczos_bounds(
    matvec: Callable[[Vectors], Vectors], start: Sequence[tf.Tensor], steps: int
) -> Tuple[tf.Tensor, tf.Tensor]:
    """(smallest Ritz value, largest Ritz value + its residual) of ``steps`` Lanczos steps (see
    :func:`lanczos_extremes`). The residual ||A y - theta y|| = beta_m |s_m| of the top Ritz pair bounds its
    distance to an eigenvalue, so the second number errs high while the top Ritz value has not converged: the
    safe side for a step size c / L. Exact (residual 0) once the Krylov space is exhausted."""
    tridiagonal, beta_last = _lanczos(matvec, start, steps)
    ritz, vectors = tf.linalg.eigh(tridiagonal)
    return ritz[0], ritz[-1] + beta_last * tf.abs(vectors[-1, -1])


def _lanczos(matvec: Callable[[Vectors], Vectors], start: Sequence[tf.Tensor], steps: int):
    """The tridiagonal matrix of the Lanczos process and the norm of its last (unused) residual vector."""
    start = [ops.dense(x) for x in start]
    dtype = start[0].dtype
    q = _scale(start, 1.0 / tf.sqrt(ops.sq_norm(start)))
    q_prev = [tf.zeros_like(x) for x in q]
    alphas = tf.TensorArray(dtype, size=steps)
    betas = tf.TensorArray(dtype, size=steps)
    beta_prev = tf.zeros([], dtype)
    size = tf.constant(0)
    scale = tf.zeros([], dtype)
    alive = tf.constant(True)
    for i in distribute.loop_range(steps):  # unrolled under a strategy (no sync inside graph loops)
        z = [ops.dense(x) for x in matvec(q)]
        alpha = tf.cast(ops.inner(z, q), dtype)
        z = [zi - alpha * qi - beta_prev * pi for zi, qi, pi in zip(z, q, q_prev)]
        beta = tf.sqrt(tf.cast(ops.sq_norm(z), dtype))
        alphas = alphas.write(i, alpha)
        betas = betas.write(i, beta)
        size += tf.cast(alive, tf.int32)
        scale = tf.maximum(scale, tf.abs(alpha) + beta_prev)
        alive = alive & (beta > BREAKDOWN * scale)
        safe = tf.where(alive, beta, tf.ones_like(beta))
        q_prev, q = q, [tf.where(alive, zi / safe, tf.zeros_like(zi)) for zi in z]
        beta_prev = tf.where(alive, beta, tf.zeros_like(beta))
    diagonal = alphas.stack()[:size]
    all_betas = betas.stack()
    off = all_betas[: size - 1]
    tridiagonal = tf.linalg.diag(diagonal) + tf.linalg.diag(off, k=1) + tf.linalg.diag(off, k=-1)
    return tridiagonal, all_betas[size - 1]

"""How the Penalty method scales its penalty to a problem: rho, lam and the lower step's scale from curvature
probes (Hessian-vector products at the first iteration, or on several batches by ``Penalty.calibrate``; see
``Penalty``'s schedules).

Each probe takes a sequence of batches per level and measures the curvature of the mean loss over them: with
mini-batches, one batch's Hessian misses directions the others have (a batch of 64 samples has rank <= 64), so a
probe on one batch sees flat directions the data set does not have and takes too large a rho.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence

import tensorflow as tf

from ..core import autodiff
from ..core import tensor_ops as ops
from ..core.problem import BilevelProblem
from .curvature import lanczos_extremes

#: "curvature": lam_0 = LAM_FRACTION x f's curvature / g's curvature along grad_v f
LAM_FRACTION = 0.1
#: "spectral": rho = RHO_SHARE s / (h_lo h_hi) and lam = s / h_hi (s: f's top curvature in v; h_lo, h_hi: g's)
RHO_SHARE = 0.3
#: Lanczos steps for g's spectrum (f's top curvature takes half as many)
LANCZOS_STEPS = 20
#: the spectral calibration treats g's curvature as at least h_hi / MAX_CONDITION (nearly flat directions
#: would otherwise make rho unbounded)
MAX_CONDITION = 1e2


def _mean(per_batch: List[List[tf.Tensor]]) -> List[tf.Tensor]:
    """The mean over batches of per-batch lists of tensors (one batch: its list, unchanged)."""
    if len(per_batch) == 1:
        return per_batch[0]
    return [tf.add_n(list(parts)) / len(per_batch) for parts in zip(*per_batch)]


def mean_hvp(
    loss: Callable[[Any], tf.Tensor], batches: Sequence[Any], variables: Sequence, vector: Sequence
) -> List[tf.Tensor]:
    """The Hessian-vector product of the mean of ``loss(batch)`` over ``batches`` (one product per batch)."""
    return _mean([autodiff.loss_hvp(lambda b=batch: loss(b), variables, vector) for batch in batches])


def mean_upper_grad(problem: BilevelProblem, upper_batches: Sequence[Any], variables: Sequence) -> List[tf.Tensor]:
    """grad_v f of the mean of f over ``upper_batches``, dense."""
    grads = [autodiff.upper_value_and_grad(problem, batch, variables)[1] for batch in upper_batches]
    return _mean([[ops.dense(x) for x in g] for g in grads])


def _positive(value: tf.Tensor, fallback: tf.Tensor) -> tf.Tensor:
    return tf.where(tf.math.is_finite(value) & (value > 0), value, fallback)


def curvature_probe(
    problem: BilevelProblem, upper_batches: Sequence[Any], lower_batches: Sequence[Any], dtype
) -> Dict[str, tf.Tensor]:
    """rho = ||H_f w|| / ||H_g H_g w||, lam = LAM_FRACTION ||H_f w|| / ||H_g w|| with w = grad_v f (three
    products): the penalty's curvature equals f's along w, lam a tenth of it. Invalid values become 1."""
    lower = problem.lower_vars
    w = mean_upper_grad(problem, upper_batches, lower)
    hf = mean_hvp(problem.f, upper_batches, lower, w)
    hg = mean_hvp(problem.g, lower_batches, lower, w)
    hgg = mean_hvp(problem.g, lower_batches, lower, hg)
    curv_f, curv_g, curv_gg = (tf.cast(tf.sqrt(ops.sq_norm(x)), dtype) for x in (hf, hg, hgg))
    one = tf.ones([], dtype)
    return dict(rho=_positive(curv_f / curv_gg, one), lam=_positive(LAM_FRACTION * curv_f / curv_g, one))


def spectral_probe(
    problem: BilevelProblem, upper_batches: Sequence[Any], lower_batches: Sequence[Any], dtype
) -> Dict[str, tf.Tensor]:
    """g's curvature range [h_lo, h_hi] as seen from w = grad_v f (Lanczos) and f's top curvature s in v:
    rho = RHO_SHARE s / (h_lo h_hi), lam = s / h_hi, and ``lower_scale`` = h_hi / (s + lam h_hi + rho h_hi^2),
    the factor that gives the lower objective h_l the top curvature of g (so a learning rate chosen for g
    suits it). With this rho the multiplier converges at about RHO_SHARE h / h_hi per step along curvature h,
    while h_l stays as well conditioned as g (its curvature s + lam h + rho h^2 spans [s, RHO_SHARE s h_hi/h_lo]).
    h_lo is floored at h_hi / MAX_CONDITION; where g has clearly negative curvature along the probe (below
    -h_hi / MAX_CONDITION), rho = s / h_hi^2."""
    lower = problem.lower_vars
    w = mean_upper_grad(problem, upper_batches, lower)
    norm = tf.sqrt(ops.sq_norm(w))
    # v already minimizes f: probe from a fixed pseudo-random direction instead
    w = [tf.where(norm > 0, x, tf.random.stateless_normal(tf.shape(x), [7, 11], dtype=x.dtype)) for x in w]

    def g_products(x):
        return mean_hvp(problem.g, lower_batches, lower, x)

    def f_products(x):
        return mean_hvp(problem.f, upper_batches, lower, x)

    h_lo, h_hi = (tf.cast(x, dtype) for x in lanczos_extremes(g_products, w, LANCZOS_STEPS))
    _, s = lanczos_extremes(f_products, w, LANCZOS_STEPS // 2)
    one = tf.ones([], dtype)
    h_hi = _positive(h_hi, one)
    s = _positive(tf.cast(s, dtype), h_hi)  # f flat in v: nothing to balance, take g's scale
    # g not convex along the probe (a network: a Ritz value below -h_hi / MAX_CONDITION; rounding around a
    # flat direction stays above it): the multiplier cannot settle along those directions, so only the top of
    # the spectrum is balanced, rho h_hi^2 = s (the floor instead gave a 30x larger rho, and the MLP importance
    # weights of tests/test_importance_default.py ranked flipped labels at chance: 0.62 against 0.90)
    floor = h_hi / MAX_CONDITION
    h_lo = tf.where(h_lo >= -floor, tf.maximum(h_lo, floor), RHO_SHARE * h_hi)
    return dict(rho=RHO_SHARE * s / (h_lo * h_hi), lam=s / h_hi, s=s, h_hi=h_hi)


def lower_scale(probe: Dict[str, tf.Tensor], rho: tf.Tensor, lam: tf.Tensor) -> tf.Tensor:
    """h_hi / (s + lam h_hi + rho h_hi^2): h_l's top curvature brought to g's."""
    s, h_hi = probe["s"], probe["h_hi"]
    return h_hi / (s + lam * h_hi + rho * h_hi * h_hi)


PROBES = {"curvature": curvature_probe, "spectral": spectral_probe}

"""Strongly convex quadratic bilevel problems with closed-form solutions.

    g(u, v) = 1/2 v'Hv - v'(Mu + m)            ->  v*(u) = H^-1 (Mu + m) = Ju + j
    f(u, v) = 1/2 ||v - d||^2 + alpha/2 ||u - e||^2
    F(u)    = f(u, v*(u))                      ->  u* = (J'J + alpha I)^-1 (J'(d - j) + alpha e)

Three generators of (H, M, m, d, e, alpha):

- :func:`random_quadratic_data`: the family ``benchmarks/robustness.py`` runs: sizes 2-100, g's condition
  number 1-100 with its curvatures inside [0.5, 50], weak or strong coupling (||dv*/du|| small with a
  dominant direct term, or large with a small one), RMS(u*) = 1; each unset knob is drawn from the seed.
  The scales are those every optimizer of the robustness grid (learning rates 1e-3 to 3e-2) handles with the
  exact hypergradient, so a failure there is the bilevel solver's.
- :func:`least_squares_data`: g = 1/2 ||Av - Bu - c||^2 + mu/2 ||v||^2 with Gaussian A, B, c, d, e, i.e.
  H = A'A + mu I, M = A'B, m = A'c (the -1/2 ||Bu + c||^2 left out of g has no v in it).
- :func:`conditioned_data`: H with eigenvalues spread geometrically over [1/cond, 1] and J = H^-1 M with
  singular values in [0.5, 2]; scaled so that ||u*|| = 1.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
from numpy.typing import ArrayLike, DTypeLike

from .base import ToyBilevel

#: the coupling levels of :func:`random_quadratic_data`: singular values of J = dv*/du and alpha
COUPLINGS = {"weak": (0.05, 0.3, 1.0), "strong": (0.5, 3.0, 0.5)}
#: where g's curvatures lie in :func:`random_quadratic_data`
CURVATURE_RANGE = (0.5, 50.0)
#: (H, M, m, d, e, alpha), what the ``*_data`` functions return and :class:`QuadraticBilevel` takes
QuadraticData = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]


class QuadraticBilevel(ToyBilevel):
    """The problem above for given H (symmetric positive definite), M, m, d, e, alpha."""

    def __init__(
        self,
        H: np.ndarray,
        M: np.ndarray,
        m: np.ndarray,
        d: np.ndarray,
        e: np.ndarray,
        alpha: float,
        dtype: DTypeLike = np.float32,
    ):
        n_v, n_u = np.shape(M)
        super().__init__(_as_data(H, M, m, d, e, alpha), n_u, n_v, dtype)

    @classmethod
    def from_data(cls, data: Dict[str, Any], dtype: DTypeLike = np.float32) -> "QuadraticBilevel":
        return cls(data["H"], data["M"], data["m"], data["d"], data["e"], data["alpha"], dtype=dtype)

    def assign(
        self,
        H: ArrayLike,
        M: ArrayLike,
        m: ArrayLike,
        d: ArrayLike,
        e: ArrayLike,
        alpha: Optional[float] = None,
        u0: Optional[np.ndarray] = None,
        v0: Optional[np.ndarray] = None,
    ) -> None:
        """Load new data (same sizes; alpha unchanged unless given) and reset u, v (to zeros unless given)."""
        self.load(_as_data(H, M, m, d, e, self.alpha if alpha is None else alpha), u0, v0)

    def _derive(self) -> None:
        H, M, m = (self.np[k] for k in ("H", "M", "m"))
        self.H, self.M, self.m = H, M, m
        self.d, self.e, self.alpha = self.np["d"], self.np["e"], float(self.np["alpha"])
        self.J = np.linalg.solve(H, M)
        self.j = np.linalg.solve(H, m)

    def _solve(self) -> Tuple[np.ndarray, float]:
        J, a = self.J, self.alpha
        u_star = np.linalg.solve(J.T @ J + a * np.eye(self.n_u), J.T @ (self.d - self.j) + a * self.e)
        return u_star, self.value(u_star)

    @property
    def v_star(self) -> np.ndarray:
        return self.J @ self.u_star + self.j

    @property
    def condition_number(self) -> float:
        eig = np.linalg.eigvalsh(self.H)
        return float(eig[-1] / eig[0])

    def lower_loss(self, batch: Any = None) -> tf.Tensor:
        H, M, m, v = self.data("H"), self.data("M"), self.data("m"), self.v
        return 0.5 * tf.tensordot(v, tf.linalg.matvec(H, v), 1) - tf.tensordot(v, tf.linalg.matvec(M, self.u) + m, 1)

    def upper_loss(self, batch: Any = None) -> tf.Tensor:
        return 0.5 * tf.reduce_sum(tf.square(self.v - self.data("d"))) + 0.5 * self.data("alpha") * tf.reduce_sum(
            tf.square(self.u - self.data("e"))
        )

    def value(self, u: np.ndarray) -> float:
        v = self.J @ u + self.j
        return float(0.5 * np.sum((v - self.d) ** 2) + 0.5 * self.alpha * np.sum((u - self.e) ** 2))

    def hypergradient(self, u: np.ndarray) -> np.ndarray:
        """The exact grad F(u)."""
        return self.J.T @ (self.J @ u + self.j - self.d) + self.alpha * (u - self.e)


def _as_data(
    H: ArrayLike, M: ArrayLike, m: ArrayLike, d: ArrayLike, e: ArrayLike, alpha: float
) -> Dict[str, np.ndarray]:
    return dict(
        H=np.asarray(H),
        M=np.asarray(M),
        m=np.asarray(m),
        d=np.asarray(d),
        e=np.asarray(e),
        alpha=np.asarray(alpha, np.float64),
    )


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _orthonormal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(rows, cols)))
    return q


def random_quadratic_data(
    seed: int,
    n_u: Optional[int] = None,
    n_v: Optional[int] = None,
    cond: Optional[float] = None,
    coupling: Optional[str] = None,
) -> QuadraticData:
    """(H, M, m, d, e, alpha) of one instance of the robustness family; unset knobs are drawn from ``seed``:
    n_u, n_v log-uniform in [2, 100], cond log-uniform in [1, 100], coupling "weak" or "strong" (see
    :data:`COUPLINGS`). g's curvatures span [h, cond h] with h log-uniform such that they lie in
    :data:`CURVATURE_RANGE`; u* is scaled to RMS 1."""
    rng = np.random.default_rng(seed)
    n_u = n_u or int(round(_log_uniform(rng, 2, 100)))
    n_v = n_v or int(round(_log_uniform(rng, 2, 100)))
    cond = cond or _log_uniform(rng, 1, 100)
    coupling = coupling or ("weak", "strong")[int(rng.integers(2))]
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {sorted(COUPLINGS)}, got {coupling!r}")
    low, high = CURVATURE_RANGE
    if not 1 <= cond <= high / low:
        raise ValueError(f"cond must be in [1, {high / low:g}], got {cond}")
    h_min = _log_uniform(rng, low, high / cond)
    Q = _orthonormal(rng, n_v, n_v)
    H = Q @ np.diag(np.geomspace(h_min, h_min * cond, n_v)) @ Q.T
    s_low, s_high, alpha = COUPLINGS[coupling]
    k = min(n_u, n_v)
    J = _orthonormal(rng, n_v, k) @ np.diag(np.geomspace(s_low, s_high, k)) @ _orthonormal(rng, n_u, k).T
    m, d, e = 0.3 * rng.normal(size=n_v), rng.normal(size=n_v), 0.3 * rng.normal(size=n_u)
    j = np.linalg.solve(H, m)
    u_star = np.linalg.solve(J.T @ J + alpha * np.eye(n_u), J.T @ (d - j) + alpha * e)
    scale = np.sqrt(n_u) / np.linalg.norm(u_star)  # the solution is linear in (m, d, e)
    return H, H @ J, m * scale, d * scale, e * scale, alpha


def least_squares_data(
    n_u: int = 4, n_v: int = 6, mu: float = 0.1, alpha: float = 0.1, seed: int = 0, rows: Optional[int] = None
) -> QuadraticData:
    """(H, M, m, d, e, alpha) of g = 1/2 ||Av - Bu - c||^2 + mu/2 ||v||^2, Gaussian A (rows x n_v) and B
    scaled by 1/sqrt(rows), c, d, e standard normal."""
    rng = np.random.default_rng(seed)
    rows = rows or n_v
    A = rng.normal(size=(rows, n_v)) / np.sqrt(rows)
    B = rng.normal(size=(rows, n_u)) / np.sqrt(rows)
    c, d, e = rng.normal(size=rows), rng.normal(size=n_v), rng.normal(size=n_u)
    return A.T @ A + mu * np.eye(n_v), A.T @ B, A.T @ c, d, e, alpha


def conditioned_data(
    n_u: int = 4, n_v: int = 6, cond: float = 10.0, alpha: float = 0.1, seed: int = 0
) -> QuadraticData:
    """(H, M, m, d, e, alpha) with eig(H) = geomspace(1/cond, 1), sing(H^-1 M) = geomspace(0.5, 2), ||u*|| = 1."""
    if n_u > n_v:
        raise ValueError(f"conditioned_data needs n_u <= n_v, got {n_u} > {n_v}")
    rng = np.random.default_rng(seed)
    Q = _orthonormal(rng, n_v, n_v)
    H = Q @ np.diag(np.geomspace(1.0 / cond, 1.0, n_v)) @ Q.T
    J = _orthonormal(rng, n_v, n_u) @ np.diag(np.geomspace(0.5, 2.0, n_u)) @ _orthonormal(rng, n_u, n_u).T
    m = 0.3 * rng.normal(size=n_v)
    d, e = rng.normal(size=n_v), 0.3 * rng.normal(size=n_u)
    j = np.linalg.solve(H, m)
    u_star = np.linalg.solve(J.T @ J + alpha * np.eye(n_u), J.T @ (d - j) + alpha * e)
    scale = 1.0 / np.linalg.norm(u_star)  # the solution is linear in (m, d, e)
    return H, H @ J, m * scale, d * scale, e * scale, alpha


def random_quadratic(seed: int, dtype: DTypeLike = np.float32, **knobs: Any) -> QuadraticBilevel:
    return QuadraticBilevel(*random_quadratic_data(seed, **knobs), dtype=dtype)


def least_squares_quadratic(*args: Any, dtype: DTypeLike = np.float32, **kwargs: Any) -> QuadraticBilevel:
    return QuadraticBilevel(*least_squares_data(*args, **kwargs), dtype=dtype)


def conditioned_quadratic(*args: Any, dtype: DTypeLike = np.float32, **kwargs: Any) -> QuadraticBilevel:
    return QuadraticBilevel(*conditioned_data(*args, **kwargs), dtype=dtype)

"""Strongly convex quadratic bilevel problems with closed-form solutions, for checking a solver.

    g(u, v) = 1/2 v'Hv - v'(Mu + m)            ->  v*(u) = H^-1 (Mu + m) = Ju + j
    f(u, v) = 1/2 ||v - d||^2 + alpha/2 ||u - e||^2
    F(u)    = f(u, v*(u))                      ->  u* = (J'J + alpha I)^-1 (J'(d - j) + alpha e)

Two random families (``benchmarks/robustness.py`` runs both):

- :func:`least_squares_quadratic`: g = 1/2 ||Av - Bu - c||^2 + mu/2 ||v||^2 with Gaussian A, B, c, d, e,
  i.e. H = A'A + mu I, M = A'B, m = A'c (the -1/2 ||Bu + c||^2 left out of g has no v in it, so neither
  v*(u) nor any solver's direction changes). The conditioning of g follows from A and mu.
- :func:`conditioned_quadratic`: H with eigenvalues spread geometrically over [1/cond, 1] and J = H^-1 M
  with singular values in [0.5, 2], so g's condition number is ``cond`` while F stays well conditioned
  (the difficulty is the lower level's, not the upper one's); scaled so that ||u*|| = 1.

The problem's data live in ``tf.Variable`` s: :meth:`QuadraticBilevel.assign` loads another problem of the
same sizes into them, so one compiled solver serves many problems (after ``solver.reset_state()``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from .problem import BilevelProblem


class QuadraticBilevel:
    """The problem above for given H (symmetric positive definite), M, m, d, e, alpha."""

    def __init__(self, H: np.ndarray, M: np.ndarray, m: np.ndarray, d: np.ndarray, e: np.ndarray,
                 alpha: float, dtype=np.float32):
        self.dtype = dtype
        self.n_v, self.n_u = np.shape(M)
        self.alpha = float(alpha)
        self._data = {k: tf.Variable(np.zeros(s, dtype), trainable=False, name=k)
                      for k, s in dict(H=(self.n_v, self.n_v), M=(self.n_v, self.n_u), m=(self.n_v,),
                                       d=(self.n_v,), e=(self.n_u,)).items()}
        self.u = tf.Variable(np.zeros(self.n_u, dtype), name="u")
        self.v = tf.Variable(np.zeros(self.n_v, dtype), name="v")
        self.assign(H, M, m, d, e)

    def assign(self, H, M, m, d, e, u0: Optional[np.ndarray] = None, v0: Optional[np.ndarray] = None) -> None:
        """Load new data (same sizes) and reset u, v (to zeros unless given); recompute the solution."""
        H, M, m, d, e = (np.asarray(x, np.float64) for x in (H, M, m, d, e))
        for key, value in dict(H=H, M=M, m=m, d=d, e=e).items():
            self._data[key].assign(value.astype(self.dtype))
        self.H, self.M, self.m, self.d, self.e = H, M, m, d, e
        self.J = np.linalg.solve(H, M)
        self.j = np.linalg.solve(H, m)
        J, a = self.J, self.alpha
        self.u_star = np.linalg.solve(J.T @ J + a * np.eye(self.n_u), J.T @ (d - self.j) + a * e)
        self.v_star = J @ self.u_star + self.j
        self.u.assign(np.zeros(self.n_u, self.dtype) if u0 is None else np.asarray(u0, self.dtype))
        self.v.assign(np.zeros(self.n_v, self.dtype) if v0 is None else np.asarray(v0, self.dtype))

    @property
    def condition_number(self) -> float:
        eig = np.linalg.eigvalsh(self.H)
        return float(eig[-1] / eig[0])

    def lower_loss(self, batch=None) -> tf.Tensor:
        H, M, m = self._data["H"], self._data["M"], self._data["m"]
        v = self.v
        return 0.5 * tf.tensordot(v, tf.linalg.matvec(H, v), 1) - tf.tensordot(v, tf.linalg.matvec(M, self.u) + m, 1)

    def upper_loss(self, batch=None) -> tf.Tensor:
        return (0.5 * tf.reduce_sum(tf.square(self.v - self._data["d"]))
                + 0.5 * self.alpha * tf.reduce_sum(tf.square(self.u - self._data["e"])))

    def problem(self) -> BilevelProblem:
        return BilevelProblem(self.upper_loss, self.lower_loss, [self.u], [self.v])

    def hypergradient(self, u: np.ndarray) -> np.ndarray:
        """The exact grad F(u)."""
        return self.J.T @ (self.J @ u + self.j - self.d) + self.alpha * (u - self.e)

    def u_error(self) -> float:
        """||u - u*|| / ||u*||."""
        return float(np.linalg.norm(self.u.numpy() - self.u_star) / np.linalg.norm(self.u_star))


def least_squares_data(n_u: int = 4, n_v: int = 6, mu: float = 0.1, alpha: float = 0.1, seed: int = 0,
                       rows: Optional[int] = None):
    """(H, M, m, d, e, alpha) of g = 1/2 ||Av - Bu - c||^2 + mu/2 ||v||^2, Gaussian A (rows x n_v) and B
    scaled by 1/sqrt(rows), c, d, e standard normal."""
    rng = np.random.default_rng(seed)
    rows = rows or n_v
    A = rng.normal(size=(rows, n_v)) / np.sqrt(rows)
    B = rng.normal(size=(rows, n_u)) / np.sqrt(rows)
    c, d, e = rng.normal(size=rows), rng.normal(size=n_v), rng.normal(size=n_u)
    return A.T @ A + mu * np.eye(n_v), A.T @ B, A.T @ c, d, e, alpha


def conditioned_data(n_u: int = 4, n_v: int = 6, cond: float = 10.0, alpha: float = 0.1, seed: int = 0):
    """(H, M, m, d, e, alpha) with eig(H) = geomspace(1/cond, 1), sing(H^-1 M) = geomspace(0.5, 2), ||u*|| = 1."""
    if n_u > n_v:
        raise ValueError(f"conditioned_data needs n_u <= n_v, got {n_u} > {n_v}")
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(n_v, n_v)))
    H = Q @ np.diag(np.geomspace(1.0 / cond, 1.0, n_v)) @ Q.T
    P, _ = np.linalg.qr(rng.normal(size=(n_v, n_u)))
    R, _ = np.linalg.qr(rng.normal(size=(n_u, n_u)))
    J = P @ np.diag(np.geomspace(0.5, 2.0, n_u)) @ R.T
    m = 0.3 * rng.normal(size=n_v)
    d, e = rng.normal(size=n_v), 0.3 * rng.normal(size=n_u)
    j = np.linalg.solve(H, m)
    u_star = np.linalg.solve(J.T @ J + alpha * np.eye(n_u), J.T @ (d - j) + alpha * e)
    scale = 1.0 / np.linalg.norm(u_star)  # the solution is linear in (m, d, e)
    return H, H @ J, m * scale, d * scale, e * scale, alpha


def least_squares_quadratic(*args, dtype=np.float32, **kwargs) -> QuadraticBilevel:
    return QuadraticBilevel(*least_squares_data(*args, **kwargs), dtype=dtype)


def conditioned_quadratic(*args, dtype=np.float32, **kwargs) -> QuadraticBilevel:
    return QuadraticBilevel(*conditioned_data(*args, **kwargs), dtype=dtype)

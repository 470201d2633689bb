"""The simulated quadratic bilevel problem of benchopt's bilevel benchmark, generated in float64 numpy.

Our own generator written from the benchmark's description (github benchopt/benchmark_bilevel, README and
``datasets/simulated.py`` + ``benchmark_utils/gen_matrices.py``, read for the formulas and constants only).
With x the upper (outer) variable in R^dx and z the lower (inner) variable in R^dz::

    g(x, z) = 1/n sum_i g_i,   g_i = 1/2 z'A_i z + 1/2 x'B_i x + x'C_i z + a_i'z + b_i'x     (n = n_samples_inner)
    f(x, z) = 1/m sum_j f_j,   f_j = 1/2 z'F_j z + 1/2 x'H_j x + x'K_j z + f_j'z + h_j'x     (m = n_samples_outer)

The inner and outer sample sets are drawn independently (same recipe, own constants). Every per-sample matrix
is rank one, as in the benchmark: A_i = s_i s_i' with s_i ~ N(0, S), S with eigenvalues geometrically spaced
over [mu, L_inner_*] (random eigenvectors); B_i = t_i t_i' with t_i ~ N(0, T), T with one zero eigenvalue and
the rest geometrically spaced over [mu, L_outer_*]; C_i = (U D xi_i)(V xi_i)' with xi_i ~ N(0, I), U, V random
orthogonal and D's singular values geometrically spaced over [mu, L_cross_*] (so E[C_i] = U D V'); a_i, b_i
standard normal. Since every matrix is rank one, this module stores the factors (s_i, t_i, U D xi_i, V xi_i),
n x d numbers per level instead of n x d^2, and evaluates a mini-batch in O(batch x d) (see
``simulated_problem.py`` for what that buys in TensorFlow).

Closed form (averaged matrices, full batch): z*(x) = J x + j with J = -A^-1 C', j = -A^-1 a, and the value
function h(x) = f(x, z*(x)) = 1/2 x'Qx + q'x + c is quadratic, so x* = -Q^-1 q and
h(x) - h* = 1/2 (x - x*)'Q(x - x*) (computed that way, exactly, down to 1e-16 relative suboptimality).

Defaults are the benchmark dataset's (``simulated``): 1024 inner and 1024 outer samples, dx = dz = 100,
mu = 0.1, every L = 1 except the cross terms (L_cross = 0.1), start x0 = -2 (all entries), z0 = 0 (its
objective's start). The benchmark's published best-parameter run (``config/quadratics_021424_best_params.yml``)
uses another size: 32768 inner / 1024 outer samples, dz = 100, dx = 10 (``SPECS["published"]``).

TensorFlow-free on purpose: the JAX side of ``side_by_side.py`` imports it from another virtualenv.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class SimulatedSpec:
    """The benchmark dataset's parameters (same names). ``L_<variable>_<function>``: largest eigenvalue of the
    mean Hessian block of that variable in that function (``inner`` = g, ``outer`` = f), as its code uses them."""

    n_samples_inner: int = 1024
    n_samples_outer: int = 1024
    dim_inner: int = 100
    dim_outer: int = 100
    mu_inner: float = 0.1
    L_inner_inner: float = 1.0
    L_outer_inner: float = 1.0
    L_cross_inner: float = 0.1
    L_inner_outer: float = 1.0
    L_outer_outer: float = 1.0
    L_cross_outer: float = 0.1
    random_state: int = 2442

    def __post_init__(self):
        for name in ("n_samples_inner", "n_samples_outer", "dim_inner", "dim_outer"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 2:
                raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
        for field in dataclasses.fields(self):
            if field.name.startswith(("L_", "mu")) and not getattr(self, field.name) > 0:
                raise ValueError(f"{field.name} must be positive, got {getattr(self, field.name)!r}")


SPECS: Dict[str, SimulatedSpec] = {
    "benchmark": SimulatedSpec(),
    "published": SimulatedSpec(n_samples_inner=32768, n_samples_outer=1024, dim_inner=100, dim_outer=10),
    "tiny": SimulatedSpec(n_samples_inner=64, n_samples_outer=32, dim_inner=6, dim_outer=4),
}


@dataclasses.dataclass(frozen=True)
class SampleSet:
    """One level's per-sample quadratics in rank-one factors: sample i has zz-block ``zz[i] zz[i]'``, xx-block
    ``xx[i] xx[i]'``, cross block ``cross_x[i] cross_z[i]'`` (x' C z) and linear terms ``lin_z[i]``, ``lin_x[i]``."""

    zz: np.ndarray
    xx: np.ndarray
    cross_x: np.ndarray
    cross_z: np.ndarray
    lin_z: np.ndarray
    lin_x: np.ndarray

    @property
    def size(self) -> int:
        return self.zz.shape[0]

    def averaged(self) -> Dict[str, np.ndarray]:
        """The full-batch quadratic: mean matrices ``zz`` (dz x dz), ``xx`` (dx x dx), ``cross`` (dx x dz) and
        mean vectors ``lin_z``, ``lin_x``."""
        n = self.size
        return dict(
            zz=self.zz.T @ self.zz / n,
            xx=self.xx.T @ self.xx / n,
            cross=self.cross_x.T @ self.cross_z / n,
            lin_z=self.lin_z.mean(0),
            lin_x=self.lin_x.mean(0),
        )

    def dense(self) -> Dict[str, np.ndarray]:
        """The per-sample matrices written out (n x d x d each): what a direct transcription of the formulas
        stores. For measuring that form only; :meth:`averaged` and the factors are what to compute with."""
        return dict(
            zz=np.einsum("ni,nj->nij", self.zz, self.zz),
            xx=np.einsum("ni,nj->nij", self.xx, self.xx),
            cross=np.einsum("ni,nj->nij", self.cross_x, self.cross_z),
            lin_z=self.lin_z,
            lin_x=self.lin_x,
        )

    def value(self, x: np.ndarray, z: np.ndarray, batch: Optional[np.ndarray] = None) -> float:
        """Mean of the per-sample quadratics over ``batch`` (indices; None = all), in numpy (for checks)."""
        idx = slice(None) if batch is None else np.asarray(batch)
        sz, tx = self.zz[idx] @ z, self.xx[idx] @ x
        cross = (self.cross_x[idx] @ x) * (self.cross_z[idx] @ z)
        return float(np.mean(0.5 * sz**2 + 0.5 * tx**2 + cross + self.lin_z[idx] @ z + self.lin_x[idx] @ x))


def _orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    """A Haar-random orthogonal d x d matrix (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _gaussian_rows(rng: np.random.Generator, n: int, eigenvalues: np.ndarray) -> np.ndarray:
    """n rows s_i ~ N(0, S), S = U diag(eigenvalues) U' with random U, so mean(s_i s_i') -> S."""
    u = _orthogonal(rng, eigenvalues.size)
    root = (u * np.sqrt(eigenvalues)) @ u.T
    return rng.standard_normal((n, eigenvalues.size)) @ root


def sample_set(
    rng: np.random.Generator,
    n: int,
    dim_inner: int,
    dim_outer: int,
    L_inner: float,
    L_outer: float,
    L_cross: float,
    mu: float,
) -> SampleSet:
    """One level's n per-sample quadratics (the recipe in the module docstring)."""
    zz = _gaussian_rows(rng, n, np.geomspace(mu, L_inner, dim_inner))
    xx = _gaussian_rows(rng, n, np.r_[0.0, np.geomspace(mu, L_outer, dim_outer - 1)])
    k = min(dim_inner, dim_outer)
    u, v = _orthogonal(rng, dim_outer), _orthogonal(rng, dim_inner)
    xi = rng.standard_normal((n, dim_inner))
    cross_x = (xi[:, :k] * np.geomspace(mu, L_cross, k)) @ u[:, :k].T  # rows (U D xi_i)'
    cross_z = xi @ v.T  # rows (V xi_i)'
    return SampleSet(
        zz=zz,
        xx=xx,
        cross_x=cross_x,
        cross_z=cross_z,
        lin_z=rng.standard_normal((n, dim_inner)),
        lin_x=rng.standard_normal((n, dim_outer)),
    )


class ClosedForm:
    """Exact lower solution, value function, minimizer and suboptimality of the full-batch problem."""

    def __init__(self, inner: SampleSet, outer: SampleSet):
        g, f = inner.averaged(), outer.averaged()
        self.hess_inner = g["zz"]
        self.J = -np.linalg.solve(g["zz"], g["cross"].T)
        self.j = -np.linalg.solve(g["zz"], g["lin_z"])
        J, j = self.J, self.j
        kj = f["cross"] @ J
        self.Q = J.T @ f["zz"] @ J + f["xx"] + kj + kj.T
        self.Q = 0.5 * (self.Q + self.Q.T)
        self.q = J.T @ f["zz"] @ j + f["cross"] @ j + J.T @ f["lin_z"] + f["lin_x"]
        self.const = 0.5 * j @ f["zz"] @ j + f["lin_z"] @ j
        self.min_eigenvalue = float(np.linalg.eigvalsh(self.Q)[0])
        self.x_star = -np.linalg.solve(self.Q, self.q) if self.min_eigenvalue > 0 else None
        self.h_star = None if self.x_star is None else self.value(self.x_star)

    def inner_solution(self, x: np.ndarray) -> np.ndarray:
        return self.J @ x + self.j

    def value(self, x: np.ndarray) -> float:
        """h(x) = f(x, z*(x))."""
        return float(0.5 * x @ self.Q @ x + self.q @ x + self.const)

    def hypergradient(self, x: np.ndarray) -> np.ndarray:
        return self.Q @ x + self.q

    def suboptimality(self, x: np.ndarray) -> float:
        """h(x) - h* = 1/2 (x - x*)'Q(x - x*), without the cancellation of subtracting two values."""
        delta = np.asarray(x, np.float64) - self.x_star
        return float(0.5 * delta @ self.Q @ delta)


class SimulatedQuadratic:
    """The benchmark's simulated problem for a :class:`SimulatedSpec`: ``inner`` and ``outer`` sample sets,
    ``closed_form``, the starts ``x0`` and ``z0``. The value function's Hessian must be positive definite
    (minimum eigenvalue >= 1e-12, the benchmark's test); otherwise the sets are redrawn from the same random
    stream, up to 20 times."""

    MIN_EIGENVALUE = 1e-12
    ATTEMPTS = 20

    def __init__(self, spec: SimulatedSpec = SimulatedSpec()):
        self.spec = spec
        rng = np.random.default_rng(spec.random_state)
        for attempt in range(1, self.ATTEMPTS + 1):
            self.inner = sample_set(
                rng,
                spec.n_samples_inner,
                spec.dim_inner,
                spec.dim_outer,
                spec.L_inner_inner,
                spec.L_outer_inner,
                spec.L_cross_inner,
                spec.mu_inner,
            )
            self.outer = sample_set(
                rng,
                spec.n_samples_outer,
                spec.dim_inner,
                spec.dim_outer,
                spec.L_inner_outer,
                spec.L_outer_outer,
                spec.L_cross_outer,
                spec.mu_inner,
            )
            self.closed_form = ClosedForm(self.inner, self.outer)
            if self.closed_form.min_eigenvalue >= self.MIN_EIGENVALUE:
                break
        else:
            raise ValueError(f"no positive definite value function in {self.ATTEMPTS} draws for {spec}")
        self.attempts = attempt
        self.x0 = np.full(spec.dim_outer, -2.0)
        self.z0 = np.zeros(spec.dim_inner)
        self.initial_suboptimality = self.closed_form.suboptimality(self.x0)

    def relative_suboptimality(self, x: np.ndarray) -> float:
        """(h(x) - h*) / (h(x0) - h*), the benchmark's plotted measure."""
        return self.closed_form.suboptimality(x) / self.initial_suboptimality

    def arrays(self) -> Dict[str, np.ndarray]:
        """Every array that defines the problem (``inner_*``, ``outer_*`` factors, ``x0``, ``z0``), e.g. for
        ``np.savez`` so another process (the JAX side) solves exactly this problem."""
        out = {
            f"{level}_{k}": v
            for level, samples in (("inner", self.inner), ("outer", self.outer))
            for k, v in dataclasses.asdict(samples).items()
        }
        out.update(x0=self.x0, z0=self.z0)
        return out

    def summary(self) -> Dict[str, float]:
        cf = self.closed_form
        eig_g = np.linalg.eigvalsh(cf.hess_inner)
        return dict(
            h_star=cf.h_star,
            h_x0=cf.value(self.x0),
            min_eig_value_hessian=cf.min_eigenvalue,
            max_eig_value_hessian=float(np.linalg.eigvalsh(cf.Q)[-1]),
            lower_mu=float(eig_g[0]),
            lower_L=float(eig_g[-1]),
            attempts=self.attempts,
            norm_x_star=float(np.linalg.norm(cf.x_star)),
        )


def from_arrays(arrays: Dict[str, np.ndarray]) -> "SimulatedQuadratic":
    """The problem saved by :meth:`SimulatedQuadratic.arrays` (same numbers, closed form recomputed)."""
    problem = SimulatedQuadratic.__new__(SimulatedQuadratic)
    fields = [f.name for f in dataclasses.fields(SampleSet)]
    problem.inner = SampleSet(**{k: np.asarray(arrays[f"inner_{k}"]) for k in fields})
    problem.outer = SampleSet(**{k: np.asarray(arrays[f"outer_{k}"]) for k in fields})
    problem.closed_form = ClosedForm(problem.inner, problem.outer)
    problem.x0, problem.z0 = np.asarray(arrays["x0"]), np.asarray(arrays["z0"])
    problem.spec, problem.attempts = None, 0
    problem.initial_suboptimality = problem.closed_form.suboptimality(problem.x0)
    return problem

"""Float64 reference answers for the smooth toy problems: the lower solution by Newton's method, the implicit
hypergradient, and F's minimum by L-BFGS-B (scipy)."""

from __future__ import annotations

from typing import Callable, Tuple

import numpy as np
from scipy import optimize

#: (value, gradient, Hessian) of a smooth strongly convex function of v
Oracle = Callable[[np.ndarray], Tuple[float, np.ndarray, np.ndarray]]


def newton(oracle: Oracle, v0: np.ndarray, tol: float = 1e-12, max_steps: int = 100) -> np.ndarray:
    """argmin of a strongly convex function by damped Newton steps (backtracking on the value)."""
    v = np.array(v0, np.float64)
    for _ in range(max_steps):
        value, grad, hess = oracle(v)
        step = np.linalg.solve(hess, grad)
        if float(grad @ step) < tol**2:
            return v
        t = 1.0
        while oracle(v - t * step)[0] > value - 0.25 * t * float(grad @ step) and t > 1e-10:
            t *= 0.5
        v = v - t * step
    return v


def minimize(
    value_and_grad: Callable[[np.ndarray], Tuple[float, np.ndarray]], u0: np.ndarray, bound: float = 20.0
) -> Tuple[np.ndarray, float]:
    """(u*, F*) of a smooth F from u0 by L-BFGS-B inside the box [-bound, bound] (solutions at infinity, such
    as a weight that should vanish, end on the box, where F is flat to float precision)."""
    result = optimize.minimize(
        value_and_grad,
        np.asarray(u0, np.float64),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-bound, bound)] * len(u0),
        options=dict(maxiter=20000, ftol=1e-15, gtol=1e-12, maxcor=30),
    )
    return result.x, float(result.fun)


def log1pexp(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)), stable."""
    return np.logaddexp(0.0, x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))

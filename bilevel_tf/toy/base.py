"""What every toy problem shares: data held in ``tf.Variable`` s and a float64 reference answer."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
from numpy.typing import DTypeLike

from ..core.problem import BilevelProblem
from . import reference


class ToyBilevel:
    """A bilevel problem with an exact answer, for checking a solver.

    Subclasses define the losses (``lower_loss``, ``upper_loss``, TensorFlow, reading the data through
    :meth:`data`) and the float64 reference (``value(u)`` = F(u) = f(u, v*(u)), ``hypergradient(u)``,
    and ``u_star`` / ``value_star`` set by :meth:`_solve`). The data live in ``tf.Variable`` s, so
    :meth:`load` loads another instance of the same sizes into a solver that is already compiled (call
    ``solver.reset_state()`` after it).

    Two measures of a solver's ``u``: :meth:`u_error` = ||u - u*|| / ||u*|| and :meth:`suboptimality` =
    (F(u) - F*) / (F(u0) - F*) (the relative suboptimality of the bilevel benchmark's objective; the
    measure for families whose solution may lie at infinity).
    """

    def __init__(self, data: Dict[str, np.ndarray], n_u: int, n_v: int, dtype: DTypeLike = np.float32):
        self.dtype = dtype
        self.n_u, self.n_v = int(n_u), int(n_v)
        self._data = {k: tf.Variable(np.zeros(np.shape(x), dtype), trainable=False, name=k) for k, x in data.items()}
        self.u = tf.Variable(np.zeros(self.n_u, dtype), name="u")
        self.v = tf.Variable(np.zeros(self.n_v, dtype), name="v")
        self.load(data)

    # ------------------------------------------------------------------ data
    def load(
        self,
        data: Dict[str, np.ndarray],
        u0: Optional[np.ndarray] = None,
        v0: Optional[np.ndarray] = None,
        reference: Optional[Dict[str, Any]] = None,
    ) -> None:
        """Load another instance (same sizes); reset u to u0 (default zeros), v to v0; compute its answer, or
        take it from ``reference`` (another problem's :attr:`reference` for the same data) to skip the solve."""
        for key, value in data.items():
            if key not in self._data or tuple(np.shape(value)) != tuple(self._data[key].shape):
                raise ValueError(
                    f"{type(self).__name__}.assign: {key!r} has shape {np.shape(value)}, expected "
                    f"{None if key not in self._data else tuple(self._data[key].shape)}"
                )
            self._data[key].assign(np.asarray(value, self.dtype))
        self.np = {k: np.asarray(v, np.float64) for k, v in data.items()}
        self.u0 = np.zeros(self.n_u) if u0 is None else np.asarray(u0, np.float64)
        self.u.assign(self.u0.astype(self.dtype))
        self.v.assign(np.zeros(self.n_v, self.dtype) if v0 is None else np.asarray(v0, self.dtype))
        self._derive()
        if reference is None:
            self.u_star, self.value_star = self._solve()
        else:
            self.u_star, self.value_star = np.array(reference["u_star"]), float(reference["value_star"])

    @property
    def reference(self) -> Dict[str, Any]:
        """The float64 answer (``u_star``, ``value_star``), for :meth:`load`."""
        return dict(u_star=self.u_star, value_star=self.value_star)

    def data(self, key: str) -> tf.Variable:
        return self._data[key]

    def problem(self) -> BilevelProblem:
        return BilevelProblem(self.upper_loss, self.lower_loss, [self.u], [self.v])

    # ------------------------------------------------------------------ subclass hooks
    def lower_loss(self, batch: Any = None) -> tf.Tensor:
        raise NotImplementedError

    def upper_loss(self, batch: Any = None) -> tf.Tensor:
        raise NotImplementedError

    def value(self, u: np.ndarray) -> float:
        raise NotImplementedError

    def hypergradient(self, u: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _derive(self) -> None:
        """Cheap quantities of the loaded data the reference functions use (runs on every load)."""

    def _solve(self) -> Tuple[np.ndarray, float]:
        """(u*, F*) in float64."""
        raise NotImplementedError

    # ------------------------------------------------------------------ measures
    def u_error(self) -> float:
        """||u - u*|| / ||u*||."""
        return float(np.linalg.norm(self.u.numpy() - self.u_star) / np.linalg.norm(self.u_star))

    def suboptimality(self, u: Optional[np.ndarray] = None) -> float:
        """(F(u) - F*) / (F(u0) - F*), of the solver's current u by default."""
        u = self.u.numpy().astype(np.float64) if u is None else u
        gap0 = self.value(self.u0) - self.value_star
        return float((self.value(u) - self.value_star) / gap0) if gap0 > 0 else 0.0


class NumericalToyBilevel(ToyBilevel):
    """A family whose F and dF/du come from one float64 ``value_and_grad(u)`` (an inner solve warm-started
    from ``_v_warm``) and whose answer is found by :func:`bilevel_tf.toy.reference.minimize`."""

    def value_and_grad(self, u: np.ndarray) -> Tuple[float, np.ndarray]:
        raise NotImplementedError

    def value(self, u: np.ndarray) -> float:
        return self.value_and_grad(u)[0]

    def hypergradient(self, u: np.ndarray) -> np.ndarray:
        return self.value_and_grad(u)[1]

    def _derive(self) -> None:
        self._v_warm = np.zeros(self.n_v)

    def _solve(self) -> Tuple[np.ndarray, float]:
        return reference.minimize(self.value_and_grad, self.u0)

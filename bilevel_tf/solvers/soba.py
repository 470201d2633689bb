"""SOBA: the single-loop stochastic bilevel algorithm of Dagréou, Ablin, Vaiter & Moreau (NeurIPS 2022)."""

from __future__ import annotations

from typing import Any, Optional

import keras
import tensorflow as tf

from ..core import autodiff
from ..core import tensor_ops as ops
from ..core.problem import BilevelProblem
from .base import BilevelSolver
from .default_steps import LOWER_STEP
from .variables import state_variable
from .optimizers import add_slot


class SOBA(BilevelSolver):
    r"""SOBA (StOchastic Bilevel Algorithm): v, the linear-system direction z and u move together.

    M. Dagréou, P. Ablin, S. Vaiter and T. Moreau, "A framework for bilevel optimization that enables
    stochastic and global variance reduction algorithms", NeurIPS 2022.

    The hypergradient is grad_u f + H_uv g z* with z* = -(H_vv g)^{-1} grad_v f, the minimizer of the quadratic
    1/2 z'(H_vv g) z + z' grad_v f. SOBA follows the three directions at once, each from one mini-batch::

        D_v = grad_v g(u, v)                          (lower batch)
        D_z = H_vv g(u, v) z + grad_v f(u, v)         (lower batch for the product, upper batch for grad_v f)
        D_u = grad_u f(u, v) + H_uv g(u, v) z
        v <- lower_optimizer step along D_v,   z <- linear_optimizer step along D_z,
        u <- upper_optimizer step along D_u            (all three evaluated at the same point)

    D_v, D_z and D_u come out of one double-backward sweep (``bl.autodiff.second_order`` of
    f + <grad_v g, z>). One call of :meth:`step` runs ``inner_steps - 1`` joint (v, z) steps, then the joint
    (v, z, u) step above; the default ``inner_steps=1`` is the paper's algorithm. z starts at zero and is kept
    between iterations (it is solver state, checkpointed).

    Step sizes: the paper uses plain SGD steps, rho_t for v and z and gamma_t for u, decreasing polynomially in
    t in the stochastic setting (the benchmark's implementation: t^(-1/2) for both); with constant steps on
    mini-batches the iterates stop at a noise floor (which SABA removes). The
    defaults are constant plain SGD steps: 1 / L for v and z, L = g's top curvature in v measured on the problem
    at the first step (``default_steps.LOWER_STEP``; ``linear_optimizer`` follows the lower optimizer: its
    learning rate when one is given), and 0.02 for u: a single-loop method needs u slower than v and z. They
    reach the solution of every instance of ``bl.toy``'s quadratic family in ``benchmarks/default_convergence.py``
    (g's curvature up to 50, where a fixed step of 0.1 diverges). For decreasing steps pass optimizers with a Keras
    learning-rate schedule, e.g. ``keras.optimizers.SGD(keras.optimizers.schedules.InverseTimeDecay(...))``.
    Memory does not grow with ``inner_steps``.
    """

    method = "soba"
    default_upper_optimizer = keras.optimizers.SGD
    default_lower_optimizer = keras.optimizers.SGD
    default_linear_optimizer = keras.optimizers.SGD
    default_upper_lr = 0.02
    default_lower_lr = LOWER_STEP
    default_inner_steps = 1

    def __init__(
        self,
        problem: BilevelProblem,
        upper_optimizer: Any = None,
        lower_optimizer: Any = None,
        *,
        inner_steps: Optional[int] = None,
        linear_optimizer: Any = None,
        jit_compile: bool = False,
        **unknown: Any,
    ):
        super().__init__(
            problem, upper_optimizer, lower_optimizer, inner_steps=inner_steps, jit_compile=jit_compile, **unknown
        )
        self.z = self.add_state("z", [state_variable(tf.zeros(v.shape, v.dtype), "z") for v in problem.lower_vars])
        self.linear_optimizer = add_slot(
            self, "linear_optimizer", linear_optimizer, self.default_linear_optimizer, self.z
        )

    def _oracles(self, upper_batch, lower_batch, with_upper: bool):
        """(g, f, D_v, D_z, D_u or None) at the current (u, v, z)."""
        problem = self.problem
        wrt = list(problem.upper_vars) + list(problem.lower_vars) if with_upper else list(problem.lower_vars)
        z = [tf.convert_to_tensor(x) for x in self.z]
        g, d_v, f, grads = autodiff.second_order(
            problem, lower_batch, z, wrt, extra=lambda: problem.f(upper_batch), mode=self.hvp
        )
        n_upper = len(wrt) - len(problem.lower_vars)
        return g, f, d_v, grads[n_upper:], grads[:n_upper] if with_upper else None

    def _step_z(self, d_z) -> None:
        self._apply(self.linear_optimizer, d_z, self.z, None)

    def _direction(self, upper_batch, lower_batch):
        if self.inner_steps > 1:
            for _ in self.loop(self.inner_steps - 1):
                _, _, d_v, d_z, _ = self._oracles(upper_batch, lower_batch, with_upper=False)
                self.apply_lower(d_v)
                self._step_z(d_z)
        g, f, d_v, d_z, d_u = self._oracles(upper_batch, lower_batch, with_upper=True)
        self._step_z(d_z)
        logs = dict(
            upper_loss=f, lower_loss=g, lower_grad_norm_sq=ops.sq_norm(d_v), linear_residual_sq=ops.sq_norm(d_z)
        )
        return d_u, d_v, logs

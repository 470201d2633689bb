"""Naive alternating gradient descent (the paper's GD baseline)."""

from __future__ import annotations


from ..core import autodiff, distribute
from .base import BilevelSolver
from .default_steps import LOWER_STEP


class GD(BilevelSolver):
    r"""Alternating descent that ignores how v* depends on u::

        repeat T times:  v <- lower_optimizer step along grad_v g
        u <- upper_optimizer step along grad_u f          (the implicit term -H_uv g H_vv^-1 grad_v f is dropped)

    It converges to the bilevel solution only when f does not depend on v through v*(u); the paper's
    synthetic examples show where it fails. Defaults: Adam 1e-3 on u; plain SGD at 1 / L on v, L = g's top
    curvature in v measured on the problem at the first step (``default_steps.LOWER_STEP``; a learning rate
    gives Adam).
    """

    method = "gd"
    default_inner_steps = 20
    default_lower_lr = LOWER_STEP

    def _direction(self, upper_batch, lower_batch):
        self.descend_lower(lower_batch)
        g = distribute.mean_scalar(self.problem.g(lower_batch))
        f, grad_u = autodiff.upper_value_and_grad(self.problem, upper_batch, self.problem.upper_vars)
        return grad_u, None, dict(upper_loss=f, lower_loss=g)

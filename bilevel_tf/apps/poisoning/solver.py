"""The attacks' bilevel solvers: their table of options for ``bl.make_solver`` and ApproxGrad's
halving."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Dict, Optional

import bilevel_tf as bl

from .config import METHODS, SOLVER_OPTIONS


def attack_solver_options(
    method: str,
    *,
    lr_u: float,
    lr_v: float,
    lr_p: Optional[float] = None,
    inner_steps: int,
    rho: float = 1.0,
    lam: float = 1.0,
    eps: float = 1.0,
    nu: float = 0.0,
    sigma: float = 1e-3,
    jit_compile: bool = False,
) -> Dict[str, Any]:
    """``bl.make_solver``'s options for ``method`` with these settings (see ``SOLVER_OPTIONS``)."""
    if method not in SOLVER_OPTIONS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    settings = SimpleNamespace(lr_u=lr_u, lr_v=lr_v, lr_p=lr_p, rho=rho, lam=lam, eps=eps, nu=nu, sigma=sigma)
    return dict(SOLVER_OPTIONS[method](settings), inner_steps=inner_steps, jit_compile=jit_compile)


def halve_learning_rates(solver: bl.BilevelSolver, every: int) -> bl.LambdaCallback:
    """The original ApproxGrad runners halve lr_u and lr_v every ``every`` upper iterations."""

    def on_step_end(step: int, logs) -> None:
        if every and step % every == 0:
            for opt in (solver.upper_optimizer, solver.lower_optimizer):
                opt.learning_rate.assign(opt.learning_rate * 0.5)

    return bl.LambdaCallback(on_step_end=on_step_end)

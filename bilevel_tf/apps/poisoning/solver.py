"""The attacks' bilevel solvers: their table of options for ``bl.make_solver`` and ApproxGrad's
halving."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable, Dict, Optional

import bilevel_tf as bl

from .config import METHODS  # the methods this table covers

#: per method: ``bl.make_solver``'s options from the attack's settings (lr_u, lr_v, lr_p, rho, lam, eps, nu,
#: sigma), with the original's optimizers: Adam at both levels (Penalty, ApproxGrad with an Adam linear solver,
#: at lr_v unless lr_p is given); RMD unrolls plain SGD at the lower level and takes Adam steps on the poison.
#: Learning rates are the slots' default classes (Adam; plain SGD at both RMD levels, hence its config dict).
SOLVER_OPTIONS: Dict[str, Callable[[Any], Dict[str, Any]]] = {
    "penalty": lambda s: dict(upper_optimizer=s.lr_u, lower_optimizer=s.lr_v, schedule="original", rho=s.rho,
                              lam=s.lam, eps=s.eps, nu=s.nu),
    "approxgrad": lambda s: dict(upper_optimizer=s.lr_u, lower_optimizer=s.lr_v, linear_optimizer=s.lr_p or s.lr_v,
                                 sigma=s.sigma),
    "rmd": lambda s: dict(upper_optimizer={"class_name": "Adam", "config": {"learning_rate": s.lr_u}},
                          lower_optimizer=s.lr_v),
}


def attack_solver_options(method: str, *, lr_u: float, lr_v: float, lr_p: Optional[float] = None,
                          inner_steps: int, rho: float = 1.0, lam: float = 1.0, eps: float = 1.0, nu: float = 0.0,
                          sigma: float = 1e-3, jit_compile: bool = False) -> Dict[str, Any]:
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



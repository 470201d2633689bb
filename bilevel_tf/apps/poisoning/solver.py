"""The attacks' bilevel solvers: one factory for the three methods, their flags, ApproxGrad's halving."""
from __future__ import annotations

from typing import Optional

import keras

import bilevel_tf as bl

from .data import METHODS  # noqa: F401  (re-exported: the methods these solvers cover)


def make_attack_solver(method: str, problem: bl.BilevelProblem, *, lr_u: float, lr_v: float,
                       lr_p: Optional[float] = None, inner_steps: int, rho: float = 1.0, lam: float = 1.0,
                       eps: float = 1.0, nu: float = 0.0, sigma: float = 1e-3,
                       jit_compile: bool = False) -> bl.BilevelSolver:
    """The original's optimizers: Adam at both levels (Penalty, ApproxGrad with an Adam linear solver);
    RMD unrolls plain SGD at the lower level and takes Adam steps on the poison."""
    adam = keras.optimizers.Adam
    if method == "penalty":
        return bl.Penalty(problem, adam(lr_u), adam(lr_v), inner_steps=inner_steps, schedule="original", rho=rho,
                          lam=lam, eps=eps, nu=nu, jit_compile=jit_compile)
    if method == "approxgrad":
        return bl.ApproxGrad(problem, adam(lr_u), adam(lr_v), inner_steps=inner_steps,
                             linear_optimizer=adam(lr_p or lr_v), sigma=sigma, jit_compile=jit_compile)
    if method == "rmd":
        return bl.RMD(problem, adam(lr_u), keras.optimizers.SGD(lr_v), inner_steps=inner_steps,
                      jit_compile=jit_compile)
    raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")


def halve_learning_rates(solver: bl.BilevelSolver, every: int) -> bl.LambdaCallback:
    """The original ApproxGrad runners halve lr_u and lr_v every ``every`` upper iterations."""
    def on_step_end(step: int, logs) -> None:
        if every and step % every == 0:
            for opt in (solver.upper_optimizer, solver.lower_optimizer):
                opt.learning_rate.assign(opt.learning_rate * 0.5)
    return bl.LambdaCallback(on_step_end=on_step_end)



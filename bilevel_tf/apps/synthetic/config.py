"""The synthetic runners' choices and flags, without TensorFlow (they parse, and answer ``--help``, first)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict

from ...solvers import registry

EXAMPLES = (1, 2, 3, 4)


@dataclasses.dataclass(frozen=True)
class SolverSettings:
    """The paper's synthetic hyperparameters (names of the original code in comments)."""

    lr_u: float = 1e-3  # sigma_0, upper step
    lr_v: float = 1e-4  # rho_0, lower step
    lr_p: float = 1e-4  # ApproxGrad linear-system step
    rho: float = 1.0  # Penalty rho_0 (paper gamma_0)
    lam: float = 10.0  # lamb_0
    eps: float = 1.0  # eps_0
    nu: float = 0.0  # nu_0 (the synthetic optimizer starts nu at zero)
    c_rho: float = 1.1  # the synthetic schedule divides lam, eps and the lrs by c_rho
    use_nu: bool = True
    sigma: float = 1e-6  # ApproxGrad regularizer of the synthetic script
    rmd_sgd_upper: bool = True  # the original RMD takes plain gradient steps on u as well


PAPER_SETTINGS = SolverSettings()


def _adam(rate: float) -> Dict[str, Any]:
    return {"class_name": "Adam", "config": {"learning_rate": rate}}


def _adams(s: SolverSettings) -> Dict[str, Any]:
    return dict(upper_optimizer=_adam(s.lr_u), lower_optimizer=_adam(s.lr_v))


#: per method: ``bl.make_solver``'s options from the settings (learning rates are the slots' default classes:
#: Adam, and plain SGD at both levels of RMD); with T, ``inner_steps`` and ``jit_compile`` they build the paper's
#: synthetic solvers: ``bl.make_solver(m, problem, inner_steps=T, **SOLVER_OPTIONS[m](PAPER_SETTINGS))``
SOLVER_OPTIONS: Dict[str, Callable[[SolverSettings], Dict[str, Any]]] = {
    "gd": lambda s: dict(upper_optimizer=s.lr_u, lower_optimizer=s.lr_v),
    "rmd": lambda s: dict(upper_optimizer=s.lr_u if s.rmd_sgd_upper else _adam(s.lr_u), lower_optimizer=s.lr_v),
    "approxgrad": lambda s: dict(
        upper_optimizer=s.lr_u, lower_optimizer=s.lr_v, linear_optimizer=s.lr_p, sigma=s.sigma
    ),
    # ApproxGrad's Adam steps and sigma, the linear system solved by conjugate gradient
    "implicit": lambda s: dict(upper_optimizer=_adam(s.lr_u), lower_optimizer=_adam(s.lr_v), sigma=s.sigma),
    # the original synthetic schedule: rho *= c_rho, and lam, eps and both learning rates /= c_rho
    "penalty": lambda s: dict(
        upper_optimizer=s.lr_u,
        lower_optimizer=s.lr_v,
        rho=s.rho,
        lam=s.lam,
        eps=s.eps,
        nu=s.nu,
        c_rho=s.c_rho,
        c_lam=1.0 / s.c_rho,
        c_eps=1.0 / s.c_rho,
        lr_decay=1.0 / s.c_rho,
        use_nu=s.use_nu,
        schedule="original",
        tolerance="original",
        nu_rho="new",
    ),
    # the implicit-gradient modern solvers with Adam on u (lr_u) and v (lr_v), as the rows above, and plain SGD
    # at lr_p on the linear-system direction z: H_vv g is singular on Ex.3/Ex.4, and Adam's per-coordinate
    # scaling mixed the residual it cannot remove into z (Ex.3, T = 10: distance 3-4.4 with Adam, 0.02-0.03 SGD)
    "soba": lambda s: dict(_adams(s), linear_optimizer=s.lr_p),
    # full batch: SABA's SAGA estimates are the exact gradients, so it takes SOBA's steps (its variance
    # reduction needs mini-batches of a finite sum, which this runner does not draw)
    "saba": lambda s: dict(_adams(s), linear_optimizer=s.lr_p),
    "amigo": lambda s: dict(_adams(s), linear_optimizer=s.lr_p),
    # Neumann step 0.02 < 2/L for every example (L = 2 on Ex.1/2, 2 lambda_max(A'A) ~ 60 on Ex.3/4 at dim 10)
    "stocbio": lambda s: dict(_adams(s), neumann_step=0.02),
    # plain SGD steps at lr_u and lr_v (as RMD's row): their step scalings (F2SA's lam_0 / lam, BOME's decay) are
    # part of the algorithm and Adam's normalisation cancels them (with Adam, on Ex.1 F2SA drifted to the box's
    # edge at T = 1 and BOME stalled at distance 1 to 9); BOME's step decays as 1 / (1 + k / 10^4) over the
    # paper's 4 x 10^4 iterations
    "f2sa": lambda s: dict(upper_optimizer=s.lr_u, lower_optimizer=s.lr_v),
    "bome": lambda s: dict(upper_optimizer=s.lr_u, lower_optimizer=s.lr_v, decay_steps=10000),
}
#: the methods the runners offer: those of the table above, in its order
METHODS = registry.covered(SOLVER_OPTIONS)


def add_jit_flag(p) -> None:
    """``--no-jit``: XLA is the default for these tiny full-batch problems (an upper step is several times
    faster), except with --smoke where compiling costs more than it saves (``--jit`` forces it)."""
    p.add_argument(
        "--no-jit",
        dest="jit",
        action="store_false",
        help="do not compile with XLA (default: XLA, a tiny upper step is ~8x faster; "
        "off with --smoke unless --jit is given)",
    )
    p.set_defaults(jit=None)


def resolve_jit(args) -> None:
    if args.jit is None:
        args.jit = not args.smoke

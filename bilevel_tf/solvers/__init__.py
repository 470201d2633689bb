"""Bilevel solvers; every one is a ``BilevelSolver`` with the same constructor head and ``step``."""
from typing import Any, Dict, Type

from .approxgrad import ApproxGrad
from .base import BilevelSolver, Feed
from .gd import GD
from .pbgd import GPBGD, VPBGD
from .penalty import Penalty
from .rmd import RMD

SOLVERS: Dict[str, Type[BilevelSolver]] = {
    "penalty": Penalty, "approxgrad": ApproxGrad, "rmd": RMD, "gd": GD, "vpbgd": VPBGD, "gpbgd": GPBGD,
    # PBGD's names for reverse-mode unrolling (truncated when ``truncation`` < ``inner_steps``)
    "rhg": RMD, "itd": RMD,
}


def get_solver(method: str) -> Type[BilevelSolver]:
    """The solver class for a method name (case-insensitive); ValueError listing the names otherwise."""
    key = str(method).lower().replace("-", "").replace("_", "")
    if key not in SOLVERS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(SOLVERS)}")
    return SOLVERS[key]


def make_solver(method: str, problem, **kwargs: Any) -> BilevelSolver:
    return get_solver(method)(problem, **kwargs)


__all__ = ["BilevelSolver", "Feed", "Penalty", "ApproxGrad", "RMD", "GD", "VPBGD", "GPBGD", "SOLVERS", "get_solver",
           "make_solver"]

"""Bilevel solvers; every one is a ``BilevelSolver`` with the same constructor head and ``step``."""
from typing import Any, Dict, Type

from .amigo import AmIGO
from .approxgrad import ApproxGrad
from .base import BilevelSolver, Feed
from .bome import BOME
from .f2sa import F2SA
from .gd import GD
from .implicit import Implicit
from .pbgd import GPBGD, VPBGD
from .penalty import Penalty
from .rmd import RMD
from .saba import SABA
from .soba import SOBA
from .stocbio import StocBiO

from ..options import METHODS  # the canonical method names; apps derive theirs from it (TensorFlow-free)
SOLVERS: Dict[str, Type[BilevelSolver]] = {
    "penalty": Penalty, "approxgrad": ApproxGrad, "rmd": RMD, "gd": GD, "vpbgd": VPBGD, "gpbgd": GPBGD,
    "soba": SOBA, "saba": SABA, "amigo": AmIGO, "stocbio": StocBiO, "f2sa": F2SA, "bome": BOME,
    "implicit": Implicit,
    # PBGD's names for reverse-mode unrolling (truncated when ``truncation`` < ``inner_steps``)
    "rhg": RMD, "itd": RMD,
}


def get_solver(method: str) -> Type[BilevelSolver]:
    """The solver class for a method name (case-insensitive); ValueError listing the names otherwise."""
    key = str(method).lower().replace("-", "").replace("_", "")
    if key not in SOLVERS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)} "
                         f"(or the aliases {sorted(set(SOLVERS) - set(METHODS))})")
    return SOLVERS[key]


def make_solver(method: str, problem, **options: Any) -> BilevelSolver:
    """The solver of ``method`` (a name of :data:`METHODS` or an alias, see :func:`get_solver`) for ``problem``,
    built with ``options``: the keyword options of that solver's class (``inner_steps``, ``jit_compile``,
    ``hvp``, ``unroll``, the optimizers, its own schedule constants; ``get_solver(method).option_names()``
    lists them). The one solver factory: apps keep a table of per-method options and call it.

    Every optimizer option (``upper_optimizer``, ``lower_optimizer``, the ``linear_optimizer`` of ApproxGrad,
    SOBA, SABA and AmIGO, the ``inner_optimizer`` of V-PBGD and BOME, F2SA's ``penalty_optimizer``) takes one of
    these forms:

    * a positive learning rate: the slot's default class at that rate: Adam for the upper and lower levels
      of Penalty, ApproxGrad and GD and for ApproxGrad's linear solve; plain SGD for RMD's two levels, the
      PBGD solvers' two levels and V-PBGD's inner copy, and for every slot of SOBA, SABA, AmIGO, StocBiO, F2SA
      and BOME;
    * a Keras optimizer config dict or name, built by ``keras.optimizers.get``: e.g.
      ``{"class_name": "Adam", "config": {"learning_rate": 1e-2, "epsilon": 1e-8}}``, or the full form that
      ``keras.saving.serialize_keras_object`` (and :meth:`BilevelSolver.get_config`) writes; a name such as
      ``"sgd"`` takes Keras' defaults, learning rate included;
    * a ``keras.optimizers.Optimizer`` instance, used as it is (one instance per slot);
    * None (or absent): the slot's default class at the solver's default learning rate.

    So a table of options can be plain data: ``{"penalty": dict(schedule="original", c_rho=1.1,
    lower_optimizer=1e-4), "rmd": dict(lower_optimizer=0.1, truncation=5)}``. Everything the options set is
    recorded by ``solver.get_config()``. An unknown method or option raises a ValueError naming the valid ones.
    """
    return get_solver(method)(problem, **options)


__all__ = ["BilevelSolver", "Feed", "Penalty", "ApproxGrad", "RMD", "GD", "VPBGD", "GPBGD", "SOBA", "SABA", "AmIGO",
           "StocBiO", "F2SA", "BOME", "Implicit", "METHODS", "SOLVERS",
           "get_solver", "make_solver"]

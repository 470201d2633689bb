"""The solver factory: :func:`make_solver` and :func:`get_solver` by method name, :data:`SOLVERS`.

The names come from :mod:`bilevel_tf.solvers.registry` (one line per solver); this module imports the classes.
"""

from typing import Any, Dict, Type

from . import registry
from .base import BilevelSolver

#: every name ``get_solver`` accepts (methods and aliases) -> its class, for the solvers registered at import
SOLVERS: Dict[str, Type[BilevelSolver]] = {name: registry.lookup(name).load() for name in registry.all_names()}


def get_solver(method: str) -> Type[BilevelSolver]:
    """The solver class for a method name or alias (case, ``-`` and ``_`` do not matter); ValueError listing the
    names otherwise."""
    return registry.lookup(method).load()


def make_solver(method: str, problem, **options: Any) -> BilevelSolver:
    """The solver of ``method`` (a name of :data:`~bilevel_tf.solvers.registry.METHODS` or an alias, see
    :func:`get_solver`) for ``problem``, built with ``options``: the keyword options of that solver's class
    (``inner_steps``, ``jit_compile``, ``hvp``, ``unroll``, the optimizers, its own schedule constants;
    ``get_solver(method).option_names()`` lists them). The one solver factory: apps keep a table of per-method
    options and call it.

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
    * None (or absent): the slot's default, which converges on the problem as given: for every slot of RMD, the
      PBGD solvers, SOBA, SABA, AmIGO, StocBiO, F2SA, BOME and Implicit and the lower and linear slots of
      ApproxGrad and GD, plain SGD at a step measured on the problem at the first step (c / L, L = g's top
      curvature from a few Hessian-vector products: :mod:`~bilevel_tf.solvers.default_steps`), except the fixed
      upper steps of SOBA/SABA (0.02), AmIGO, StocBiO, Implicit and RMD (0.1), F2SA (0.3) and ApproxGrad (Adam
      1e-2); Penalty's and GD's other slots: Adam (1e-3 on u, 1e-4 on v). A slot an option sets is never changed.

    So a table of options can be plain data: ``{"penalty": dict(schedule="original", c_rho=1.1,
    lower_optimizer=1e-4), "rmd": dict(lower_optimizer=0.1, truncation=5)}``. Everything the options set is
    recorded by ``solver.get_config()`` (a measured slot as None, with its rule under ``"default_steps"``;
    ``solver.default_steps.values()`` gives the measured steps). An unknown method or option raises a ValueError
    naming the valid ones.
    """
    return get_solver(method)(problem, **options)

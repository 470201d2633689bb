"""bilevel_tf: deep bilevel optimization in TensorFlow 2 / Keras 3.

    min_u f(u, v*(u))   s.t.   v*(u) = argmin_v g(u, v)

Solvers: :class:`Penalty` (Mehra & Hamm, ACML 2021), :class:`ApproxGrad`, :class:`RMD` (RHG / T-RHG),
:class:`GD`, :class:`VPBGD`, :class:`GPBGD`. Each ``solver.step(upper_batch, lower_batch)`` is one compiled
upper iteration; :func:`fit` runs many with progress, logging and checkpoint/resume.
"""
from ._quiet import import_tensorflow_quietly

import_tensorflow_quietly()

from . import autodiff, constraints, precision, tensor_ops, toy  # noqa: E402
from .problem import BilevelProblem  # noqa: E402
from .solvers import (GD, GPBGD, METHODS, RMD, SOLVERS, VPBGD, ApproxGrad, BilevelSolver,  # noqa: E402
                      Penalty, get_solver, make_solver)

__version__ = "0.1.0"

__all__ = ["BilevelProblem", "BilevelSolver", "Penalty", "ApproxGrad", "RMD", "GD", "VPBGD", "GPBGD", "METHODS",
           "SOLVERS", "get_solver", "make_solver", "autodiff", "constraints", "precision", "tensor_ops", "toy"]

from . import callbacks  # noqa: E402
from .callbacks import Callback, CSVLogger, EarlyStopping, Evaluate, LambdaCallback, TensorBoard  # noqa: E402
from .fit import History, NonFiniteError, fit  # noqa: E402

__all__ += ["fit", "History", "NonFiniteError", "callbacks", "Callback", "CSVLogger", "TensorBoard", "Evaluate",
            "EarlyStopping", "LambdaCallback"]

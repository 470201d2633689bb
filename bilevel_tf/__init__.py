"""bilevel_tf: deep bilevel optimization in TensorFlow 2 / Keras 3.

    min_u f(u, v*(u))   s.t.   v*(u) = argmin_v g(u, v)

Solvers: :class:`Penalty` (Mehra & Hamm, ACML 2021), :class:`ApproxGrad`, :class:`RMD` (RHG / T-RHG),
:class:`GD`, :class:`VPBGD`, :class:`GPBGD`, and the field's stochastic and first-order methods :class:`SOBA`,
:class:`SABA` (variance reduced, over a :class:`FiniteSum`), :class:`AmIGO`, :class:`StocBiO`, :class:`F2SA`,
:class:`BOME`. Each ``solver.step(upper_batch, lower_batch)`` is one compiled
upper iteration; :func:`fit` runs many with progress, logging and checkpoint/resume.

Importing the package is cheap and changes nothing else in the process: TensorFlow loads the first time a name
that needs it is used (one table, ``_LAZY_NAMES``), so the experiment runners parse their flags and answer
``--help`` before it.
"""
import importlib

from .solvers import registry as _registry

__version__ = "0.1.0"

#: public name -> the submodule that defines it (loaded on first use); the solver classes come from the registry
_LAZY_NAMES = {
    "BilevelProblem": f"{__name__}.problem",
    "BilevelSolver": f"{__name__}.solvers.base",
    **{entry.class_name: entry.module for entry in _registry.entries()},
    "METHODS": f"{__name__}.solvers.registry",
    **{name: f"{__name__}.solvers.factory" for name in ("SOLVERS", "get_solver", "make_solver")},
    "FiniteSum": f"{__name__}.finite_sum",
    **{name: f"{__name__}.loop" for name in ("fit", "History", "NonFiniteError")},
    **{name: f"{__name__}.callbacks" for name in ("Callback", "CSVLogger", "TensorBoard", "Evaluate", "EarlyStopping",
                                      "LambdaCallback")},
}
_SUBMODULES = ("autodiff", "callbacks", "constraints", "precision", "tensor_ops", "toy")

__all__ = ["BilevelProblem", "FiniteSum", "BilevelSolver",
           *(entry.class_name for entry in _registry.entries()), "METHODS", "SOLVERS", "get_solver", "make_solver",
           "autodiff", "constraints", "precision", "tensor_ops", "toy",
           "fit", "History", "NonFiniteError", "callbacks", "Callback", "CSVLogger", "TensorBoard", "Evaluate",
           "EarlyStopping", "LambdaCallback"]


def __getattr__(name: str):
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))

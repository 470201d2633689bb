"""bilevel_tf: deep bilevel optimization in TensorFlow 2 / Keras 3.

    min_u f(u, v*(u))   s.t.   v*(u) = argmin_v g(u, v)

Solvers: :class:`Penalty` (Mehra & Hamm, ACML 2021), :class:`ApproxGrad`, :class:`RMD` (RHG / T-RHG),
:class:`GD`, :class:`VPBGD`, :class:`GPBGD`, and the field's stochastic and first-order methods :class:`SOBA`,
:class:`SABA` (variance reduced, over a :class:`FiniteSum`), :class:`AmIGO`, :class:`StocBiO`, :class:`F2SA`,
:class:`BOME`, and :class:`Implicit` (CG / Neumann linear solves); Penalty's schedule is a
:class:`PenaltySchedule`, its presets the factories of :mod:`penalty_schedules`. Each ``solver.step(upper_batch,
lower_batch)`` is one compiled upper iteration; :func:`fit` runs many with progress, logging and checkpoint/resume.

Importing the package is cheap and changes nothing else in the process: TensorFlow loads the first time a name
that needs it is used (one table, ``_LAZY``), so the experiment runners parse their flags and answer
``--help`` before it.
"""

import importlib
from typing import Any, List

from .solvers import registry as _registry

__version__ = "0.1.0"


def _names(module: str, *names: str) -> dict:
    return {name: f"{__name__}.{module}:{name}" for name in names}


#: every public name -> where it lives, loaded on first use: "module:attribute", or a submodule's "module";
#: the solver classes come from the registry
_LAZY = {
    **_names("core.problem", "BilevelProblem"),
    **_names("core.finite_sum", "FiniteSum"),
    **_names("solvers.base", "BilevelSolver"),
    **{entry.class_name: entry.target for entry in _registry.entries()},
    **_names("solvers.registry", "METHODS"),
    **_names("solvers.factory", "SOLVERS", "get_solver", "make_solver"),
    **_names("solvers.penalty_schedule", "PenaltySchedule"),
    "penalty_schedules": f"{__name__}.solvers.penalty_schedules",
    **{name: f"{__name__}.core.{name}" for name in ("autodiff", "constraints", "precision", "tensor_ops")},
    "toy": f"{__name__}.toy",
    **_names("training.loop", "fit", "History", "NonFiniteError"),
    **_names("training.backup", "BackupAndRestore"),
    "callbacks": f"{__name__}.training.callbacks",
    **_names(
        "training.callbacks", "Callback", "CSVLogger", "TensorBoard", "Evaluate", "EarlyStopping", "LambdaCallback"
    ),
}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, _, attribute = _LAZY[name].partition(":")
    value = importlib.import_module(module)
    value = getattr(value, attribute) if attribute else value
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))

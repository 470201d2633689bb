"""The Penalty method's options: a schedule preset (``options.PENALTY_SCHEDULES``) with the caller's overrides,
checked once (a ValueError naming the argument)."""
from __future__ import annotations

from typing import Any, Dict, Tuple

from ..core.options import PENALTY_SCHEDULES
from .checks import check_choice, check_nonnegative
from .penalty_calibration import PROBES

#: rho / lam given as this string are measured by the schedule's calibration at the first iteration
AUTO = "auto"


def auto_names(options: Dict[str, Any]) -> Tuple[str, ...]:
    """The penalty weights left to the calibration."""
    return tuple(name for name in ("rho", "lam") if isinstance(options[name], str) and options[name] == AUTO)


def resolve(schedule: str, given: Dict[str, Any], unset: Any) -> Dict[str, Any]:
    """The preset ``schedule`` with every ``given`` value that is not ``unset``, checked and normalized."""
    options = {k: (PENALTY_SCHEDULES[schedule][k] if v is unset else v) for k, v in given.items()}
    auto = auto_names(options)
    for name in ("rho", "lam"):
        if isinstance(options[name], str) and name not in auto:
            raise ValueError(f"{name} must be a non-negative number or {AUTO!r}, got {options[name]!r}")
    for name in ("rho", "lam", "eps", "c_rho", "c_lam", "c_eps"):
        if name not in auto:
            options[name] = check_nonnegative(name, options[name])
    options["nu"] = float(options["nu"])
    decay = options["lr_decay"]
    if decay is not None and not (isinstance(decay, (int, float)) and 0 < decay <= 1):
        raise ValueError(f"lr_decay must be in (0, 1] or None, got {decay!r}")
    check_choice("tolerance", options["tolerance"], ("original", "paper"))
    check_choice("nu_rho", options["nu_rho"], ("new", "old"))
    check_choice("nu_update", options["nu_update"], ("every_step", "on_tolerance"))
    check_choice("calibration", options["calibration"], tuple(PROBES))
    beta = options["dual_step"]
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 < beta <= 1:
        raise ValueError(f"dual_step must be in (0, 1], got {beta!r}")
    options["dual_step"] = float(beta)
    options["lower_scale"] = bool(options["lower_scale"])
    options["average_lower"] = bool(options["average_lower"])
    if options["lower_scale"] and options["calibration"] != "spectral":
        raise ValueError("lower_scale needs calibration='spectral' (it scales h_l by g's measured curvature)")
    return options

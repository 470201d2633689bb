"""What a user chooses by name: Penalty schedule presets, precision policies, distribution strategies.

Plain data without TensorFlow, so that the runners can offer them as flag choices (and answer ``--help``)
before TensorFlow loads; the solvers and :mod:`bilevel_tf.core.precision` read them from here. The methods are
declared in :mod:`bilevel_tf.solvers.registry`.
"""
from typing import Any, Dict, Tuple

#: The Penalty method's schedules (``bl.Penalty(schedule=...)``). Every key is also a constructor argument
#: that overrides its preset value.
PENALTY_SCHEDULES: Dict[str, Dict[str, Any]] = {
    # The library default, measured on benchmarks/robustness.py: a damped multiplier step every iteration,
    # rho, lam and the lower step's scale from g's and f's measured curvature, no tolerance test, no
    # learning-rate decay.
    "balanced": dict(rho="auto", lam="auto", eps=0.0, nu=0.0, c_rho=1.0, c_lam=1.0, c_eps=1.0, use_nu=True,
                     lr_decay=None, tolerance="paper", nu_rho="old", nu_update="every_step",
                     calibration="spectral", dual_step=0.1, lower_scale=True, average_lower=True),
    # The previous default: a full multiplier step every iteration, rho and lam from three products along grad_v f.
    "auglag": dict(rho="auto", lam="auto", eps=0.0, nu=0.0, c_rho=1.0, c_lam=1.0, c_eps=1.0, use_nu=True,
                   lr_decay=None, tolerance="paper", nu_rho="old", nu_update="every_step",
                   calibration="curvature", dual_step=1.0, lower_scale=False, average_lower=False),
    # What hammlab/bilevel-penalty's bilevel_penalty_aug_lag.py does (the code behind the paper's tables).
    "original": dict(rho=1.0, lam=10.0, eps=1.0, nu=0.0, c_rho=1.1, c_lam=0.9, c_eps=0.9, use_nu=True,
                     lr_decay=0.9, tolerance="original", nu_rho="new", nu_update="on_tolerance",
                     calibration="curvature", dual_step=1.0, lower_scale=False, average_lower=False),
    # Algorithm 2 as printed in the paper.
    "paper": dict(rho=1.0, lam=10.0, eps=1.0, nu=0.0, c_rho=1.1, c_lam=0.9, c_eps=0.9, use_nu=True,
                  lr_decay=None, tolerance="paper", nu_rho="old", nu_update="on_tolerance",
                  calibration="curvature", dual_step=1.0, lower_scale=False, average_lower=False),
}
DEFAULT_SCHEDULE = "balanced"

FLOAT32 = "float32"
MIXED_BFLOAT16 = "mixed_bfloat16"
#: the Keras dtype policies the library supports (``bl.precision.set_policy``)
PRECISIONS: Tuple[str, ...] = (FLOAT32, MIXED_BFLOAT16)
#: ``--strategy`` values (``bilevel_tf.training.workers.make_strategy``)
STRATEGIES: Tuple[str, ...] = ("none", "mirrored", "multi_worker")

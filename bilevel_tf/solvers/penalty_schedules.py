"""The Penalty method's named schedules (``bl.penalty_schedules``): one factory per preset, each returning a
:class:`~bilevel_tf.PenaltySchedule` with the preset's constants and the caller's overrides::

    bl.Penalty(problem, schedule=bl.penalty_schedules.original(c_rho=1.2))
    bl.Penalty(problem, schedule="original", c_rho=1.2)                      # the same schedule by name

:data:`SCHEDULES` is the one table of them: ``bl.Penalty(schedule=<name>)``, the runners' ``--schedule`` choices
and its help are derived from it. A new preset is a function here and one entry of that table.

TensorFlow-free until a factory is called, so that the runners offer the names (and answer ``--help``) before
TensorFlow loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict

if TYPE_CHECKING:
    from .penalty_schedule import PenaltySchedule


def _preset(name: str, overrides: Dict[str, Any], **constants: Any) -> "PenaltySchedule":
    """The schedule ``name`` with ``constants`` (the class defaults for those not given), then ``overrides``."""
    from .penalty_schedule import PenaltySchedule  # TensorFlow loads here, not with the names

    return PenaltySchedule(name=name, **constants).replace(**overrides)


#: what every preset before ``balanced`` does differently from it: the curvature probe, a full multiplier step,
#: no lower step scale, v read at the last inner iterate
_BEFORE_BALANCED: Dict[str, Any] = dict(calibration="curvature", dual_step=1.0, lower_scale=False, average_lower=False)
#: the original code's tolerance schedule (hammlab/bilevel-penalty, bilevel_penalty_aug_lag.py)
_ORIGINAL_CODE: Dict[str, Any] = dict(
    rho=1.0,
    lam=10.0,
    eps=1.0,
    c_rho=1.1,
    c_lam=0.9,
    c_eps=0.9,
    lr_decay=0.9,
    tolerance="original",
    nu_rho="new",
    nu_update="on_tolerance",
)
#: where Algorithm 2 as printed differs from the original code
_AS_PRINTED: Dict[str, Any] = dict(tolerance="paper", nu_rho="old", lr_decay=None)


def balanced(**overrides: Any) -> "PenaltySchedule":
    """The library default: a damped multiplier step every iteration, penalty and lower step scaled to the
    problem's curvature.

    The method of multipliers with a damped multiplier step (``dual_step`` beta = 0.1) every iteration, and
    rho, lam and the lower step's scale set once, at the first iteration, from curvature probes
    (``calibration="spectral"``, :mod:`bilevel_tf.solvers.penalty_calibration`): g's curvature range
    [h_lo, h_hi] as seen from grad_v f (20 Lanczos steps of Hessian-vector products) and f's top curvature s in
    v (10 steps)::

        rho = 0.3 s / (h_lo h_hi),   lam = s / h_hi,   c = h_hi / (s + lam h_hi + rho h_hi^2)

    Why: along an eigenvector of H_vv g with curvature h, the multiplier error shrinks by a factor
    1 - beta rho h^2 / (s + lam h + rho h^2) per iteration (v at its minimizer), and h_l's curvature there is
    s + lam h + rho h^2. This rho makes the multiplier converge at about 0.3 beta h / h_hi per iteration while
    h_l stays as well conditioned as g; c gives h_l g's top curvature, so a learning rate chosen for g (plain
    SGD included) suits the lower steps; the damped step beta keeps the multiplier slower than v (whose
    optimizer may carry momentum over ~10 steps) and u; and the u step and the multiplier read v at the mean of
    the T inner iterates (``average_lower``: an optimizer that circles v's minimizer, such as RMSprop or Adam at
    a large learning rate, would otherwise feed its circling into both; v itself goes on from its last iterate,
    so the lower optimizer's trajectory is untouched). rho, lam and beta are measured on the generated problem
    families of ``benchmarks/robustness.py`` (all optimizer pairs a user types, T = 1-20); learning rates are
    never touched; no tolerance test fires (eps = 0).

    Its constants are :class:`~bilevel_tf.PenaltySchedule`'s defaults.
    """
    return _preset("balanced", overrides)


def auglag(**overrides: Any) -> "PenaltySchedule":
    """The previous default: a full multiplier step every iteration, rho and lam from three curvature products.

    beta = 1, no lower scale or averaging; rho and lam from three Hessian-vector products along w = grad_v f
    (``calibration="curvature"``): rho = ||H_f w|| / ||H_g H_g w||, lam = 0.1 ||H_f w|| / ||H_g w||.
    """
    return _preset("auglag", overrides, **_BEFORE_BALANCED)


def original(**overrides: Any) -> "PenaltySchedule":
    """What the code behind the paper's tables does: hammlab/bilevel-penalty's bilevel_penalty_aug_lag.py.

    When ``(||grad_u h_u||^2)^2 + (||grad_v h_l||^2)^2 < eps^2`` (the original squares the already-squared
    norms): rho <- 1.1 rho, lam <- 0.9 lam, eps <- 0.9 eps, nu <- nu + rho grad_v g with the *new* rho, and both
    learning rates x0.9. rho, lam, eps start at 1, 10, 1.
    """
    return _preset("original", overrides, **_BEFORE_BALANCED, **_ORIGINAL_CODE)


def paper(**overrides: Any) -> "PenaltySchedule":
    """The paper's Algorithm 2 as printed.

    The test is ``||grad_u h_u||^2 + ||grad_v h_l||^2 < eps^2``, nu moves with the old rho, no learning-rate
    decay; otherwise as :func:`original`.
    """
    return _preset("paper", overrides, **_BEFORE_BALANCED, **dict(_ORIGINAL_CODE, **_AS_PRINTED))


#: every named schedule: name -> factory (the names are the functions' names)
SCHEDULES: Dict[str, Callable[..., "PenaltySchedule"]] = {f.__name__: f for f in (balanced, auglag, original, paper)}
#: the schedule ``bl.Penalty`` runs when none is named
DEFAULT_SCHEDULE = balanced.__name__


def get(schedule: Any, **overrides: Any) -> "PenaltySchedule":
    """``schedule`` (a name of :data:`SCHEDULES` or a :class:`~bilevel_tf.PenaltySchedule`) with ``overrides``
    (constants by field name) applied; ValueError naming the argument otherwise."""
    from .penalty_schedule import PenaltySchedule

    if isinstance(schedule, PenaltySchedule):
        return schedule.replace(**overrides)
    if not (isinstance(schedule, str) and schedule in SCHEDULES):
        raise ValueError(f"schedule must be one of {list(SCHEDULES)} or a bl.PenaltySchedule, got {schedule!r}")
    return SCHEDULES[schedule](**overrides)


def summary(name: str) -> str:
    """The first line of a named schedule's description (the runners' ``--schedule`` help)."""
    text = " ".join((SCHEDULES[name].__doc__ or "").split("\n\n")[0].split()).rstrip(".")
    return text[:1].lower() + text[1:]

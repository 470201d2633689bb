"""The poisoning runners' constants blocks and flags, without TensorFlow: a runner parses its flags (and
answers ``--help``) before the attack modules load."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Sequence, Tuple

from bilevel_tf.runner import console, experiment
from bilevel_tf.runner.flag_types import finite_float, int_range, nonnegative_float, positive_float
from bilevel_tf.solvers import registry

from .data import DATASETS

#: per method: ``bl.make_solver``'s options from the attack's settings (lr_u, lr_v, lr_p, rho, lam, eps, nu,
#: sigma), with the original's optimizers: Adam at both levels (Penalty, ApproxGrad with an Adam linear solver,
#: at lr_v unless lr_p is given); RMD unrolls plain SGD at the lower level and takes Adam steps on the poison.
#: Learning rates are the slots' default classes (Adam; plain SGD at both RMD levels, hence its config dict).
SOLVER_OPTIONS: Dict[str, Callable[[Any], Dict[str, Any]]] = {
    "penalty": lambda s: dict(
        upper_optimizer=s.lr_u, lower_optimizer=s.lr_v, schedule="original", rho=s.rho, lam=s.lam, eps=s.eps, nu=s.nu
    ),
    "approxgrad": lambda s: dict(
        upper_optimizer=s.lr_u, lower_optimizer=s.lr_v, linear_optimizer=s.lr_p or s.lr_v, sigma=s.sigma
    ),
    "rmd": lambda s: dict(
        upper_optimizer={"class_name": "Adam", "config": {"learning_rate": s.lr_u}}, lower_optimizer=s.lr_v
    ),
}
#: the attacks' methods: those of the table above
METHODS = registry.covered(SOLVER_OPTIONS)

FEATURES_FILE = "dogfish_inception_features.h5"
SMOKE_IMAGES = 8  # --smoke: both clean-label scripts use the first 8 training and test images


def add_solver_flags(p, d) -> None:
    """--rho --lam --eps --nu (Penalty) and --sigma (ApproxGrad), defaults from a runner's constants."""
    p.add_argument(
        "--rho", type=nonnegative_float, default=d.rho, help="Penalty: initial penalty weight (paper gamma_0)"
    )
    p.add_argument(
        "--lam",
        type=nonnegative_float,
        default=d.lam,
        help="Penalty: initial weight of g in the lower objective (lambda_0)",
    )
    p.add_argument("--eps", type=nonnegative_float, default=d.eps, help="Penalty: initial tolerance (epsilon_0)")
    p.add_argument("--nu", type=finite_float, default=d.nu, help="Penalty: initial multiplier (nu_0)")
    p.add_argument("--sigma", type=nonnegative_float, default=d.sigma, help="ApproxGrad: Hessian regularizer")


def add_network_flags(p) -> None:
    p.add_argument(
        "--weights",
        default=None,
        help="InceptionV3 weights file (.h5); default: the ImageNet notop file in the Keras cache "
        "(~/.keras/models), never downloaded",
    )
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="random InceptionV3 weights (tests and smoke runs only; features are meaningless)",
    )


@dataclass(frozen=True)
class AttackDefaults:
    """The constants block of a data-augmentation runner (the paper's / original's knobs)."""

    num_poison: Mapping[str, int]  # dataset -> number of poison points
    splits: Mapping[str, Tuple[int, int, int]]  # dataset (and "smoke") -> (train, val, test)
    learning_rates: Mapping[str, Mapping[str, float]]  # method -> lr_u, lr_v (, lr_p)
    rho: float
    lam: float
    eps: float
    nu: float
    sigma: float
    halve_every: int
    full_epochs: int
    pretrain_lr: float
    weight_decay: float
    smoke: Mapping[str, int] = field(
        default_factory=lambda: dict(num_poison=6, epochs=3, inner_steps=2, full_epochs=100)
    )


def add_attack_flags(p, d: AttackDefaults) -> None:
    experiment.add_fit_flags(p, strategy=False)  # a full-batch attack: nothing to split across replicas
    lrs = "; ".join(f"{m}: " + ", ".join(f"{k}={v:g}" for k, v in lr.items()) for m, lr in d.learning_rates.items())
    p.add_argument(
        "--dataset",
        default="mnist",
        choices=list(DATASETS),
        help="mnist (the paper's; keras cache, never downloaded) or digits (bundled 8x8, offline demo)",
    )
    p.add_argument(
        "--num-poison",
        type=int_range(1),
        default=None,
        help="number of poison points added to the training set (default per dataset: "
        + ", ".join(f"{k} {v}" for k, v in d.num_poison.items())
        + ")",
    )
    for i, name in enumerate(("train", "val", "test")):
        p.add_argument(
            f"--{name}-points",
            type=int_range(1),
            default=None,
            help=f"{name} subset size (default per dataset: "
            + ", ".join(f"{k} {v[i]}" for k, v in d.splits.items())
            + ")",
        )
    p.add_argument(
        "--full-epochs",
        type=int_range(0),
        default=d.full_epochs,
        help="full-batch Adam steps to pre-train the clean model and to retrain on clean + poison",
    )
    p.add_argument(
        "--pretrain-lr", type=positive_float, default=d.pretrain_lr, help="Adam learning rate of (re)training"
    )
    p.add_argument(
        "--weight-decay",
        type=nonnegative_float,
        default=d.weight_decay,
        help="coefficient of ||W||^2 in the lower loss (original: 0.5*0.01*l2_loss = 0.0025; the paper says 0.05)",
    )
    p.add_argument(
        "--lr-u", type=positive_float, default=None, help=f"upper (poison) learning rate; default per method ({lrs})"
    )
    p.add_argument(
        "--lr-v", type=positive_float, default=None, help="lower (classifier) learning rate (default per method)"
    )
    p.add_argument(
        "--lr-p", type=positive_float, default=None, help="ApproxGrad linear-system learning rate (per method)"
    )
    add_solver_flags(p, d)
    p.add_argument(
        "--halve-every",
        type=int_range(0),
        default=d.halve_every,
        help="ApproxGrad: halve lr_u and lr_v every N upper iterations (0: never)",
    )
    p.add_argument(
        "--log-every", type=int_range(1), default=10, help="keep one history record every N upper iterations"
    )


def resolve_attack_args(args, d: AttackDefaults) -> None:
    """Fill per-dataset and per-method defaults and apply --smoke sizes (in place; one line names what --smoke
    changed)."""
    if args.num_poison is None:
        args.num_poison = d.num_poison[args.dataset]
    sizes = ("train_points", "val_points", "test_points")
    before = {**vars(args), **{n: getattr(args, n) or v for n, v in zip(sizes, d.splits[args.dataset])}}
    split = d.splits["smoke" if args.smoke else args.dataset]
    for name, value in zip(sizes, split):
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name, value in d.learning_rates[args.method].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.smoke:
        for name, value in d.smoke.items():
            setattr(args, name, min(getattr(args, name), value))
        args.checkpoint_every = min(args.checkpoint_every, args.epochs)
        console.report_overrides(args, before, "--smoke", names=list(sizes) + list(d.smoke) + ["checkpoint_every"])


@dataclass(frozen=True)
class CleanLabelDefaults:
    """The constants block of the clean-label runner (paper supp. E.4 / the original)."""

    radii: Sequence[float]
    learning_rates: Mapping[str, float]  # lr_u, lr_v (, lr_p)
    rho: float
    lam: float
    eps: float
    nu: float
    sigma: float
    beta: float
    full_epochs: int
    retrain_lr: float
    baseline_steps: int
    baseline_beta: float
    baseline_lr: float
    pgd_steps: int
    num_targets: int
    smoke: Mapping[str, Any] = field(
        default_factory=lambda: dict(
            epochs=3, inner_steps=2, radii=(1.0, 2.0), num_targets=2, baseline_steps=3, full_epochs=50, pgd_steps=2
        )
    )


def _floats(text: str) -> Tuple[float, ...]:
    return tuple(float(t) for t in str(text).split(",") if t.strip())


def add_clean_label_flags(p, d: CleanLabelDefaults) -> None:
    add_network_flags(p)
    p.add_argument(
        "--features",
        default=None,
        help=f"HDF5 features from extract_inception_features.py (default: <data-dir>/{FEATURES_FILE})",
    )
    p.add_argument(
        "--radii",
        type=_floats,
        default=tuple(d.radii),
        help="comma-separated L2 radii eps searched in increasing order for each target",
    )
    p.add_argument(
        "--num-targets",
        type=int_range(0),
        default=d.num_targets,
        help="attack the first N correctly classified test images (0: all of them)",
    )
    for name, value in d.learning_rates.items():
        p.add_argument(
            f"--{name.replace('_', '-')}",
            type=positive_float,
            default=value,
            help={
                "lr_u": "Adam learning rate of the poison image",
                "lr_v": "lower-level learning rate",
                "lr_p": "ApproxGrad linear-system learning rate",
            }[name],
        )
    add_solver_flags(p, d)
    p.add_argument(
        "--beta",
        type=nonnegative_float,
        default=d.beta,
        help="weight of ||u - base||^2 in the upper loss (paper 0: the eps-ball instead; original 0.01)",
    )
    _add_clean_label_evaluation_flags(p, d)


def _add_clean_label_evaluation_flags(p, d: CleanLabelDefaults) -> None:
    """How an attack is judged: the softmax layer retrained on the poisoned set, the feature-collision baseline
    and the evasion reference it is compared with, and the figure."""
    p.add_argument(
        "--full-epochs",
        type=int_range(0),
        default=d.full_epochs,
        help="full-batch RMSProp steps training the softmax layer (clean, and after each poisoning)",
    )
    p.add_argument(
        "--retrain-lr", type=positive_float, default=d.retrain_lr, help="RMSProp learning rate of that training"
    )
    p.add_argument(
        "--baseline-steps",
        type=int_range(0),
        default=d.baseline_steps,
        help="iterations of the Shafahi et al. feature-collision baseline (0: skip it)",
    )
    p.add_argument(
        "--baseline-beta", type=nonnegative_float, default=d.baseline_beta, help="baseline proximity weight beta"
    )
    p.add_argument("--baseline-lr", type=positive_float, default=d.baseline_lr, help="baseline step size lambda")
    p.add_argument(
        "--pgd-steps",
        type=int_range(0),
        default=d.pgd_steps,
        help="cleverhans L2 PGD steps of the test-time evasion reference on each target (0: skip it)",
    )
    p.add_argument("--figure-targets", type=int_range(0), default=10, help="targets shown in the image rows")


def resolve_clean_label_args(args, d: CleanLabelDefaults) -> None:
    """Apply the --smoke sizes (in place; one line names what they changed) and check the radii."""
    before = dict(vars(args))
    if args.smoke:
        for name, value in d.smoke.items():
            current = getattr(args, name)
            if name == "radii":
                value = tuple(r for r in current if r <= max(value)) or tuple(value)
            elif not (name == "num_targets" and not current):  # 0 = all targets: take the smoke count
                value = min(current, value)
            setattr(args, name, value)
    if args.smoke and not args.weights and not args.data_dir:  # offline smoke: generated images, random weights
        args.random_weights = True
    if args.smoke:
        console.report_overrides(args, before, "--smoke")
    if not args.radii or min(args.radii) <= 0:
        raise ValueError(f"--radii must list positive numbers, got {args.radii}")

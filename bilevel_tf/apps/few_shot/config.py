"""What a few-shot runner needs before TensorFlow loads: its flags (parsed, and ``--help`` answered, at once)
and the containers its data loader fills. The experiment itself is :mod:`bilevel_tf.apps.few_shot.meta_learning`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ...runner import console, experiment, run_folder
from ...runner.flag_types import finite_float, float_range, nonnegative_float, positive_float
from ...datasets import EpisodeSampler, load_digits, rotate_classes
from ...solvers import registry

ADAM_EPSILON = 1e-8  # tf.train.AdamOptimizer's default, used by every optimizer of the original


def _adam(rate: float) -> Dict:
    """The original's optimizer (Adam with TF1's epsilon), as a Keras config ``bl.make_solver`` builds."""
    return {"class_name": "Adam", "config": {"learning_rate": rate, "epsilon": ADAM_EPSILON}}


#: per method: ``bl.make_solver``'s options from the flags, the original's few-shot settings (Adam everywhere,
#: T lower steps; Penalty: the original schedule's factors)
SOLVER_OPTIONS: Dict[str, Callable[[argparse.Namespace], Dict]] = {
    "penalty": lambda args: dict(
        upper_optimizer=_adam(args.lr_u),
        lower_optimizer=_adam(args.lr_v),
        schedule="original",
        rho=args.rho,
        lam=args.lam,
        eps=args.eps,
        nu=args.nu,
        c_rho=1.1,
        c_lam=0.9,
        c_eps=0.9,
        lr_decay=args.lr_decay,
    ),
    "approxgrad": lambda args: dict(
        upper_optimizer=_adam(args.lr_u),
        lower_optimizer=_adam(args.lr_v),
        linear_steps=args.inner_steps,
        linear_optimizer=_adam(args.lr_p),
        sigma=args.sigma,
    ),
}
#: the methods the runners offer: those of the table above
METHODS = registry.covered(SOLVER_OPTIONS)


class Split(NamedTuple):
    """Images (N, H, W, C) (uint8 or float32), int labels (N,), and the classes tasks are drawn from."""

    images: np.ndarray
    labels: np.ndarray
    classes: np.ndarray


class FewShotData(NamedTuple):
    train: Split  # meta-train classes
    test: Split  # meta-test classes (disjoint)
    name: str

    @property
    def image_shape(self) -> Tuple[int, ...]:
        return tuple(self.train.images.shape[1:])


def rotated_digits(n_train_digits: int = 7, rotations: Sequence[int] = (0, 90, 180, 270)) -> FewShotData:
    """Offline few-shot data set: scikit-learn's 8x8 digits with each (digit, rotation) its own class.

    40 classes (id = digit * 4 + rotation index), ~180 images each, built like the Omniglot rotations.
    Digits 0..n_train_digits-1 (all rotations; 28 classes by default) are meta-train, the rest meta-test.
    """
    x, digit = load_digits()
    x, y = rotate_classes(x, digit, rotations)
    y = y.astype(np.int64)
    classes = np.unique(y)
    n_train = n_train_digits * len(rotations)
    if not 0 < n_train < len(classes):
        raise ValueError(f"n_train_digits={n_train_digits} must be in [1, 9]")
    return FewShotData(Split(x, y, classes[:n_train]), Split(x, y, classes[n_train:]), "digits")


@dataclass(frozen=True)
class FewShotDefaults:
    """A few-shot runner's constants block (the paper's / original's settings; fields named as the flags).
    ``meta_batch`` and ``meta_iterations`` are functions ``(n_way, k_shot, method) -> value`` resolved after
    parsing (the original picks them by N and K), described in ``--help`` by the two ``*_help`` texts."""

    n_way: int
    k_shot: int
    query: int
    inner_steps: int
    lr_u: float
    lr_v: float
    lr_p: float
    sigma: float
    rho: float
    lam: float
    eps: float
    nu: float
    lr_decay: float
    test_tasks: int
    test_steps: int
    test_lr: float
    eval_every: int
    meta_batch: Callable[[int, int, str], int]
    meta_iterations: Callable[[int, int, str], int]
    meta_batch_help: str
    meta_iterations_help: str


SMOKE = dict(
    n_way=5,
    k_shot=1,
    query=2,
    meta_batch=2,
    meta_iterations=4,
    inner_steps=2,
    test_tasks=4,
    eval_tasks=4,
    eval_every=2,
    test_steps=5,
    checkpoint_every=2,
)


def build_parser(
    description: str, defaults: "FewShotDefaults", datasets: Sequence[str], data_help: Optional[str] = None
) -> argparse.ArgumentParser:
    """The shared flags plus the few-shot knobs, their defaults from a runner's :class:`FewShotDefaults`."""
    helps = {"method": "bilevel solver: penalty (Mehra & Hamm) or approxgrad", "data_dir": data_help}
    p = experiment.parser(description, method="penalty", methods=METHODS, inner_steps=defaults.inner_steps, helps=helps)
    experiment.add_fit_flags(p, strategy=False)  # meta-batches come from Python callables, not split per replica
    _add_task_flags(p, defaults, datasets)
    _add_solver_flags(p, defaults)
    _add_evaluation_flags(p, defaults)
    return p


def _add_task_flags(p: argparse.ArgumentParser, defaults: "FewShotDefaults", datasets: Sequence[str]) -> None:
    """The tasks: their data set, N-way, K-shot, query size, and how many are learned from and for how long."""
    p.add_argument(
        "--dataset",
        default=datasets[0],
        choices=list(datasets),
        help="data set; 'digits' = scikit-learn's 8x8 digits x 4 rotations (offline demo, 28/12 classes)",
    )
    p.add_argument("--n-way", type=int, default=defaults.n_way, help="N: classes per task")
    p.add_argument("--k-shot", type=int, default=defaults.k_shot, help="K: support images per class")
    p.add_argument("--query", type=int, default=defaults.query, help="query images per class")
    p.add_argument(
        "--meta-batch", type=int, default=None, help=f"tasks per meta-iteration (default: {defaults.meta_batch_help})"
    )
    p.add_argument(
        "--meta-iterations",
        "--upper-iterations",
        "--epochs",
        dest="meta_iterations",
        type=int,
        default=None,
        help=f"upper iterations K (default: {defaults.meta_iterations_help}); --epochs: the original code's name",
    )


def _add_solver_flags(p: argparse.ArgumentParser, defaults: "FewShotDefaults") -> None:
    """The learning rates and the ApproxGrad and Penalty constants."""
    p.add_argument(
        "--lr-u", type=positive_float, default=defaults.lr_u, help="Adam learning rate of the representation"
    )
    p.add_argument("--lr-v", type=positive_float, default=defaults.lr_v, help="Adam learning rate of the task heads")
    p.add_argument(
        "--lr-p", type=positive_float, default=defaults.lr_p, help="ApproxGrad: Adam rate of the linear solve"
    )
    p.add_argument("--sigma", type=nonnegative_float, default=defaults.sigma, help="ApproxGrad: Hessian regularizer")
    p.add_argument(
        "--rho", type=nonnegative_float, default=defaults.rho, help="Penalty: initial penalty weight (paper gamma_0)"
    )
    p.add_argument("--lam", type=nonnegative_float, default=defaults.lam, help="Penalty: initial weight of g in h_l")
    p.add_argument("--eps", type=nonnegative_float, default=defaults.eps, help="Penalty: initial tolerance")
    p.add_argument("--nu", type=finite_float, default=defaults.nu, help="Penalty: initial multiplier entries")
    p.add_argument(
        "--lr-decay",
        type=float_range(0.0, 1.0),
        default=defaults.lr_decay,
        help="Penalty: learning-rate factor when the schedule fires (few-shot original: 0.99)",
    )


def _add_evaluation_flags(p: argparse.ArgumentParser, defaults: "FewShotDefaults") -> None:
    """The meta-test: how many tasks, how often, and how each task's head is trained."""
    p.add_argument(
        "--test-tasks",
        type=int,
        default=defaults.test_tasks,
        help="meta-test tasks for the final accuracy and its 95%% interval",
    )
    p.add_argument(
        "--eval-tasks",
        type=int,
        default=None,
        help="tasks per point of the accuracy-vs-time curves, on meta-train and on meta-test classes "
        "(default: --test-tasks)",
    )
    p.add_argument(
        "--eval-every", type=int, default=defaults.eval_every, help="evaluate the curves every N meta-iterations"
    )
    p.add_argument(
        "--eval-batch",
        type=int,
        default=None,
        help="tasks per compiled meta-test call (default: the meta-batch; does not change results)",
    )
    p.add_argument(
        "--test-steps",
        type=int,
        default=defaults.test_steps,
        help="Adam steps training each meta-test task's head on its support set",
    )
    p.add_argument("--test-lr", type=positive_float, default=defaults.test_lr, help="Adam rate of those steps")


def parse(
    p: argparse.ArgumentParser, argv: Optional[Sequence[str]], experiment_name: str, defaults: "FewShotDefaults"
) -> argparse.Namespace:
    """Parse and resolve the N-dependent defaults. ``--smoke`` sets the tiny sizes of :data:`SMOKE` for every knob
    not given as a flag, and names each value it replaces in one line (N and K edited in the constants block
    included)."""
    argv = experiment.offline_smoke_argv(argv)
    args = experiment.parse(p, argv, experiment_name)
    if args.smoke:
        given = console.given_flags(p, argv)
        before = vars(_resolve(argparse.Namespace(**vars(args)), defaults)).copy()
        for name, value in SMOKE.items():
            if name not in given:
                setattr(args, name, value)
        console.report_overrides(_resolve(args, defaults), before, "--smoke", names=SMOKE)
    _resolve(args, defaults)
    for name in (
        "n_way",
        "k_shot",
        "query",
        "meta_batch",
        "meta_iterations",
        "test_tasks",
        "eval_tasks",
        "eval_every",
        "eval_batch",
        "test_steps",
    ):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def _resolve(args: argparse.Namespace, defaults: "FewShotDefaults") -> argparse.Namespace:
    """Fill the defaults that depend on other flags (meta-batch and meta-iterations on N and K), in place."""
    if args.meta_batch is None:
        args.meta_batch = defaults.meta_batch(args.n_way, args.k_shot, args.method)
    if args.meta_iterations is None:
        args.meta_iterations = defaults.meta_iterations(args.n_way, args.k_shot, args.method)
    if args.eval_batch is None:
        args.eval_batch = args.meta_batch
    if args.eval_tasks is None:
        args.eval_tasks = args.test_tasks
    return args


def sampler(data: FewShotData, which: str, args: argparse.Namespace) -> EpisodeSampler:
    """Tasks of the meta-``which`` classes; a data set too small for N-way K-shot tasks is a usage error."""
    split = data.train if which == "train" else data.test
    if args.n_way > len(split.classes):
        raise experiment.UsageError(
            f"--n-way {args.n_way} is larger than the {len(split.classes)} meta-{which} "
            f"classes of the {data.name} data set"
        )
    present, counts = np.unique(split.labels, return_counts=True)
    smallest = int(counts[np.isin(present, split.classes)].min(initial=len(split.labels)))
    if args.k_shot + args.query > smallest:
        raise experiment.UsageError(
            f"--k-shot {args.k_shot} + --query {args.query} = {args.k_shot + args.query} "
            f"images per class, but the smallest meta-{which} class of the {data.name} "
            f"data set has {smallest}; expected at most {smallest}"
        )
    return EpisodeSampler(
        split.images, split.labels, split.classes, args.n_way, args.k_shot, args.query, seed=args.seed
    )


def run(args: argparse.Namespace, data: FewShotData, make_encoder: Callable[[Tuple[int, ...]], Any]) -> Dict:
    """Meta-train, evaluate and write the results (:func:`.meta_learning.run_in_folder`); the task
    sizes and the run folder are checked first, before TensorFlow loads. ``make_encoder(image_shape)`` builds
    the representation. Returns the metrics."""
    train_sampler, test_sampler = sampler(data, "train", args), sampler(data, "test", args)
    fingerprint = experiment.fingerprint(data.train.labels, data.test.labels, data.train.images[:64])

    def in_folder(run: run_folder.Run) -> Dict:
        from .meta_learning import run_in_folder  # TensorFlow loads here, after the folder's checks

        return run_in_folder(args, data, make_encoder, train_sampler, test_sampler, run)

    return run_folder.Run.once(args, in_folder, data=fingerprint)

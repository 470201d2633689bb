"""The importance-learning runners' configuration: the spec a runner fills in, its flags, the demo settings.

Nothing here imports TensorFlow, so a runner parses its flags (and answers ``--help``) at once; the
experiment itself (:mod:`bilevel_tf.apps.denoising.importance`) loads after parsing.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

from ...runner import console, experiment, run_folder
from ...runner.flag_types import float_range, int_range, positive_float
from ...solvers.penalty_schedules import DEFAULT_SCHEDULE
from . import data
from ...solvers import registry
from .data import NUM_CLASSES, Sizes


def _adam(rate: float) -> Dict[str, Any]:
    return {"class_name": "Adam", "config": {"learning_rate": rate}}


#: plain SGD step on the modern solvers' linear system H_vv g z = -grad_v f (0.1 and 0.01 both work on digits)
LINEAR_STEP = 0.01

#: per method: the solver options taken from a hyperparameter row's learning rates (the row's other keys, e.g.
#: PENALTY_SCHEDULE's, are solver options as they are). A rate is the slot's default class: Adam, and for RMD's
#: lower level the plain SGD steps it differentiates; the upper optimizer comes from --upper-optimizer.
SOLVER_OPTIONS: Dict[str, Callable[[Dict[str, Any]], Dict[str, Any]]] = {
    "penalty": lambda hp: dict(lower_optimizer=hp["lr_v"]),
    "approxgrad": lambda hp: dict(lower_optimizer=hp["lr_v"], linear_optimizer=hp["lr_p"]),
    "rmd": lambda hp: dict(lower_optimizer=hp["lr_v"]),
    "gd": lambda hp: dict(lower_optimizer=hp["lr_v"]),
    "implicit": lambda hp: dict(lower_optimizer=_adam(hp["lr_v"])),
    # the modern solvers: v and the lower-level copies (F2SA's y, BOME's w) take Adam at lr_v as the rows' other
    # methods; the linear system in z (SOBA, AmIGO) and StocBiO's Neumann series take plain steps of
    # LINEAR_STEP (Adam's per-coordinate scaling distorts z: the digits demo's ranking fell below the warm start)
    "soba": lambda hp: dict(lower_optimizer=_adam(hp["lr_v"]), linear_optimizer=LINEAR_STEP),
    "amigo": lambda hp: dict(lower_optimizer=_adam(hp["lr_v"]), linear_optimizer=LINEAR_STEP),
    "stocbio": lambda hp: dict(lower_optimizer=_adam(hp["lr_v"]), neumann_step=LINEAR_STEP),
    # a small fixed penalty weight: h multiplies the gap between the two copies, each tracked by T Adam steps on
    # mini-batches, by lam; at the defaults (10, growing to 300) that noise drowned h (digits demo below uniform)
    "f2sa": lambda hp: dict(
        lower_optimizer=_adam(hp["lr_v"]),
        penalty_optimizer=_adam(hp["lr_v"]),
        lam_init=3.0,
        lam_growth=0.0,
        lam_max=3.0,
    ),
    "bome": lambda hp: dict(lower_optimizer=_adam(hp["lr_v"]), inner_optimizer=_adam(hp["lr_v"])),
    # no SABA: its memory holds one lower gradient per training example (n x the network) and one H_uv g_i z
    # per example (n x n importances), and g = sum a_i CE_i / sum a_i is not a mean of per-example losses
}
#: methods without a row of their own take another's learning rates (lr_u, lr_v, pretrain_lr)
BORROWED_ROWS = {
    "implicit": "approxgrad",
    "soba": "approxgrad",
    "amigo": "approxgrad",
    "stocbio": "approxgrad",
    "f2sa": "approxgrad",
    "bome": "approxgrad",
}
#: the methods the runners offer: those of the table above
METHODS = registry.covered(SOLVER_OPTIONS)


@dataclass(frozen=True)
class DenoisingSpec:
    """Everything that differs between the denoising runners: each builds one from its constants block."""

    experiment: str  # results.json "experiment" and default output folder
    description: str  # --help text
    datasets: Dict[str, Sizes]  # data set name -> split sizes; the first is the default
    model: Union[str, Callable[..., Any]]  # the paper's classifier: a bilevel_tf.models factory name, or any
    # (input_shape, num_classes) -> logits model callable
    noise: float  # fraction of training labels flipped
    epochs: int  # passes over the training set in the bilevel phase
    inner_steps: int  # T
    batch_size: int
    pretrain_epochs: int  # warm start: passes over the validation set
    init_importance: Tuple[float, float]  # (disagree, agree) with the pre-trained prediction
    hyperparams: Dict[str, Dict[str, Any]]  # method -> lr_u, lr_v, [lr_p, halve_every, pretrain_lr], solver kwargs
    eval_epochs: float  # budget of every evaluation classifier, in passes over train + val
    eval_lr: float  # its Adam learning rate
    paper: str = ""  # the published numbers, for the reader (results.json's "paper" entry
    # comes from bilevel_tf.published.numbers, and only for the paper's data)
    augment: Optional[Dict[str, Any]] = None  # train/val augmentation (CIFAR-10); --no-augment turns it off
    augment_by_default: bool = True  # --augment's default (a data set's override may turn it off)
    selection_threshold: Optional[float] = None  # retrain on {a > threshold} + val instead of weighting
    overrides: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # per data set: fields to replace
    default_data_dir: Optional[str] = None
    default_model: str = "paper"  # --model default: "paper" (the field above) or a key of SMALL_MODELS
    schedule: str = "original"  # --schedule default (Penalty): the paper's runs use the original's

    def classifier(self, name: str, input_shape: Tuple[int, ...]):
        """A fresh Keras classifier: the paper's (``name == "paper"``) or one of :data:`SMALL_MODELS`."""
        from ... import models  # Keras loads here, after the flags are parsed

        if name != "paper":
            factory, options = SMALL_MODELS[name]
            return getattr(models, factory)(input_shape, num_classes=NUM_CLASSES, **options)
        factory = getattr(models, self.model) if isinstance(self.model, str) else self.model
        return factory(input_shape, NUM_CLASSES)

    def for_dataset(self, name: str) -> "DenoisingSpec":
        """The spec with the data set's overrides applied (hyperparameter rows are merged per method)."""
        changes = dict(self.overrides.get(name, {}))
        rows = changes.pop("hyperparams", {})
        merged = {m: {**row, **rows.get(m, {})} for m, row in self.hyperparams.items()}
        return dataclasses.replace(self, hyperparams=merged, **changes)


#: the schedule every original Penalty runner shares: rho_0 = lamb_0 = eps_0 = 1e-2, c_rho/c_lamb/c_eps =
#: 1.1/0.9/0.9, both learning rates x0.9 when the schedule fires
PENALTY_SCHEDULE = dict(
    schedule="original", rho=1e-2, lam=1e-2, eps=1e-2, c_rho=1.1, c_lam=0.9, c_eps=0.9, lr_decay=0.9
)
#: the original ApproxGrad runners: sigma = 1e-3, lr_u and lr_v halved every 20 epochs
APPROXGRAD_SCHEDULE = dict(sigma=1e-3, halve_every=20)

#: small classifiers for the offline demo (--model): the paper's CNNs on 8x8 inputs cost as much per image as
#: on 28x28 ones (their 5x5 / 3x3 convolutions run on padded maps) and do not fit a one-minute CPU demo
SMALL_MODELS: Dict[str, Tuple[str, Dict[str, Any]]] = {  # --model name -> (models factory, its options)
    "mlp": ("mlp", dict(hidden=(256,), activation="relu")),
    "logistic": ("logistic_regression", {}),
}

#: the offline demo on scikit-learn's 8x8 digits (1000 train / 200 clean val / 597 test) for the CNN runners:
#: the MLP above, batch 200 (5 upper iterations per epoch), 20 epochs, T = 20. The paper's learning rates are
#: tuned for ~300 batches per epoch over 100+ epochs, so the demo takes larger lower-level steps; its
#: evaluation classifiers train long enough (100 epochs, Adam 3e-3) for uniform weights to memorise the noise.
#: the Penalty upper learning rate the paper's schedules keep in the digits demos
PAPER_SCHEDULE_LR_U = {"original": dict(lr_u=1.0), "paper": dict(lr_u=1.0)}
DIGITS_DEMO = dict(
    default_model="mlp",
    epochs=20,
    batch_size=200,
    pretrain_epochs=50,
    eval_epochs=100,
    eval_lr=3e-3,
    inner_steps=20,
    schedule=DEFAULT_SCHEDULE,
    # the library's schedules take graded steps of 0.3 on the atanh logits (a first per-example step of 1
    # already moves a from 0.5 to 0.88); --schedule original/paper keep the first demo's lr_u = 1
    hyperparams=dict(
        penalty=dict(lr_u=0.3, lr_v=3e-3, pretrain_lr=1e-3, by_schedule=PAPER_SCHEDULE_LR_U),
        approxgrad=dict(lr_u=0.3, lr_v=1e-3, lr_p=1e-3, halve_every=None, pretrain_lr=1e-3),
        rmd=dict(lr_u=1.0, lr_v=0.1, pretrain_lr=1e-3),
        gd=dict(lr_u=1.0, lr_v=1e-3, pretrain_lr=1e-3),
    ),
)
DIGITS_SIZES = Sizes(1000, 200, 597)


def build_parser(spec: DenoisingSpec) -> argparse.ArgumentParser:
    helps = {
        "epochs": "passes over the training set in the bilevel phase",
        "out": "output folder (default: runs/<experiment>/<dataset>/<method>)",
        "method": "bilevel solver: penalty (Mehra & Hamm), approxgrad, rmd (reverse-mode unrolling), gd "
        "(naive alternation: never moves the importance, f does not depend on it directly), "
        "implicit (CG solves), soba, amigo, stocbio, f2sa, bome (all with ApproxGrad's learning rates)",
    }
    p = experiment.parser(
        spec.description,
        method="penalty",
        methods=METHODS,
        inner_steps=spec.inner_steps,
        epochs=spec.epochs,
        helps=helps,
    )
    _add_data_flags(p, spec)
    experiment.add_schedule_flag(p, spec.schedule)
    experiment.add_fit_flags(p)
    _add_phase_flags(p, spec)
    _add_variant_flags(p, spec)
    return p


def _add_data_flags(p: argparse.ArgumentParser, spec: DenoisingSpec) -> None:
    """What is learned from: the data set, the classifier, the label noise, the batch size."""
    names = list(spec.datasets)
    p.add_argument(
        "--dataset",
        default=names[0],
        choices=names,
        help="data set: the paper's by default; 'digits' = scikit-learn's bundled 8x8 digits "
        "(offline demo, with its own smaller schedule)",
    )
    p.add_argument(
        "--model",
        default=spec.default_model,
        choices=["paper"] + list(SMALL_MODELS),
        help="classifier: 'paper' = the original's network, or a small one (digits demo default)",
    )
    p.add_argument(
        "--noise",
        type=float_range(0.0, 1.0, include_maximum=False),
        default=spec.noise,
        help="fraction of training labels flipped",
    )
    p.add_argument(
        "--batch-size", type=int_range(1), default=spec.batch_size, help="training and validation batch size"
    )


def _add_phase_flags(p: argparse.ArgumentParser, spec: DenoisingSpec) -> None:
    """The learning rates of the bilevel phase, the warm start before it and the evaluations after it."""
    p.add_argument("--lr-u", type=positive_float, default=None, help="upper (importance) learning rate; default: table")
    p.add_argument("--lr-v", type=positive_float, default=None, help="lower (classifier) learning rate; default: table")
    p.add_argument(
        "--pretrain-epochs",
        type=int_range(0),
        default=spec.pretrain_epochs,
        help="warm start: epochs of training on the validation set",
    )
    p.add_argument(
        "--eval-epochs",
        type=float_range(0.0),
        default=spec.eval_epochs,
        help="budget of each evaluation classifier, in passes over train + val",
    )
    p.add_argument(
        "--eval-every",
        type=int_range(1),
        default=1,
        help="epochs between accuracy evaluations of the lower-level network (accuracy_vs_time.png)",
    )
    p.add_argument(
        "--baselines",
        action="store_true",
        help="also train the Oracle (clean train + val), Val-only and Train+Val classifiers",
    )


def _add_variant_flags(p: argparse.ArgumentParser, spec: DenoisingSpec) -> None:
    """How the bilevel phase runs: its upper optimizer, dropout, augmentation, synthetic data and length."""
    p.add_argument(
        "--upper-optimizer",
        default="per_example_adam",
        choices=["per_example_adam", "adam"],
        help="Adam with per-example moments (default) or Keras' Adam (moments of all entries decay every step)",
    )
    p.add_argument(
        "--dropout",
        action="store_true",
        help="run the classifier's dropout in the bilevel losses (the original never enabled "
        "Keras' learning phase, so its dropout was off)",
    )
    if spec.augment is not None:
        p.add_argument(
            "--augment",
            action=argparse.BooleanOptionalAction,
            default=spec.augment_by_default,
            help="augment training and validation batches as the original (rotation 40, shifts "
            "0.2, zoom 0.2, horizontal flip)",
        )
    p.add_argument(
        "--synthetic-data",
        action="store_true",
        help="random arrays of the real data's shape (timing at the paper's size without the files)",
    )
    p.add_argument(
        "--upper-iterations",
        "--max-steps",
        dest="max_steps",
        type=int_range(0),
        default=None,
        help="K: upper iterations of the bilevel phase, instead of --epochs passes over the training set "
        "(default: epochs x training batches per epoch); --max-steps: its former name",
    )


#: the DenoisingSpec fields a data set's ``overrides`` may replace -> the flag that shows (and sets) each
_FLAG_OF_FIELD = {
    "epochs": "epochs",
    "inner_steps": "inner_steps",
    "batch_size": "batch_size",
    "pretrain_epochs": "pretrain_epochs",
    "eval_epochs": "eval_epochs",
    "eval_lr": "eval_lr",
    "schedule": "schedule",
    "default_model": "model",
}


def parse(spec: DenoisingSpec, argv: Optional[Sequence[str]]) -> Tuple[argparse.Namespace, DenoisingSpec]:
    """Flags -> (args, the spec for the chosen data set with the flags' overrides applied)."""
    argv = experiment.offline_smoke_argv(argv)
    pre, _ = build_parser(spec).parse_known_args(argv)
    block, spec = spec, spec.for_dataset(pre.dataset)
    p = build_parser(spec)  # defaults (epochs, T, batch size, ...) of the chosen data set
    if pre.out is None:  # one folder per data set, so a digits demo never resumes into a paper run
        argv += ["--out", os.path.join("runs", spec.experiment.replace("/", "_"), pre.dataset, pre.method)]
    args = experiment.parse(p, argv, spec.experiment)
    _report_dataset_settings(args, block, spec, console.given_flags(p, argv))
    if args.smoke:  # tiny sizes (see load_splits) and a few steps
        before = dict(vars(args))
        args.epochs, args.inner_steps = min(args.epochs, 2), min(args.inner_steps, 2)
        args.batch_size, args.pretrain_epochs, args.eval_epochs = min(args.batch_size, 25), 1, 1
        console.report_overrides(args, before, "--smoke")
    spec = dataclasses.replace(
        spec, batch_size=args.batch_size, pretrain_epochs=args.pretrain_epochs, eval_epochs=args.eval_epochs
    )
    return args, spec


def _report_dataset_settings(
    args: argparse.Namespace, block: DenoisingSpec, spec: DenoisingSpec, given: Sequence[str]
) -> None:
    """One line when the data set's own settings (e.g. the digits demo's) replace values of the runner's
    constants block that no flag set."""
    overrides = block.overrides.get(args.dataset, {})
    fields = [f for f in overrides if f in _FLAG_OF_FIELD and _FLAG_OF_FIELD[f] not in given]
    before = {_FLAG_OF_FIELD[f]: getattr(block, f) for f in fields}
    after = argparse.Namespace(
        experiment=args.experiment, verbose=args.verbose, **{_FLAG_OF_FIELD[f]: getattr(spec, f) for f in fields}
    )
    table = " (and its learning-rate table)" if "hyperparams" in overrides else ""
    console.report_overrides(after, before, f"--dataset {args.dataset}{table}")


def load_splits(spec: DenoisingSpec, args: argparse.Namespace) -> data.Splits:
    """The data of the chosen data set (numpy only: a missing or damaged file is reported before TensorFlow
    loads), shrunk under --smoke, with --batch-size checked against it."""
    sizes = spec.datasets[args.dataset]
    if args.synthetic_data:
        splits = data.synthetic_splits(args.dataset, sizes, args.seed)
    else:
        splits = data.load_splits(
            args.dataset, sizes, data_dir=args.data_dir, seed=args.seed, svhn_dir=spec.default_data_dir
        )
    if args.smoke:
        splits = data.shrink(splits, 100, 50, 100)
    for split, n in (("training", len(splits.x_train)), ("validation", len(splits.x_val))):
        if args.batch_size > n:  # checked before the warm start, which would take a while to fail
            raise experiment.UsageError(
                f"--batch-size {args.batch_size} is larger than the {n} {split} examples "
                f"of {splits.source}; expected at most {n}"
            )
    return splits


def run_denoising(argv: Optional[Sequence[str]], spec: DenoisingSpec) -> Dict[str, Any]:
    """The whole experiment for one runner; returns the metrics (results.json has everything). The flags, the
    data files and the run folder are checked before TensorFlow loads."""
    args, spec = parse(spec, argv)
    strategy = experiment.make_strategy(args)  # None without loading TensorFlow for --strategy none
    chief = True
    if strategy is not None:  # only the chief writes the shared folder; the others read it
        from ...training import workers

        chief = workers.is_chief(strategy)
    splits = load_splits(spec, args)  # before the run folder is touched: missing data loses no checkpoint (--fresh)
    data_fingerprint = experiment.fingerprint(splits.y_train, splits.y_val, splits.x_train[:256], splits.x_val[:256])

    def in_folder(run: run_folder.Run) -> Dict[str, Any]:
        from .run import run_in_folder  # TensorFlow loads here, after the folder's checks

        return run_in_folder(args, spec, splits, run, strategy)

    return run_folder.Run.once(args, in_folder, chief=chief, data=data_fingerprint)

"""The hyper-cleaning runner's flags (PBGD's names) and per-(method, net) defaults, without TensorFlow: the
runner parses them (and answers ``--help``) before :mod:`bilevel_tf.apps.denoising.hyper_cleaning` loads."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from ...runner import console, experiment, run_folder
from ... import datasets
from ...runner.flag_types import float_range, int_range, nonnegative_float
from ...solvers import penalty_schedules, registry
from .data import NUM_CLASSES

Split = Tuple[np.ndarray, np.ndarray]


def _gamma(args: argparse.Namespace) -> Dict[str, Any]:
    return dict(gamma_init=args.gamma_init, gamma_max=args.gamma_max, gamma_argmax_step=args.gamma_argmax_step)


#: the modern solvers the runner offers, with one shared row of defaults (the runner's MODERN)
MODERN_METHODS = ("soba", "saba", "amigo", "stocbio", "f2sa", "bome")
#: per method: ``bl.make_solver``'s options from the flags and the runner's Penalty constants (used with
#: --schedule original). Learning rates are the slots' default classes: plain SGD for the PBGD solvers and RHG
#: (PBGD's optimizers), Adam for Penalty.
SOLVER_OPTIONS: Dict[str, Callable[[argparse.Namespace, Dict[str, Any]], Dict[str, Any]]] = {
    "vpbgd": lambda args, _: dict(
        upper_optimizer=args.lrx,
        lower_optimizer=args.lry,
        inner_optimizer=args.lr_inner,
        inner_steps=args.inner_itr,
        **_gamma(args),
    ),
    "gpbgd": lambda args, _: dict(upper_optimizer=args.lrx, lower_optimizer=args.lry, **_gamma(args)),
    # K < T: truncated (T-RHG)
    "rhg": lambda args, _: dict(
        upper_optimizer=args.lrx, lower_optimizer=args.lr_inner, inner_steps=args.T, truncation=min(args.K, args.T)
    ),
    "penalty": lambda args, penalty: dict(
        penalty if args.schedule == "original" else {},
        schedule=args.schedule,
        upper_optimizer=args.lrx,
        lower_optimizer=args.lry,
        inner_steps=args.inner_itr,
    ),
    # the modern solvers with their own plain SGD steps (lrx for x, lry for y and their lower-level slots:
    # the linear-system direction, F2SA's copy, BOME's copy; StocBiO's Neumann step) and inner_itr lower steps
    **{
        method: (lambda args, _: dict(upper_optimizer=args.lrx, lower_optimizer=args.lry, inner_steps=args.inner_itr))
        for method in MODERN_METHODS
    },
}
#: the methods the runner offers: those of the table above
METHODS = registry.covered(SOLVER_OPTIONS)

SIZES = {"MNIST": (5000, 5000, 10000), "FashionMNIST": (5000, 5000, 10000), "digits": (1000, 200, 597)}


def add_flags(p: argparse.ArgumentParser, table: Optional[Dict[Tuple[str, str], Dict[str, Any]]] = None) -> None:
    """PBGD's flags (underscored, as its scripts); None = the method's default from the runner's table."""
    count = int_range(1)
    experiment.add_fit_flags(p, strategy=False)  # full batch: nothing to split across replicas
    p.add_argument(
        "--dataset",
        default="MNIST",
        choices=list(SIZES),
        help="MNIST / FashionMNIST (keras cache files) or the bundled 8x8 digits (offline)",
    )
    p.add_argument("--net", default="linear", choices=["linear", "MLP"], help="784-10 or 784-300(sigmoid)-10")
    p.add_argument(
        "--pollute_rate",
        type=float_range(0.0, 1.0, include_maximum=False),
        default=None,
        help="fraction of training labels redrawn",
    )
    p.add_argument(
        "--reg",
        type=nonnegative_float,
        default=None,
        help="weight of sum ||w||^2 in the lower loss (default: per method, see the table)",
    )
    step = nonnegative_float  # 0 for the step sizes a method does not use (see the table)
    for flag, kind, what in [
        ("--lrx", step, "step size of x (upper)"),
        ("--lry", step, "step size of y (net)"),
        ("--lr_inner", step, "step size of the inner loop (V-PBGD copy, RHG unrolled SGD)"),
        ("--gamma_init", step, "initial penalty (PBGD)"),
        ("--gamma_max", step, "max penalty"),
        ("--gamma_argmax_step", count, "steps until gamma_max"),
        ("--outer_itr", count, "upper iterations K"),
        ("--inner_itr", count, "inner steps (V-PBGD, Penalty)"),
        ("--T", count, "RHG: unrolled inner steps"),
        ("--K", count, "RHG: truncation (K < T: T-RHG)"),
    ]:
        key = flag[2:]
        per_method = ", ".join(f"{m} {v[key]}" for (m, net), v in (table or {}).items() if net == "linear" and key in v)
        names = [flag] + ([flag.replace("_", "-")] if "_" in flag else [])  # PBGD's names and hyphenated ones
        if key == "outer_itr":  # the name the other runners give the same count
            names.append("--upper-iterations")
        p.add_argument(
            *names,
            dest=key,
            type=kind,
            default=None,
            help=what + (f" (default for the linear net: {per_method}; MLP rows may differ)" if per_method else ""),
        )
    p.add_argument("--eval_every", type=count, default=10, help="evaluate (test accuracy, F1) every N steps")
    experiment.add_schedule_flag(p, penalty_schedules.DEFAULT_SCHEDULE)


def apply_defaults(args: argparse.Namespace, table: Dict[Tuple[str, str], Dict[str, Any]]) -> None:
    defaults = dict(reg=0.0)
    defaults.update(table[(args.method, "linear")])
    defaults.update(table.get((args.method, args.net), {}))
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.smoke:
        before = dict(vars(args))
        args.outer_itr, args.T, args.K = min(args.outer_itr, 20), min(args.T, 5), min(args.K, 5)
        args.inner_itr, args.eval_every = min(args.inner_itr, 2), min(args.eval_every, 5)
        args.gamma_argmax_step = min(args.gamma_argmax_step, 10)
        console.report_overrides(args, before, "--smoke")


@dataclass(frozen=True)
class HyperCleaningConfig:
    """The hyper-cleaning runner's constants block: PBGD's defaults per (method, net), the pollution rate, the
    Penalty row's original-schedule constants and the uniform-weight baseline's (steps, SGD learning rate)."""

    defaults: Mapping[Tuple[str, str], Mapping[str, Any]]
    pollute_rate: float
    penalty: Mapping[str, Any]
    baseline: Tuple[int, float]


def parse(description: str, argv: Optional[Sequence[str]], config: HyperCleaningConfig) -> argparse.Namespace:
    p = experiment.parser(description, method="vpbgd", methods=METHODS, inner_steps=None, epochs=None, seed=2424)
    add_flags(p, config.defaults)
    argv = experiment.offline_smoke_argv(argv)
    pre, _ = p.parse_known_args(argv)
    if pre.out is None:  # one folder per data set and net, so runs never resume into each other
        argv += ["--out", os.path.join("runs", "data_denoising_hyper_cleaning", f"{pre.dataset}_{pre.net}", pre.method)]
    args = experiment.parse(p, argv, "data_denoising/hyper_cleaning")
    apply_defaults(args, config.defaults)
    if args.pollute_rate is None:
        args.pollute_rate = config.pollute_rate
    return args


def load_hyperclean_data(
    name: str, pollute_rate: float, seed: int, data_dir: Optional[str] = None
) -> Tuple[Split, Split, Split, np.ndarray, np.ndarray]:
    """(train with polluted labels, val, test, dirty mask, clean training labels): PBGD's split of the
    training set and its pollution."""
    if name == "synthetic":  # random images of MNIST's shape (timing runs without the files)
        rng = np.random.default_rng(seed)
        x, y = rng.integers(0, 256, (20000, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, 20000)
        name = "MNIST"
    elif name == "digits":
        x, y = datasets.load_digits()
    else:
        loader = datasets.load_mnist if name == "MNIST" else datasets.load_fashion_mnist
        (x, y), _ = loader(data_dir)
    n_tr, n_val, n_te = SIZES[name]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))[: n_tr + n_val + n_te]
    x = x[order].reshape(len(order), -1).astype(np.float32) / float(x.max())
    y = y[order].astype(np.int64)
    y_tr = y[:n_tr].copy()
    dirty = np.zeros(n_tr, bool)
    polluted = rng.permutation(n_tr)[: int(pollute_rate * n_tr)]
    y_tr[polluted] = rng.integers(0, NUM_CLASSES, size=len(polluted))  # uniform over 0..9, as PBGD
    dirty[polluted] = True
    return (
        (x[:n_tr], y_tr),
        (x[n_tr : n_tr + n_val], y[n_tr : n_tr + n_val]),
        (x[n_tr + n_val :], y[n_tr + n_val :]),
        dirty,
        y[:n_tr],
    )


def run_hyper_cleaning(
    args: argparse.Namespace, penalty_options: Dict[str, Any], baseline: Tuple[int, float] = (5000, 0.1)
) -> Dict[str, Any]:
    """The experiment (:func:`hyper_cleaning.run_in_folder`); ``baseline`` = (steps, SGD learning rate)
    of the uniform-weight reference net. The data files and the run folder are checked before TensorFlow
    loads."""
    data = load_hyperclean_data(args.dataset, args.pollute_rate, args.seed, args.data_dir)

    def in_folder(run: run_folder.Run) -> Dict[str, Any]:
        from .hyper_cleaning import run_in_folder  # TensorFlow loads here, after the folder's checks

        return run_in_folder(args, penalty_options, baseline, data, run)

    return run_folder.Run.once(args, in_folder, data=experiment.fingerprint(data[0][1], data[1][1], data[0][0][:256]))

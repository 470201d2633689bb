"""The hyper-cleaning runner's flags (PBGD's names) and per-(method, net) defaults, without TensorFlow: the
runner parses them (and answers ``--help``) before :mod:`bilevel_tf.apps.importance_hyperclean` loads."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from .. import console, experiment

SIZES = {"MNIST": (5000, 5000, 10000), "FashionMNIST": (5000, 5000, 10000), "digits": (1000, 200, 597)}


def add_flags(p: argparse.ArgumentParser, table: Optional[Dict[Tuple[str, str], Dict[str, Any]]] = None) -> None:
    """PBGD's flags (underscored, as its scripts); None = the method's default from the runner's table."""
    count = experiment.int_range(1)
    experiment.add_fit_flags(p, strategy=False)  # full batch: nothing to split across replicas
    p.add_argument("--dataset", default="MNIST", choices=list(SIZES),
                   help="MNIST / FashionMNIST (keras cache files) or the bundled 8x8 digits (offline)")
    p.add_argument("--net", default="linear", choices=["linear", "MLP"], help="784-10 or 784-300(sigmoid)-10")
    p.add_argument("--pollute_rate", type=experiment.float_range(0.0, 1.0, include_maximum=False), default=None,
                   help="fraction of training labels redrawn")
    p.add_argument("--reg", type=experiment.nonnegative_float, default=None,
                   help="weight of sum ||w||^2 in the lower loss (default: per method, see the table)")
    step = experiment.nonnegative_float  # 0 for the step sizes a method does not use (see the table)
    for flag, kind, what in [("--lrx", step, "step size of x (upper)"), ("--lry", step, "step size of y (net)"),
                             ("--lr_inner", step, "step size of the inner loop (V-PBGD copy, RHG unrolled SGD)"),
                             ("--gamma_init", step, "initial penalty (PBGD)"), ("--gamma_max", step, "max penalty"),
                             ("--gamma_argmax_step", count, "steps until gamma_max"),
                             ("--outer_itr", count, "upper iterations K"),
                             ("--inner_itr", count, "inner steps (V-PBGD, Penalty)"),
                             ("--T", count, "RHG: unrolled inner steps"),
                             ("--K", count, "RHG: truncation (K < T: T-RHG)")]:
        key = flag[2:]
        per_method = ", ".join(f"{m} {v[key]}" for (m, net), v in (table or {}).items() if net == "linear" and key in v)
        names = [flag] + ([flag.replace("_", "-")] if "_" in flag else [])  # PBGD's names and hyphenated ones
        if key == "outer_itr":  # the name the other runners give the same count
            names.append("--upper-iterations")
        p.add_argument(*names, dest=key, type=kind, default=None,
                       help=what + (f" (default for the linear net: {per_method}; MLP rows may differ)"
                                    if per_method else ""))
    p.add_argument("--eval_every", type=count, default=10, help="evaluate (test accuracy, F1) every N steps")
    experiment.add_schedule_flag(p, "auglag")


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
    p = experiment.parser(description, method="vpbgd", methods=("vpbgd", "gpbgd", "rhg", "penalty"),
                          inner_steps=None, epochs=None, seed=2424)
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

"""The rows ``python -m bilevel_tf.paper.reproduce`` runs for each paper table and profile.

A :class:`Row` is one runner command (without --seed / --out) that fills one cell family of a table; it is run
once per seed. ``paper`` rows use the paper's data and settings (the runners' defaults: the GPU job);
``cpu`` rows a scaled setting that finishes on a 2-core CPU: Table 2 and the small-scale comparison on the
bundled 8x8 digits, Table 3 on the rotated-digits few-shot set, supp. Table 5 on digits, supp. Table 4 at the
paper's sizes. Estimates come from measurements on the 2-core CPU of the build machine (README): whole-run
wall-clock for ``cpu`` rows, seconds per upper iteration times upper iterations for ``paper`` rows (bilevel
iterations only; evaluation and pre-training add to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from ..apps.few_shot import config as few_shot_config
from ..apps.synthetic import config as synthetic_config
from ..apps.denoising import config as denoising_config
from ..apps.poisoning import config as poisoning_config

PROFILES = ("cpu", "paper")
TABLE_NAMES = ("table2", "table3", "supp4", "supp5", "small_scale")
#: the methods the paper reports in each table (``--methods`` chooses others)
DEFAULT_METHODS = {
    "table2": ("penalty", "approxgrad"),
    "table3": ("penalty", "approxgrad"),
    "supp4": ("gd", "rmd", "approxgrad", "penalty"),
    "supp5": ("penalty", "approxgrad"),
    "small_scale": ("penalty", "rmd"),
}
#: which methods each table's runners accept: their app's method table
RUNNER_METHODS = {
    "table2": denoising_config.METHODS,
    "table3": few_shot_config.METHODS,
    "supp4": synthetic_config.METHODS,
    "supp5": poisoning_config.METHODS,
    "small_scale": denoising_config.METHODS,
}


@dataclass(frozen=True)
class Row:
    name: str  # folder under <out>/<table>/
    runner: str  # script path relative to the repository root
    args: Tuple[str, ...]  # runner flags (reproduce adds --seed and --out)
    seconds: Optional[float] = None  # estimated wall-clock of one run (one seed); None: not measured
    per_iteration: bool = False  # estimated from seconds per upper iteration (bilevel phase only)

    def command(self) -> List[str]:
        return [self.runner, *self.args]


DENOISING = {
    "mnist": "data_denoising/mnist_large_scale/test_bilevel_importance_learning_mnist.py",
    "cifar10": "data_denoising/cifar10/test_bilevel_importance_learning_cifar10.py",
    "svhn": "data_denoising/svhn/test_bilevel_importance_learning_svhn.py",
}
SMALL_SCALE = "data_denoising/mnist_small_scale/test_bilevel_importance_learning_mnist.py"
OMNIGLOT = "few_shot/omniglot/test_bilevel_few_shot_learning_omniglot.py"
MINIIMAGENET = "few_shot/miniimagenet/test_bilevel_few_shot_learning_miniimagenet.py"
POISONING = {
    "untargeted": "data_poisoning/untargeted/test_bilevel_poisoning_untargeted.py",
    "targeted": "data_poisoning/targeted/test_bilevel_poisoning_targeted.py",
}
SYNTHETIC = "synthetic_examples/test_synthetic.py"

# ---- measured on the build machine's 2-core CPU (shared, so upper bounds) ------------------------------------
#: paper sizes, seconds per upper iteration (README: data_denoising/time_paper_sizes.py, few_shot/
#: time_upper_iteration.py at T=20, data_poisoning/time_upper_iterations.py)
PAPER_SECONDS_PER_ITERATION = {
    ("mnist", "penalty"): 39.5,
    ("mnist", "approxgrad"): 55.2,
    ("cifar10", "penalty"): 118.7,
    ("cifar10", "approxgrad"): 200.4,
    ("svhn", "penalty"): 99.0,
    ("svhn", "approxgrad"): 135.3,
    ("small_scale", "penalty"): 0.056,
    ("small_scale", "approxgrad"): 0.087,
    ("omniglot", "penalty"): 205.0,
    ("omniglot", "approxgrad"): 138.0,  # 20-way 5-shot
    ("miniimagenet", "penalty"): 345.0,
    ("miniimagenet", "approxgrad"): 217.0,  # 5-way 5-shot
    ("poisoning", "penalty"): 0.15,
    ("poisoning", "approxgrad"): 0.39,
    ("poisoning", "rmd"): 0.35,
}
#: upper iterations of a full paper-size run
PAPER_ITERATIONS = {
    "mnist": 295 * 100,
    "cifar10": 200 * 200,
    "svhn": 361 * 101,
    "small_scale": 25 * 100,
    "poisoning": 5000,
}
#: wall-clock of one cpu-profile run, measured (s): the mean over the README's measured runs (load average ~4)
CPU_RUN_SECONDS = {"table2": 45.0, "table3": 55.0, "supp4": 380.0, "supp5": 190.0, "small_scale": 45.0}


def _paper_estimate(key: str, method: str, iterations: int) -> Optional[float]:
    per = PAPER_SECONDS_PER_ITERATION.get((key, method))
    return None if per is None else per * iterations


def _percent(x: float) -> str:
    return f"{round(100 * x):d}"


# ---------------------------------------------------------------------------------------------- table 2
def table2(profile: str, methods: Sequence[str]) -> List[Row]:
    rows = []
    datasets = ("digits",) if profile == "cpu" else tuple(DENOISING)
    for dataset in datasets:
        runner = DENOISING["mnist" if dataset == "digits" else dataset]
        for noise in (0.25, 0.5):
            for method in methods:
                args = ["--dataset", dataset, "--noise", str(noise), "--method", method]
                if method == "penalty":  # the Oracle / Val-Only / Train+Val columns, once per seed
                    args.append("--baselines")
                seconds = (
                    CPU_RUN_SECONDS["table2"]
                    if profile == "cpu"
                    else _paper_estimate(dataset, method, PAPER_ITERATIONS[dataset])
                )
                rows.append(
                    Row(
                        f"{dataset}_noise{_percent(noise)}_{method}",
                        runner,
                        tuple(args),
                        seconds,
                        per_iteration=profile == "paper",
                    )
                )
    return rows


# ---------------------------------------------------------------------------------------------- table 3
#: the README's few-shot digits demo: 8x8 digits x 4 rotations, digits 0-6 meta-train, 7-9 meta-test (12
#: classes: 20-way tasks do not fit), small meta-batches and T = 5
FEW_SHOT_DIGITS = (
    "--dataset",
    "digits",
    "--meta-batch",
    "4",
    "--query",
    "5",
    "--inner-steps",
    "5",
    "--meta-iterations",
    "100",
    "--eval-every",
    "10",
    "--test-tasks",
    "200",
    "--eval-batch",
    "50",
)
PAPER_FEW_SHOT = {
    "omniglot": (OMNIGLOT, ((5, 1), (5, 5), (20, 1), (20, 5))),
    "miniimagenet": (MINIIMAGENET, ((5, 1), (5, 5))),
}


def _few_shot_iterations(dataset: str, n_way: int, k_shot: int, method: str) -> int:
    """The runners' default meta-iterations (see their meta_iterations())."""
    if dataset == "omniglot":
        return 5000 if n_way == 5 else 10000
    if method == "approxgrad":
        return 10000 if k_shot == 5 else 20000
    return 20001


def table3(profile: str, methods: Sequence[str]) -> List[Row]:
    rows = []
    if profile == "cpu":
        for k_shot in (1, 5):
            for method in methods:
                args = (*FEW_SHOT_DIGITS, "--n-way", "5", "--k-shot", str(k_shot), "--method", method)
                rows.append(Row(f"digits_5way_{k_shot}shot_{method}", OMNIGLOT, args, CPU_RUN_SECONDS["table3"]))
        return rows
    for dataset, (runner, settings) in PAPER_FEW_SHOT.items():
        for n_way, k_shot in settings:
            for method in methods:
                args = ("--n-way", str(n_way), "--k-shot", str(k_shot), "--method", method)
                seconds = _paper_estimate(dataset, method, _few_shot_iterations(dataset, n_way, k_shot, method))
                rows.append(Row(f"{dataset}_{n_way}way_{k_shot}shot_{method}", runner, args, seconds, True))
    return rows


# ---------------------------------------------------------------------------------------------- supp. 4
def supp4(profile: str, methods: Sequence[str]) -> List[Row]:
    """One run per seed times all 4 examples x T in {1, 5, 10} x methods for 10,000 upper iterations at the
    paper's sizes (one trial per seed: the table's s.d. is over seeds, as the paper's over 10 runs);
    distances recorded every 100 iterations so that the time is the solver's."""
    args = ("--iterations", "10000", "--trials", "1", "--record-every", "100", "--skip-ablation", "--methods", *methods)
    return [Row("synthetic", SYNTHETIC, args, CPU_RUN_SECONDS["supp4"])]  # the same sizes in both profiles


# ---------------------------------------------------------------------------------------------- supp. 5
#: cpu: digits (300 training points: 2%, 4%, 6% = 6, 12, 18 poison points) with the paper's K and T; the
#: odd percentages are left out to fit the hour
DIGITS_TRAIN_POINTS = 300


def supp5(profile: str, methods: Sequence[str]) -> List[Row]:
    rows = []
    percents = (2, 4, 6) if profile == "cpu" else (1, 2, 3, 4, 5, 6)
    for attack, runner in POISONING.items():
        for percent in percents:
            for method in methods:
                if profile == "cpu":
                    n = round(percent * DIGITS_TRAIN_POINTS / 100)
                    args, seconds = ("--dataset", "digits", "--num-poison", str(n)), CPU_RUN_SECONDS["supp5"]
                else:
                    n = 10 * percent
                    args = ("--num-poison", str(n))
                    seconds = _paper_estimate("poisoning", method, PAPER_ITERATIONS["poisoning"])
                rows.append(
                    Row(
                        f"{attack}_{percent}pct_{method}",
                        runner,
                        (*args, "--method", method),
                        seconds,
                        per_iteration=profile == "paper",
                    )
                )
    return rows


# ---------------------------------------------------------------------------------------------- small scale
def small_scale(profile: str, methods: Sequence[str]) -> List[Row]:
    rows = []
    for method in methods:
        args = ["--method", method, "--noise", "0.5"]
        if profile == "cpu":
            args = ["--dataset", "digits", *args]
        if method == "penalty":
            args.append("--baselines")
        seconds = (
            CPU_RUN_SECONDS["small_scale"]
            if profile == "cpu"
            else _paper_estimate("small_scale", method, PAPER_ITERATIONS["small_scale"])
        )
        rows.append(
            Row(
                f"{'digits' if profile == 'cpu' else 'mnist'}_noise50_{method}",
                SMALL_SCALE,
                tuple(args),
                seconds,
                per_iteration=profile == "paper",
            )
        )
    return rows


PLANS = {"table2": table2, "table3": table3, "supp4": supp4, "supp5": supp5, "small_scale": small_scale}


def plan(table: str, profile: str, methods: Optional[Sequence[str]] = None) -> List[Row]:
    """The rows of ``table`` under ``profile`` for ``methods`` (default: the paper's columns)."""
    if table not in PLANS:
        raise ValueError(f"table must be one of {list(PLANS)}, got {table!r}")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    methods = tuple(methods or DEFAULT_METHODS[table])
    unknown = [m for m in methods if m not in RUNNER_METHODS[table]]
    if unknown:
        raise ValueError(
            f"{table}'s runners do not take --method {unknown[0]}; choose from {list(RUNNER_METHODS[table])}"
        )
    return PLANS[table](profile, methods)

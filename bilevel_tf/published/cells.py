"""Where one run lands in the paper's tables, and the ``paper`` entry runners write into results.json.

:func:`place` maps a run (experiment, dataset, method, config, as in results.json) onto cells: the table, the
row (the paper's label when the run's data and setting are the paper's, otherwise a label naming the data set,
so such rows are never compared with the paper), the column and the metric that fills it. :func:`paper_entry`
turns that into the published values for the runner to record (or ``None`` and the reason).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .numbers import SUPP5, TABLES, synthetic_row
from ..solvers import registry

PERCENT = 100.0  # our accuracies are fractions, the paper's tables percentages
SYNTHETIC_ITERATIONS = 10000  # supp. Table 4 times 10,000 upper iterations


def _column(method: str) -> str:
    """The paper tables' column header of a method: the registry's label; an alias or other name as it is."""
    return registry.lookup(method).column if method in registry.METHODS else method


@dataclass(frozen=True)
class Cell:
    """One value a run contributes to a table: ``metrics[metric[0]][metric[1]]... * scale``."""

    table: str
    row: str
    column: str
    metric: Tuple[str, ...]
    scale: float = PERCENT
    method: Optional[str] = None  # the solver whose result this is (None: a baseline every method's run
    shared: bool = False  # computes alike, counted once per seed)
    order: Tuple = ()  # sort key of the row within its table


@dataclass
class Placement:
    cells: List[Cell] = field(default_factory=list)
    paper_data: bool = False  # the run's data and setting are the paper's
    reason: Optional[str] = None  # why it is not compared with the paper (None when it is)


def _blocker(config: Mapping[str, Any]) -> Optional[str]:
    """Flags that make any run incomparable with the paper whatever its data set."""
    if config.get("smoke"):
        return "a --smoke run (tiny sizes) is not the paper's setting"
    if config.get("synthetic_data"):
        return "--synthetic-data runs on random arrays"
    if config.get("max_steps") is not None:
        return "the bilevel phase ran --upper-iterations, not the paper's epochs"
    if config.get("model", "paper") != "paper":
        return f"--model {config['model']} is not the paper's network (--model paper)"
    return None


def _percent(x: float) -> str:
    return f"{round(float(x) * 100, 6):g}"


def _runner(experiment: str) -> str:
    return experiment.rsplit("/", 1)[-1]


def _choose_row(table: str, paper_row: str, other_row: str, not_paper: Optional[str]) -> Tuple[str, Placement]:
    """The paper's row label when the run is comparable and the paper prints that row, else ``other_row``."""
    if not_paper is None and paper_row not in TABLES[table].rows:
        not_paper = f"{TABLES[table].source} has no row {paper_row!r}"
    row = paper_row if not_paper is None else other_row
    return row, Placement(paper_data=not_paper is None, reason=not_paper)


def _data_set_check(config: Mapping[str, Any], dataset: str, paper_dataset: str, paper_name: str) -> Optional[str]:
    if dataset != paper_dataset:
        return f"{dataset} is not the paper's data set for this runner ({paper_name})"
    return _blocker(config)


# ------------------------------------------------------------------------------------------ per experiment
_DENOISING = {
    "data_denoising/mnist_large_scale": ("table2", "mnist", "MNIST"),
    "data_denoising/cifar10": ("table2", "cifar10", "CIFAR10"),
    "data_denoising/svhn": ("table2", "svhn", "SVHN"),
    "data_denoising/mnist_small_scale": ("small_scale", "mnist", "MNIST"),
}
#: baselines of the denoising runners: column -> metric (Oracle / Val-Only only with --baselines)
_DENOISING_BASELINES = {
    "Oracle": "oracle_test_accuracy",
    "Val-Only": "val_only_test_accuracy",
    "Train+Val": "noisy_baseline_test_accuracy",
}


def _denoising(experiment: str, dataset: str, method: str, config: Mapping[str, Any]) -> Placement:
    table, paper_dataset, paper_name = _DENOISING[experiment]
    noise = _percent(config["noise"])
    row, p = _choose_row(
        table,
        f"{paper_name} ({noise})",
        f"{dataset} ({noise}) [{_runner(experiment)}]",
        _data_set_check(config, dataset, paper_dataset, paper_name),
    )
    order = (0 if p.paper_data else 1, dataset, float(config["noise"]))
    p.cells.append(Cell(table, row, _column(method), ("test_accuracy",), method=method, order=order))
    p.cells += [
        Cell(table, row, column, (metric,), shared=True, order=order) for column, metric in _DENOISING_BASELINES.items()
    ]
    return p


_FEW_SHOT = {"few_shot/omniglot": ("omniglot", "Omniglot"), "few_shot/miniimagenet": ("miniimagenet", "Mini-ImageNet")}


def _few_shot(experiment: str, dataset: str, method: str, config: Mapping[str, Any]) -> Placement:
    paper_dataset, paper_name = _FEW_SHOT[experiment]
    setting = f"{config['n_way']}-way {config['k_shot']}-shot"
    row, p = _choose_row(
        "table3",
        f"{paper_name} {setting}",
        f"{dataset} {setting} [{_runner(experiment)}]",
        _data_set_check(config, dataset, paper_dataset, paper_name),
    )
    order = (0 if p.paper_data else 1, dataset, int(config["n_way"]), int(config["k_shot"]))
    p.cells.append(Cell("table3", row, _column(method), ("test_accuracy",), method=method, order=order))
    return p


_POISONING = {
    "data_poisoning/untargeted": ("Untargeted", "poisoned_test_accuracy", "label_flip_test_accuracy"),
    "data_poisoning/targeted": ("Targeted", "attack_success_rate", "label_flip_attack_success_rate"),
}
PAPER_POISON_TRAIN_POINTS = 1000


def _poisoning(experiment: str, dataset: str, method: str, config: Mapping[str, Any]) -> Placement:
    half, metric, flip_metric = _POISONING[experiment]
    n, n_train = int(config["num_poison"]), int(config["train_points"])
    fraction = _percent(n / n_train)
    not_paper = _data_set_check(config, dataset, "mnist", "MNIST")
    if not_paper is None and n_train != PAPER_POISON_TRAIN_POINTS:
        not_paper = f"{n_train} training points (the paper: {PAPER_POISON_TRAIN_POINTS})"
    row, p = _choose_row(SUPP5.name, f"{fraction}%", f"{dataset} {fraction}% ({n} of {n_train})", not_paper)
    order = (0 if p.paper_data else 1, dataset, n / n_train)
    p.cells.append(Cell(SUPP5.name, row, f"{half}: {_column(method)}", (metric,), method=method, order=order))
    p.cells.append(Cell(SUPP5.name, row, f"{half}: Label flip", (flip_metric,), shared=True, order=order))
    return p


PAPER_SYNTHETIC_DIM = 10


def _synthetic(experiment: str, dataset: str, method: str, config: Mapping[str, Any]) -> Placement:
    not_paper = _blocker(config)
    dim = int(config.get("dim", PAPER_SYNTHETIC_DIM))
    if not_paper is None and dim != PAPER_SYNTHETIC_DIM:
        not_paper = f"dim {dim} (the paper: u, v in R^{PAPER_SYNTHETIC_DIM})"
    p = Placement(paper_data=not_paper is None, reason=not_paper)
    suffix = "" if not_paper is None else f" (dim {dim}{', smoke' if config.get('smoke') else ''})"
    for example in config.get("examples", []):
        for t in config.get("ts", []):
            row = synthetic_row(example, t) + suffix
            for m in config.get("methods", []):
                p.cells.append(
                    Cell(
                        "supp4",
                        row,
                        _column(m),
                        (f"ex{example}", m, f"T{t}", "seconds_per_upper_iteration"),
                        scale=SYNTHETIC_ITERATIONS,
                        method=m,
                        order=(0 if p.paper_data else 1, dim, example, t),
                    )
                )
    return p


_PLACERS: Dict[str, Callable[[str, str, str, Mapping[str, Any]], Placement]] = {
    **{e: _denoising for e in _DENOISING},
    **{e: _few_shot for e in _FEW_SHOT},
    **{e: _poisoning for e in _POISONING},
    "synthetic": _synthetic,
}
#: experiments the paper reports without a table (or not at all)
NO_TABLE = {
    "clean_label": "the paper reports the clean-label attack as figure 3 only (no table)",
    "clean_label/extract_inception_features": "feature extraction, no result of the paper",
    "synthetic/pbgd_toy": "PBGD's toy problem is not in the paper",
    "data_denoising/hyper_cleaning": "the PBGD hyper-cleaning setup is not in the paper",
}


def place(experiment: str, dataset: Optional[str], method: Optional[str], config: Mapping[str, Any]) -> Placement:
    """The cells of the paper's tables one run fills (none for experiments without a table)."""
    placer = _PLACERS.get(experiment)
    if placer is None:
        return Placement(reason=NO_TABLE.get(experiment, f"no table of the paper reports {experiment!r}"))
    return placer(experiment, str(dataset), str(method), config)


def paper_entry(args: Any, dataset: Optional[str]) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """``(entry, None)`` with the published values of the cells this run fills when its data set and setting
    are the paper's, else ``(None, reason)``: what a runner passes to ``results_file.write_results(paper=...)``."""
    config = vars(args) if not isinstance(args, Mapping) else args
    placement = place(config["experiment"], dataset, config.get("method"), config)
    if not placement.paper_data or not placement.cells:
        return None, placement.reason or "the run fills no cell of the paper's tables"
    table = TABLES[placement.cells[0].table]
    cells = []
    for c in placement.cells:
        value = table.value(c.row, c.column)
        cells.append(
            {
                "row": c.row,
                "column": c.column,
                "metric": ".".join(c.metric),
                "scale": c.scale,
                "paper": value.as_dict() if value else None,
            }
        )
    return {
        "table": table.name,
        "source": table.source,
        "title": table.title,
        "unit": table.unit,
        "spread": table.spread_of(placement.cells[0].row),
        "cells": cells,
    }, None

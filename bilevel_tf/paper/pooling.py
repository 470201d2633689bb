"""Our runs grouped for the paper's tables: find every results.json under a folder, place each run in the
paper's cells (:mod:`bilevel_tf.published.cells`), pool the runs whose configuration differs only by seed and run
plumbing (IGNORED_KEYS), label groups that differ in a setting or a solver option, and compute each cell's mean
and spread. :mod:`bilevel_tf.paper.tables` renders the result."""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..runner import flag_roles
from ..runner.results_file import flatten
from ..training.folders import EXECUTION_OPTIONS
from ..published.cells import Cell, place
from ..published.numbers import TABLES, PaperTable

#: run plumbing, seeds and extra reports (flag_roles' OUTPUT and POOLED flags), never a reason to keep runs apart
IGNORED_KEYS = flag_roles.flags_with(flag_roles.OUTPUT, flag_roles.POOLED)
#: keys that change only the bilevel phase (solver, schedule, budget; "solver" is the solver's full configuration
#: the runners record); baselines shared by all methods ignore them
BILEVEL_KEYS = frozenset(
    {
        "method",
        "hyperparams",
        "schedule",
        "lr_u",
        "lr_v",
        "lr_p",
        "sigma",
        "rho",
        "lam",
        "eps",
        "nu",
        "lr_decay",
        "halve_every",
        "inner_steps",
        "epochs",
        "meta_iterations",
        "upper_optimizer",
        "dropout",
        "eval_every",
        "eval_tasks",
        "max_steps",
        "solver",
    }
)
MISSING = "-"


# --------------------------------------------------------------------------------------------- loading
@dataclass
class Run:
    path: str
    experiment: str
    dataset: Optional[str]
    method: Optional[str]
    config: Dict[str, Any]
    metrics: Dict[str, Any]

    @property
    def seed(self) -> Any:
        return self.config.get("seed")


def find_runs(runs_dir: str) -> Tuple[List[Run], List[str]]:
    """Every results.json under ``runs_dir`` (checkpoint and TensorBoard folders skipped), sorted by path;
    and the unreadable ones with the reason."""
    runs, problems = [], []
    for folder, subfolders, files in os.walk(runs_dir):
        subfolders[:] = sorted(d for d in subfolders if d not in ("checkpoints", "tensorboard"))
        if "results.json" not in files:
            continue
        path = os.path.join(folder, "results.json")
        try:
            with open(path) as f:
                r = json.load(f)
            runs.append(
                Run(
                    path,
                    r["experiment"],
                    r.get("dataset"),
                    r.get("method"),
                    dict(r.get("config") or {}),
                    dict(r.get("metrics") or {}),
                )
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            problems.append(_unreadable(path, e))
    runs.sort(key=lambda r: r.path)
    return runs, problems


def _unreadable(path: str, error: BaseException) -> str:
    """The note on a results.json that cannot be used, also printed as a warning (one odd file never stops the
    report)."""
    note = f"{path}: unreadable ({type(error).__name__}: {error}), skipped"
    print(f"warning: {note}", file=sys.stderr)
    return note


def _top(key: str) -> str:
    return key.split(".", 1)[0]


def _execution_only(key: str) -> bool:
    """A solver option that changes how a step runs, not its result, or a Keras object's auto-generated name
    (it counts the optimizers a process made before): never a reason to keep runs apart."""
    parts = key.split(".")
    return parts[0] == "solver" and (parts[-1] in EXECUTION_OPTIONS or (parts[-1] == "name" and "config" in parts))


def penalty_schedule(config: Mapping[str, Any]) -> str:
    """The Penalty schedule of a run: the denoising runners record it in hyperparams, others with a
    --schedule flag in the config; the remaining runners hard-code the original code's schedule."""
    hyper = config.get("hyperparams") if isinstance(config.get("hyperparams"), Mapping) else {}
    return str(hyper.get("schedule") or config.get("schedule") or "original")


def metric_value(metrics: Mapping[str, Any], path: Sequence[str]) -> Optional[float]:
    value: Any = metrics
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


# --------------------------------------------------------------------------------------------- pooling
@dataclass
class Group:
    """Our values of one table cell for one configuration: one value per seed."""

    cell: Cell
    experiment: str
    setting: Dict[str, Any]  # flattened config without plumbing and solver keys
    solver: Dict[str, Any]  # flattened solver keys (empty for shared baselines)
    paper_data: bool
    reason: Optional[str]
    values: Dict[Any, float] = field(default_factory=dict)  # seed -> value
    paths: List[str] = field(default_factory=list)
    row: str = ""  # final labels (with variants)
    column: str = ""

    @property
    def stats(self) -> Tuple[float, Optional[float], int]:
        """Mean, sample s.d. (ddof=1; None for one seed) and the number of seeds."""
        x = np.array(list(self.values.values()), float)
        return float(x.mean()), (float(x.std(ddof=1)) if len(x) > 1 else None), len(x)


def _groups(runs: Sequence[Run]) -> Tuple[List[Group], List[str]]:
    groups: Dict[Tuple, Group] = {}
    skipped = []
    for run in runs:
        try:
            placement = place(run.experiment, run.dataset, run.method, run.config)
        except (KeyError, TypeError, ValueError) as e:  # a config missing a key the table needs
            skipped.append(_unreadable(run.path, e))
            continue
        if not placement.cells:
            skipped.append(f"{run.path}: {placement.reason}")
            continue
        flat = {
            k: json.dumps(v) if isinstance(v, list) else v  # lists as text: hashable, printable
            for k, v in flatten(run.config).items()
            if _top(k) not in IGNORED_KEYS and not _execution_only(k)
        }
        setting = {k: v for k, v in flat.items() if _top(k) not in BILEVEL_KEYS}
        solver = {
            k: v
            for k, v in flat.items()
            if _top(k) in BILEVEL_KEYS and k not in ("method", "schedule", "hyperparams.schedule")
        }
        for cell in placement.cells:
            value = metric_value(run.metrics, cell.metric)
            if value is None:
                continue
            own = {} if cell.shared else {**solver, "method": cell.method}
            if cell.method == "penalty":
                own["schedule"] = penalty_schedule(run.config)
            key = (
                cell,
                run.experiment,
                json.dumps(setting, sort_keys=True, default=str),
                json.dumps(own, sort_keys=True, default=str),
            )
            g = groups.setdefault(
                key, Group(cell, run.experiment, setting, own, placement.paper_data, placement.reason)
            )
            if run.seed in g.values:  # a baseline already counted for this seed, or a copied run folder
                continue
            g.values[run.seed] = value * cell.scale
            g.paths.append(run.path)
    return list(groups.values()), skipped


def _differing(dicts: Sequence[Mapping[str, Any]]) -> List[str]:
    keys = sorted({k for d in dicts for k in d})
    return [k for k in keys if len({json.dumps(d.get(k), default=str) for d in dicts}) > 1]


def _label(base: str, values: Mapping[str, Any], keys: Sequence[str]) -> str:
    parts = [f"{k}={_short(values[k])}" for k in keys if k in values]
    return f"{base} [{', '.join(parts)}]" if parts else base


def _short(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _assign_labels(groups: Sequence[Group]) -> None:
    """Row variants: setting keys that differ between groups of one experiment in one row. Column variants:
    solver keys that differ between groups of one cell; Penalty columns always name their schedule."""
    by_row: Dict[Tuple, List[Group]] = {}
    for g in groups:
        by_row.setdefault((g.cell.table, g.cell.row, g.experiment), []).append(g)
    for members in by_row.values():
        keys = _differing([g.setting for g in members])
        for g in members:
            g.row = _label(g.cell.row, g.setting, keys)
    by_cell: Dict[Tuple, List[Group]] = {}
    for g in groups:
        by_cell.setdefault((g.cell.table, g.row, g.cell.column), []).append(g)
    for members in by_cell.values():
        keys = _differing([g.solver for g in members])
        for g in members:
            shown = (["schedule"] if "schedule" in g.solver else []) + [k for k in keys if k != "schedule"]
            g.column = _label(g.cell.column, g.solver, shown)


# --------------------------------------------------------------------------------------------- tables
@dataclass
class TableResult:
    paper: PaperTable
    rows: List[str]  # row labels in print order
    columns: List[str]  # column labels (paper's order, variants in place, extras last)
    cells: Dict[Tuple[str, str], Group]  # (row, column) -> our values
    row_base: Dict[str, str]  # row label -> the paper's row label
    column_base: Dict[str, str]  # column label -> the paper's column label
    paper_rows: Dict[str, bool]  # row label -> comparable with the paper
    notes: Dict[str, str]  # row label -> why it is not compared

    def paper_value(self, row: str, column: str):
        if not self.paper_rows.get(row):
            return None
        return self.paper.value(self.row_base[row], self.column_base[column])


def build_tables(groups: Sequence[Group]) -> List[TableResult]:
    out = []
    for name, paper in TABLES.items():
        mine = [g for g in groups if g.cell.table == name]
        if not mine:
            continue
        paper_order = {row: i for i, row in enumerate(paper.rows)}

        def row_key(g: Group) -> Tuple:
            if g.paper_data:
                return (0, paper_order.get(g.cell.row, len(paper_order)), g.row)
            return (1, g.cell.order, g.row)

        rows = list(dict.fromkeys(g.row for g in sorted(mine, key=row_key)))
        variants: Dict[str, List[str]] = {}
        for g in mine:
            variants.setdefault(g.cell.column, [])
            if g.column not in variants[g.cell.column]:
                variants[g.cell.column].append(g.column)
        columns = []
        for column in list(paper.columns) + sorted(c for c in variants if c not in paper.columns):
            columns += sorted(variants.get(column, [column]))
        column_base = {c: c for c in paper.columns}
        column_base.update({g.column: g.cell.column for g in mine})
        out.append(
            TableResult(
                paper,
                rows,
                columns,
                {(g.row, g.column): g for g in mine},
                {g.row: g.cell.row for g in mine},
                column_base,
                {g.row: g.paper_data for g in mine},
                {g.row: g.reason for g in mine if not g.paper_data and g.reason},
            )
        )
    return out


def aggregate(runs_dir: str) -> Tuple[List[TableResult], List[str], int]:
    """The tables of ``runs_dir``, the notes on runs that fill no table (or could not be read), and the
    number of runs found."""
    runs, problems = find_runs(runs_dir)
    groups, skipped = _groups(runs)
    _assign_labels(groups)
    return build_tables(groups), problems + skipped, len(runs)

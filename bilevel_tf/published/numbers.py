"""The published numbers of Mehra & Hamm, "Penalty Method for Inversion-Free Deep Bilevel Optimization"
(ACML 2021, PMLR 157:347-362; main text and supplement of the PMLR version), as data.

Each :class:`PaperTable` holds the table's rows (row label -> column -> :class:`Value`) with its unit and
what its "±" means. Cells the paper leaves empty ("–") are absent. Nothing here runs an experiment:
:mod:`bilevel_tf.published.cells` maps a run onto these rows, :mod:`bilevel_tf.paper.tables` prints ours beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple


@dataclass(frozen=True)
class Value:
    """One published number: ``mean`` and the table's "±" (``None`` where the paper prints none)."""

    mean: float
    spread: Optional[float] = None

    def as_dict(self) -> Dict[str, Optional[float]]:
        return {"mean": self.mean, "spread": self.spread}


@dataclass(frozen=True)
class PaperTable:
    name: str  # the key used by `reproduce` and `tables` (e.g. "table2")
    source: str  # where it is printed
    title: str
    unit: str  # of every value in the table
    spread: str  # what "±" means
    row_header: str
    columns: Tuple[str, ...]  # in the paper's order
    rows: Mapping[str, Mapping[str, Value]]
    notes: str = ""
    row_spread: Mapping[str, str] = field(default_factory=dict)  # rows whose "±" means something else

    def value(self, row: str, column: str) -> Optional[Value]:
        return self.rows.get(row, {}).get(column)

    def spread_of(self, row: str) -> str:
        return self.row_spread.get(row, self.spread)


def _row(columns: Tuple[str, ...], *values) -> Dict[str, Value]:
    """A row from values in column order: a number, a (mean, spread) pair, or None for "–"."""
    out = {}
    for column, v in zip(columns, values, strict=True):
        if v is not None:
            out[column] = Value(*v) if isinstance(v, tuple) else Value(v)
    return out


DENOISING_COLUMNS = ("Oracle", "Val-Only", "Train+Val", "ApproxGrad", "Penalty")
_T2 = DENOISING_COLUMNS
TABLE2 = PaperTable(
    name="table2",
    source="Table 2",
    title="Data denoising by importance learning: test accuracy after denoising",
    unit="%",
    spread="s.d. over 5 runs",
    row_header="Dataset (noise %)",
    columns=_T2,
    rows={
        "MNIST (25)": _row(_T2, (99.3, 0.1), (94.6, 0.3), (83.9, 1.3), (98.11, 0.08), (98.89, 0.04)),
        "MNIST (50)": _row(_T2, (99.3, 0.1), (94.6, 0.3), (60.8, 2.5), (97.27, 0.15), (97.51, 0.07)),
        "CIFAR10 (25)": _row(_T2, (82.9, 1.1), (70.3, 1.8), (79.1, 0.8), (71.59, 0.87), (79.67, 1.01)),
        "CIFAR10 (50)": _row(_T2, (80.7, 1.2), (70.3, 1.8), (72.2, 1.8), (68.08, 0.83), (79.03, 1.19)),
        "SVHN (25)": _row(_T2, (91.1, 0.5), (70.6, 1.5), (71.6, 1.4), (80.05, 1.37), (88.12, 0.16)),
        "SVHN (50)": _row(_T2, (89.8, 0.6), (70.6, 1.5), (47.9, 1.3), (74.18, 1.05), (85.21, 0.34)),
    },
    notes="Penalty T=20; ApproxGrad 20 lower + 20 linear-system steps. Validation sets: MNIST 1000, CIFAR10 10000, "
    "SVHN 1000. Oracle = clean part of train + val, Val-Only = val alone, Train+Val = uniform weights.",
)

_T3 = ("MAML", "iMAML", "Proto Net", "Rel Net", "SNAIL", "RMD", "ApproxGrad", "Penalty")
TABLE3 = PaperTable(
    name="table3",
    source="Table 3",
    title="Few-shot learning: meta-test accuracy",
    unit="%",
    spread="s.d. over 5 trials (Omniglot)",
    row_header="Setting",
    columns=_T3,
    rows={
        "Omniglot 5-way 1-shot": _row(
            _T3, 98.7, (99.50, 0.26), 98.8, (99.6, 0.2), 99.1, 98.6, (97.75, 0.06), (97.83, 0.35)
        ),
        "Omniglot 5-way 5-shot": _row(
            _T3, 99.9, (99.74, 0.11), 99.7, (99.8, 0.1), 99.8, 99.5, (99.51, 0.05), (99.45, 0.05)
        ),
        "Omniglot 20-way 1-shot": _row(
            _T3, 95.8, (96.18, 0.36), 96.0, (97.6, 0.2), 97.6, 95.5, (94.69, 0.22), (94.06, 0.17)
        ),
        "Omniglot 20-way 5-shot": _row(
            _T3, 98.9, (99.14, 0.10), 98.9, (99.1, 0.1), 99.4, 98.4, (98.46, 0.08), (98.47, 0.08)
        ),
        "Mini-ImageNet 5-way 1-shot": _row(
            _T3,
            (48.70, 1.75),
            (49.30, 1.88),
            (49.42, 0.78),
            (50.44, 0.82),
            (55.71, 0.99),
            (50.54, 0.85),
            (43.74, 1.75),
            (53.17, 0.96),
        ),
        "Mini-ImageNet 5-way 5-shot": _row(
            _T3,
            (63.11, 0.92),
            None,
            (68.20, 0.66),
            (65.32, 0.82),
            (68.88, 0.92),
            (64.53, 0.68),
            (65.56, 0.67),
            (67.74, 0.71),
        ),
    },
    row_spread={
        "Mini-ImageNet 5-way 1-shot": "95% confidence interval",
        "Mini-ImageNet 5-way 5-shot": "95% confidence interval",
    },
    notes="RMD = Franceschi et al. 2018. Meta-test: representation frozen, heads trained 100 steps, 600 tasks. "
    "Omniglot ± = s.d. over 5 trials, Mini-ImageNet ± = 95% interval.",
)

_S4 = ("GD", "RMD", "ApproxGrad", "Penalty")
_S4_ROWS = {  # (example, T): GD, RMD, ApproxGrad, Penalty
    (1, 1): ((7.4, 0.3), (15.0, 0.1), (17.4, 0.2), (17.2, 0.1)),
    (1, 5): ((14.3, 0.1), (51.4, 0.3), (39.3, 2.3), (34.3, 0.3)),
    (1, 10): ((23.2, 0.1), (95.4, 0.2), (60.9, 0.3), (57.0, 1.0)),
    (2, 1): ((7.7, 0.1), (18.5, 0.1), (17.2, 0.3), (17.4, 0.2)),
    (2, 5): ((17.3, 0.1), (62.7, 0.1), (37.9, 0.1), (35.0, 0.2)),
    (2, 10): ((22.4, 2.6), (115.0, 0.4), (64.2, 0.3), (52.7, 1.4)),
    (3, 1): ((8.2, 0.2), (18.8, 0.1), (19.8, 0.1), (19.1, 0.1)),
    (3, 5): ((17.4, 0.1), (72.4, 0.1), (47.1, 0.4), (38.6, 0.4)),
    (3, 10): ((28.7, 0.6), (125.0, 9.3), (80.6, 0.3), (62.7, 0.1)),
    (4, 1): ((7.9, 0.1), (19.5, 0.1), (20.4, 0.0), (19.6, 0.1)),
    (4, 5): ((16.9, 0.2), (72.8, 0.5), (48.4, 0.6), (40.2, 0.1)),
    (4, 10): ((28.3, 0.2), (138.0, 0.2), (81.2, 1.6), (58.0, 4.3)),
}


def synthetic_row(example: int, inner_steps: int) -> str:
    """Row label of supp. Table 4."""
    return f"Ex.{example}, T={inner_steps}"


SUPP4 = PaperTable(
    name="supp4",
    source="supp. Table 4",
    title="Synthetic examples: wall-clock time of 10,000 upper iterations",
    unit="s per 10,000 upper iterations",
    spread="s.d. over 10 runs",
    row_header="Example, T",
    columns=_S4,
    rows={synthetic_row(e, t): _row(_S4, *values) for (e, t), values in _S4_ROWS.items()},
    notes="Measured on an Intel Core i9-7920X with a TITAN RTX, TensorFlow 1.x; u, v in R^10, Adam (RMD: plain GD).",
)

_S5 = (
    "Untargeted: Label flip",
    "Untargeted: RMD",
    "Untargeted: ApproxGrad",
    "Untargeted: Penalty",
    "Targeted: Label flip",
    "Targeted: RMD",
    "Targeted: ApproxGrad",
    "Targeted: Penalty",
)
SUPP5 = PaperTable(
    name="supp5",
    source="supp. Table 5",
    title="Data-augmentation poisoning of MNIST: untargeted test accuracy (lower = stronger attack) and "
    "targeted 8->3 success rate (higher = stronger)",
    unit="%",
    spread="s.d. over 5 runs",
    row_header="Poisoned points (% of 1000)",
    columns=_S5,
    rows={
        "1%": _row(
            _S5, (86.71, 0.32), 85, (82.09, 0.84), (83.29, 0.43), (7.76, 1.07), 10, (18.84, 1.90), (17.40, 3.00)
        ),
        "2%": _row(
            _S5, (86.23, 0.98), 83, (77.54, 0.57), (78.14, 0.53), (12.08, 2.13), 15, (39.64, 3.72), (41.64, 4.43)
        ),
        "3%": _row(
            _S5, (85.17, 0.96), 82, (74.41, 1.14), (75.14, 1.09), (18.36, 1.23), 25, (52.76, 2.69), (51.40, 2.72)
        ),
        "4%": _row(
            _S5, (84.93, 0.55), 81, (71.88, 0.40), (72.70, 0.46), (24.41, 2.05), 35, (60.01, 1.61), (61.16, 1.34)
        ),
        "5%": _row(
            _S5, (84.39, 1.06), 80, (68.69, 0.86), (69.48, 1.93), (30.41, 4.24), None, (65.61, 4.01), (65.52, 2.85)
        ),
        "6%": _row(
            _S5, (84.64, 0.69), 79, (66.91, 0.89), (67.59, 1.17), (32.88, 3.47), None, (71.48, 4.24), (70.01, 2.95)
        ),
    },
    notes="RMD numbers are quoted from Muñoz-González et al. 2017 (no ±). Clean test accuracy 87%. "
    "Untargeted: 1000 train / 1000 val / 8000 test; targeted: balanced 1000 / 4000 / 5000.",
)

_SS = ("Oracle", "Val-Only", "Train+Val", "RMD", "Penalty")
SMALL_SCALE = PaperTable(
    name="small_scale",
    source="supp. D.1.1",
    title="Importance learning vs Franceschi et al.'s RMD (MNIST 5000/5000/10000, 50% noise, softmax regression, "
    "retrained on {a > 0.9} + val): test accuracy",
    unit="%",
    spread="single numbers (no ± printed)",
    row_header="Dataset (noise %)",
    columns=_SS,
    rows={"MNIST (50)": _row(_SS, 91.06, 90.54, 86.25, 90.09, 90.77)},
    notes="Penalty K=100, T=20; RMD = the approach of Franceschi et al. 2017.",
)

TABLES: Dict[str, PaperTable] = {t.name: t for t in (TABLE2, TABLE3, SUPP4, SUPP5, SMALL_SCALE)}

"""Our runs next to the paper's tables: ``python -m bilevel_tf.paper.tables RUNS_DIR``.

Finds every results.json under RUNS_DIR, places each run in the paper's tables (bilevel_tf/published/cells.py),
pools runs whose configuration differs only by seed (and output paths), and prints one markdown table per paper
table with our mean ± s.d. (n seeds) beside the published value and the difference. Rows whose data or setting
are not the paper's (e.g. the bundled digits) are labelled with their data set and never compared. Writes
RUNS_DIR/tables.md, RUNS_DIR/tables.csv and RUNS_DIR/<table>.png (ours vs paper, error bars).

Pooling rules: runs are pooled per cell when their configs agree on every key except seed and output/run
plumbing (IGNORED_KEYS). Groups of one row that differ in a setting (data, evaluation protocol) become separate
rows labelled with the differing keys; groups of one column that differ in a solver setting (BILEVEL_KEYS)
become separate columns, and Penalty columns always name the schedule that produced them. Baselines every
method's run computes alike (Train+Val, Oracle, Val-Only, label flipping) are counted once per seed.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..published.numbers import TABLES
from .pooling import MISSING, Group, TableResult, aggregate


# --------------------------------------------------------------------------------------------- output
def fmt(x: Optional[float], unit: str) -> str:
    if x is None:
        return MISSING
    return f"{x:.2f}" if unit == "%" else f"{x:.3g}"


def ours_text(g: Optional[Group], unit: str) -> str:
    if g is None:
        return MISSING
    mean, sd, n = g.stats
    return f"{fmt(mean, unit)} ± {fmt(sd, unit)} ({n})" if sd is not None else f"{fmt(mean, unit)} ({n})"


def paper_text(v) -> str:
    if v is None:
        return MISSING
    return f"{v.mean:g} ± {v.spread:g}" if v.spread is not None else f"{v.mean:g}"


def diff_text(g: Optional[Group], v, unit: str) -> str:
    if g is None or v is None:
        return MISSING
    d = g.stats[0] - v.mean
    return ("+" if d >= 0 else "") + fmt(d, unit)


def markdown(t: TableResult) -> str:
    p = t.paper
    printed_spread = any(v.spread is not None for row in p.rows.values() for v in row.values())
    lines = [
        f"### {p.source}: {p.title} ({p.unit})",
        "",
        f"ours: mean ± s.d. over seeds (n); paper: {'mean ± ' if printed_spread else ''}{p.spread}; "
        "diff = ours − paper (paper-data rows only).",
        "",
        "| " + " | ".join([p.row_header, ""] + t.columns) + " |",
        "|" + "---|" * (len(t.columns) + 2),
    ]
    for row in t.rows:
        lines.append(
            "| " + " | ".join([row, "ours"] + [ours_text(t.cells.get((row, c)), p.unit) for c in t.columns]) + " |"
        )
        if t.paper_rows.get(row):
            values = [t.paper_value(row, c) for c in t.columns]
            spread = p.spread_of(t.row_base[row])
            lines.append(
                "| "
                + " | ".join(
                    ["", "paper" + (f" ({spread})" if spread != p.spread else "")] + [paper_text(v) for v in values]
                )
                + " |"
            )
            lines.append(
                "| "
                + " | ".join(
                    ["", "diff"] + [diff_text(t.cells.get((row, c)), v, p.unit) for c, v in zip(t.columns, values)]
                )
                + " |"
            )
    notes = sorted({f"- {row}: not compared, {reason}" for row, reason in t.notes.items()})
    if notes:
        lines += [""] + notes
    if p.notes:
        lines += ["", f"Paper: {p.notes}"]
    return "\n".join(lines) + "\n"


CSV_FIELDS = [
    "table",
    "row",
    "column",
    "paper_row",
    "paper_column",
    "paper_data",
    "n",
    "mean",
    "sd",
    "seeds",
    "paper_mean",
    "paper_spread",
    "paper_spread_means",
    "diff",
    "unit",
    "experiment",
    "runs",
]


def csv_rows(t: TableResult) -> Iterator[Dict[str, Any]]:
    for row in t.rows:
        for column in t.columns:
            g = t.cells.get((row, column))
            if g is None:
                continue
            mean, sd, n = g.stats
            v = t.paper_value(row, column)
            yield {
                "table": t.paper.name,
                "row": row,
                "column": column,
                "paper_row": t.row_base[row],
                "paper_column": t.column_base[column],
                "paper_data": g.paper_data,
                "n": n,
                "mean": mean,
                "sd": "" if sd is None else sd,
                "seeds": " ".join(str(s) for s in sorted(g.values, key=str)),
                "paper_mean": "" if v is None else v.mean,
                "paper_spread": "" if v is None or v.spread is None else v.spread,
                "paper_spread_means": t.paper.spread_of(t.row_base[row]) if v is not None else "",
                "diff": "" if v is None else mean - v.mean,
                "unit": t.paper.unit,
                "experiment": g.experiment,
                "runs": " ".join(g.paths),
            }


def write_csv(path: str, tables: Sequence[TableResult]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for t in tables:
        writer.writerows(csv_rows(t))
    _write(path, buffer.getvalue())


def plot(path: str, t: TableResult) -> str:
    """Grouped bars: ours (± s.d.) and the paper's (± its spread) for every cell we have."""
    from ..runner.plots import pyplot

    plt = pyplot()
    pairs = [(row, column) for row in t.rows for column in t.columns if (row, column) in t.cells]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(pairs) + 2), 4.5))
    x = np.arange(len(pairs))
    ours = [t.cells[pc].stats for pc in pairs]
    paper = [t.paper_value(*pc) for pc in pairs]
    ax.bar(x - 0.2, [m for m, _, _ in ours], 0.4, yerr=[sd or 0 for _, sd, _ in ours], capsize=3, label="ours")
    has = [i for i, v in enumerate(paper) if v is not None]
    if has:
        ax.bar(
            x[has] + 0.2,
            [paper[i].mean for i in has],
            0.4,
            yerr=[paper[i].spread or 0 for i in has],
            capsize=3,
            label="paper",
        )
    ax.set_xticks(x)
    ax.set_xticklabels([f"{r}\n{c}" for r, c in pairs], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(t.paper.unit)
    values = [m for m, _, _ in ours] + [paper[i].mean for i in has]
    if t.paper.unit == "%" and values and min(values) > 40:  # zoom on the differences between accuracies
        ax.set_ylim(min(values) - 10, 100)
    ax.set_title(f"{t.paper.source}: ours vs paper", fontsize=10)
    ax.legend(fontsize=8)
    # the canvas grows to hold the rotated labels (tight_layout could only warn that they do not fit)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _write(path: str, text: str) -> None:
    from ..training.files import atomic_write_text

    atomic_write_text(path, text)


def render(runs_dir: str, tables: Optional[Sequence[str]] = None) -> Tuple[str, List[TableResult]]:
    """The markdown of every table filled by runs under ``runs_dir`` (optionally only ``tables``)."""
    results, notes, n_runs = aggregate(runs_dir)
    if tables:
        results = [t for t in results if t.paper.name in tables]
    parts = [f"# Runs under {runs_dir} next to the paper ({n_runs} results.json)\n"]
    parts += [markdown(t) for t in results] or ["No run under this folder fills a table of the paper.\n"]
    if notes:
        parts.append("Not in any table:\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    return "\n".join(parts), results


def write_files(runs_dir: str, text: str, results: Sequence[TableResult]) -> None:
    """tables.md, tables.csv and one PNG per table into ``runs_dir``; an OSError names the file."""
    writes = [("tables.md", lambda path: _write(path, text)), ("tables.csv", lambda path: write_csv(path, results))]
    writes += [(f"{t.paper.name}.png", lambda path, t=t: plot(path, t)) for t in results]
    for name, write in writes:
        path = os.path.join(runs_dir, name)
        try:
            write(path)
        except OSError as e:
            raise OSError(
                e.errno, f"cannot write {path} ({e.strerror or e}); --no-files prints the tables without writing them"
            ) from None


def report(runs_dir: str, tables: Optional[Sequence[str]] = None, files: bool = True) -> str:
    """The markdown of every table filled by runs under ``runs_dir`` (optionally only ``tables``); with
    ``files``, also writes tables.md, tables.csv and one PNG per table into ``runs_dir``."""
    text, results = render(runs_dir, tables)
    if files:
        write_files(runs_dir, text, results)
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bilevel_tf.paper.tables",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("runs_dir", metavar="RUNS_DIR", help="folder searched recursively for results.json files")
    p.add_argument(
        "--tables",
        nargs="+",
        choices=list(TABLES),
        default=None,
        help="print only these tables (default: every table some run fills)",
    )
    p.add_argument(
        "--no-files",
        action="store_true",
        help="print only; do not write tables.md, tables.csv and the PNGs into RUNS_DIR",
    )
    args = p.parse_args(argv)
    if not os.path.isdir(args.runs_dir):
        print(f"error: {args.runs_dir} is not a folder", file=sys.stderr)
        return 2
    text, results = render(args.runs_dir, args.tables)
    print(text)
    if not args.no_files:
        try:
            write_files(args.runs_dir, text, results)
        except OSError as e:
            print(f"error: {e.strerror}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

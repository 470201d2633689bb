"""The robustness grid's report: success rates per solver and family (all cells, and the cells the exact
hypergradient solves with the same upper optimizer), breakdowns and the failing cells."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, List

from robustness_cells import FAMILIES, SUCCESS


def _rate(rows: List[Dict[str, Any]]) -> str:
    return (
        f"{sum(r['success'] for r in rows)}/{len(rows)} ({100 * sum(r['success'] for r in rows) / len(rows):.1f}%)"
        if rows
        else "-"
    )


def solvable(rows: List[Dict[str, Any]]) -> set:
    """(family, seed, upper kind, upper lr) where the exact hypergradient succeeds with that upper optimizer."""
    return {
        (r["family"], r["seed"], r["upper"], r["upper_lr"]) for r in rows if r["solver"] == "exact" and r["success"]
    }


def _family_head(families: List[str]) -> List[str]:
    """The head of a table with one column per family."""
    return ["| solver | all families | " + " | ".join(families) + " |", "|---|---|" + "---|" * len(families)]


def _cell(row: Dict[str, Any]) -> tuple:
    return tuple(row[k] for k in ("family", "seed", "upper", "upper_lr", "lower", "lower_lr", "inner_steps"))


def lower_floor(rows: List[Dict[str, Any]], solvers: List[str]) -> List[str]:
    """Success over the cells the oracle adjoint solves: those where the user's lower optimizer (same kind, rate
    and T) lets a method with a (near-)exact hypergradient estimate succeed."""
    ok = {_cell(r) for r in rows if r["solver"] == "oracle_adjoint" and r["success"]}
    if not ok:
        return []
    families = [f for f in FAMILIES if any(r["family"] == f for r in rows)]
    lines = [
        "",
        "Success over the cells the oracle adjoint (implicit differentiation with 30 conjugate-gradient steps at the",
        "same lower iterates) solves with the same optimizers and T:",
        "",
        *_family_head(families),
    ]
    for s in solvers:
        if s == "exact":
            continue
        sel = [r for r in rows if r["solver"] == s and _cell(r) in ok]
        lines.append(
            f"| {s} | {_rate(sel)} | "
            + " | ".join(_rate([r for r in sel if r["family"] == f]) for f in families)
            + " |"
        )
    return lines


def summary(rows: List[Dict[str, Any]], solvers: List[str], budget: int) -> str:
    ok = solvable(rows)
    feasible = [r for r in rows if (r["family"], r["seed"], r["upper"], r["upper_lr"]) in ok]
    families = [f for f in FAMILIES if any(r["family"] == f for r in rows)]
    lines = [
        f"Budget {budget} upper iterations; success: "
        + ", ".join(f"{f} {SUCCESS[f][0]} < {SUCCESS[f][1]:g}" for f in families)
        + ".",
        "",
        "Success over the cells the exact hypergradient solves with the same upper optimizer (all cells in brackets):",
        "",
        *_family_head(families),
    ]
    for s in solvers:
        sel = [r for r in feasible if r["solver"] == s]
        every = [r for r in rows if r["solver"] == s]
        cells = [
            f"{_rate([r for r in sel if r['family'] == f])} [{_rate([r for r in every if r['family'] == f])}]"
            for f in families
        ]
        lines.append(f"| {s} | {_rate(sel)} | " + " | ".join(cells) + " |")
    lines += lower_floor(rows, solvers)
    for key, title in (("inner_steps", "T"), ("upper", "upper optimizer"), ("lower", "lower optimizer")):
        values = sorted({r[key] for r in feasible if r["solver"] != "exact"}, key=str)
        lines += [
            "",
            f"By {title} (solvable cells):",
            "",
            "| solver | " + " | ".join(map(str, values)) + " |",
            "|---|" + "---|" * len(values),
        ]
        for s in solvers:
            if s == "exact":
                continue
            sel = [r for r in feasible if r["solver"] == s]
            lines.append(f"| {s} | " + " | ".join(_rate([r for r in sel if r[key] == v]) for v in values) + " |")
    return "\n".join(lines)


def failures(rows: List[Dict[str, Any]], solver: str, limit: int = 60) -> str:
    """The solvable cells ``solver`` misses, grouped by (family, optimizers, T)."""
    ok = solvable(rows)
    groups = defaultdict(list)
    for r in rows:
        if r["solver"] == solver and not r["success"] and (r["family"], r["seed"], r["upper"], r["upper_lr"]) in ok:
            groups[(r["family"], r["upper"], r["upper_lr"], r["lower"], r["lower_lr"], r["inner_steps"])].append(r)
    lines = ["| family | upper | lower | T | seeds missed (final value) |", "|---|---|---|---|---|"]
    for (fam, up, ulr, lo, llr, T), sel in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:limit]:
        lines.append(
            f"| {fam} | {up} {ulr:g} | {lo} {llr:g} | {T} | "
            + ", ".join(f"{r['seed']} ({r['final']:.2g})" for r in sel)
            + " |"
        )
    return "\n".join(lines) if groups else "none"

"""The grid behind ``simulated_runs.RECOMMENDED`` (``python benchmarks/simulated.py --tune``).

Per method a small grid of learning rates (in each slot's default class: Adam for Penalty, ApproxGrad and GD,
plain SGD for RMD and the PBGD solvers) and T, each setting run for ``--seconds`` in full batch and in
mini-batch. The best setting per method and mode is the one with the lowest suboptimality at the end of the
budget (values below 1e-13 count as equal, then the earlier time to 1e-6, then to 1e-4). Methods without a
grid here (solvers added later) get a generic grid of equal and 10x-apart learning rates at both levels.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import simulated_runs as runs
from simulated_problem import SimulatedProblem

ADAM_PAIRS = ((1e-3, 1e-3), (1e-2, 1e-2), (3e-2, 1e-2), (1e-2, 3e-2), (3e-2, 3e-2), (1e-1, 1e-1))
SGD_PAIRS = ((0.03, 0.1), (0.1, 0.1), (0.3, 0.5), (0.5, 0.5), (1.0, 1.0))
PBGD_PAIRS = ((0.1, 0.1), (0.5, 0.5), (1.0, 1.0))
#: the default ramp (gamma 0 -> 0.2 over 30000 iterations), a fast ramp, and constant penalties: f alone is
#: unbounded below in x here (its x-x block has a zero eigenvalue), so a small gamma lets (x, z) run away
PBGD_GAMMAS = (
    dict(),
    dict(gamma_max=20.0, gamma_argmax_step=1000),
    dict(gamma_init=10.0, gamma_max=10.0),
    dict(gamma_init=100.0, gamma_max=100.0),
)


def _pairs(pairs, **extra) -> List[Dict[str, Any]]:
    return [dict(upper_optimizer=u, lower_optimizer=v, **extra) for u, v in pairs]


GRIDS: Dict[str, List[Dict[str, Any]]] = {
    "penalty": _pairs(ADAM_PAIRS, inner_steps=5) + _pairs(ADAM_PAIRS),
    "approxgrad": _pairs(ADAM_PAIRS, inner_steps=5) + _pairs(ADAM_PAIRS),
    "gd": _pairs(ADAM_PAIRS),
    "rmd": _pairs(SGD_PAIRS, inner_steps=5) + _pairs(SGD_PAIRS),
    # V-PBGD's inner copy w at its default (one SGD step of 0.01 per iteration) lags so far behind that every
    # setting diverged here; ten steps of 0.5 keep it at the lower solution
    "vpbgd": [o for g in PBGD_GAMMAS for o in _pairs(PBGD_PAIRS, inner_optimizer=0.5, inner_steps=10, **g)],
    "gpbgd": [o for g in PBGD_GAMMAS for o in _pairs(PBGD_PAIRS, **g)],
}
GENERIC = _pairs([(a, a) for a in (1e-3, 1e-2, 1e-1, 1.0)] + [(a / 10, a) for a in (1e-2, 1e-1, 1.0)])


def grid(method: str) -> List[Dict[str, Any]]:
    return GRIDS.get(method, GENERIC)


def _rank(record: Dict[str, Any]) -> Tuple[float, float, float]:
    final = record["final"]
    final = math.inf if not math.isfinite(final) else (0.0 if final < 1e-13 else final)
    return (final, record["time_to_1e-06"] or math.inf, record["time_to_0.0001"] or math.inf)


def best_settings(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The winner of every (method, mode) among ``records``."""
    best = []
    for key in dict.fromkeys((r["method"], r["mode"]) for r in records):
        winner = min((r for r in records if (r["method"], r["mode"]) == key), key=_rank)
        best.append(dict(method=key[0], mode=key[1], options=winner["options"], final=winner["final"]))
    return best


def run_grid(
    quad: SimulatedProblem,
    methods: Sequence[str],
    modes: Sequence[Optional[int]],
    seconds: float,
    seed: int,
    points: int,
    done: List[Dict[str, Any]],
    save: Callable[[List[Dict[str, Any]]], None],
) -> List[Dict[str, Any]]:
    """Every grid setting of every method in every mode not already in ``done`` (``save`` gets the list after
    each run, so an interrupted grid resumes); returns all runs."""
    records = list(done)
    for batch_size in modes:
        mode = "full" if batch_size is None else f"minibatch{batch_size}"
        for method in methods:
            for options in grid(method):
                if any((r["method"], r["mode"], r["options"]) == (method, mode, options) for r in records):
                    continue
                record = runs.run_solver(quad, method, options, seconds, batch_size, seed, points)
                record["settings"] = "tune"
                record["iterations_done"] = record["iterations"][-1]
                for key in ("seconds", "iterations", "suboptimality", "config"):
                    record.pop(key)  # the grid keeps summaries only
                records.append(record)
                save(records)
                print(f"tune {method} {mode} {options}: {record['final']:.3g}", flush=True)
    return records


def markdown(records: List[Dict[str, Any]], best: List[Dict[str, Any]], seconds: float) -> str:
    lines = [f"# Tuning grid ({seconds:g} s per setting)", ""]
    if any("source" in r for r in records):
        lines += [
            "Rows with '-' times come from the first grid run, killed by the OOM killer before it wrote its "
            "JSON (fixed since): their final values are from its log.",
            "",
        ]
    lines += [
        "| method | mode | options | subopt. at end | time to 1e-4 (s) | time to 1e-6 (s) | ms / iter. |",
        "|---|---|---|---|---|---|---|",
    ]

    def seconds(r, key):
        return "-" if "source" in r else "never" if r[key] is None else f"{r[key]:.3g}"

    for r in sorted(records, key=lambda r: (r["mode"], r["method"], _rank(r))):
        ms = r["seconds_per_iteration"]
        lines.append(
            f"| {r['method']} | {r['mode']} | `{r['options']}` | {r['final']:.2g} | "
            f"{seconds(r, 'time_to_0.0001')} | {seconds(r, 'time_to_1e-06')} | "
            f"{'-' if not math.isfinite(ms) else f'{1e3 * ms:.3g}'} |"
        )
    lines += ["", "Best per method and mode:", ""]
    lines += [f"- {b['method']} ({b['mode']}): `{b['options']}` -> {b['final']:.2g}" for b in best]
    return "\n".join(lines) + "\n"

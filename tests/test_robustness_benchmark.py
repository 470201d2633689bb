"""The robustness benchmark's cells and report: the oracle adjoint is a solver of the grid, and the report counts a
solver's success over the cells the oracle solves with the same optimizers (rows as ``run_group`` writes them)."""

import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parents[1] / "benchmarks"))  # after tests/: no shadowing

from robustness_cells import SOLVERS, run_group  # noqa: E402
from robustness_report import summary  # noqa: E402


def _group(solver: str, lower_lr: float):
    task = dict(family="ridge", solver=solver, upper="adam", lower="adam", inner_steps=5, budget=1000)
    task["cells"] = [(0, 3e-2, lower_lr)]
    return run_group(task)


def test_oracle_adjoint_is_implicit_with_a_near_exact_solve():
    method, slots, options = SOLVERS["oracle_adjoint"]
    assert (method, slots) == ("implicit", ("lower_optimizer",))
    assert options["linear_solver"] == "cg" and options["linear_steps"] >= 10  # ridge's 10 features: exact


@pytest.mark.slow  # two compiled solvers, 1000 iterations each (~15 s)
def test_report_counts_success_over_the_oracles_cells():
    rows = _group("oracle_adjoint", 1e-2) + _group("penalty", 1e-2)
    assert {r["solver"] for r in rows} == {"oracle_adjoint", "penalty"}
    assert all(len(r["curve"]) == 1 and r["final"] < 1.0 for r in rows)  # 1000 iterations reduce F from F(u0)
    # mark the oracle's cell solved and the penalty's not, so the table's entries are known
    oracle, penalty = rows
    oracle["success"], penalty["success"] = True, False
    report = summary(rows, ["penalty", "oracle_adjoint"], 1000)
    table = report.split("Success over the cells the oracle adjoint")[1].split("By T")[0]
    lines = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert "0/1 (0.0%)" in lines["penalty"] and "1/1 (100.0%)" in lines["oracle_adjoint"]
    # a cell the oracle does not solve is left out of that table
    oracle["success"] = False
    assert "Success over the cells the oracle adjoint" not in summary(rows, ["penalty", "oracle_adjoint"], 1000)

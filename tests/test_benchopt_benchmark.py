"""benchmarks/benchopt runs under benchopt (an optional extra: pip install -e ".[bench]"; skipped without it):
every method of bl.METHODS has its solver file, and on a tiny simulated quadratic each one's curve starts at
the benchmark's start and goes down, in one benchopt run."""

from pathlib import Path

import numpy as np
import pytest

benchopt = pytest.importorskip("benchopt")
pd = pytest.importorskip("pandas")
import bilevel_tf as bl  # noqa: E402

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "benchopt"
pytestmark = pytest.mark.slow  # compiles every solver inside benchopt's runner (~35 s)
# the library's defaults, mini-batches of 8 (the recommended settings add XLA: a long compile)
SETTINGS = "batch_size=8,eval_every=4,settings=default"


def test_benchopt_runs_every_method_on_the_simulated_quadratic(tmp_path):
    assert sorted(p.stem for p in (BENCHMARK / "solvers").glob("*.py")) == sorted(bl.METHODS)
    out = benchopt.run_benchmark(
        str(BENCHMARK),
        solver_names=[f"{m}[{SETTINGS}]" for m in bl.METHODS],
        dataset_names=["simulated[spec=tiny]"],
        max_runs=4,
        n_repetitions=1,
        timeout=120,
        plot_result=False,
        display=False,
        html=False,
        show_progress=False,
        no_cache=True,
        output_file=str(tmp_path / "out"),
    )
    frame = pd.read_parquet(out) if str(out).endswith(".parquet") else pd.read_csv(out)
    curves = {
        name.split("[")[0]: group.sort_values("stop_val")["objective_relative_suboptimality"].to_numpy()
        for name, group in frame.groupby("solver_name")
    }
    assert sorted(curves) == sorted(bl.METHODS)
    for method, subopt in curves.items():
        assert subopt[0] == pytest.approx(1.0), method  # the start, x0 = -2
        assert len(subopt) >= 3 and np.all(np.isfinite(subopt)) and subopt[-1] < subopt[0], (method, subopt)

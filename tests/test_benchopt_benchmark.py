"""benchmarks/benchopt runs under benchopt (an optional extra: pip install -e ".[bench]"; skipped without it):
a tiny simulated quadratic, one solver, a few evaluations, and the curve goes down from the start."""
from pathlib import Path

import pytest

benchopt = pytest.importorskip("benchopt")
pd = pytest.importorskip("pandas")

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "benchopt"
pytestmark = pytest.mark.slow  # compiles a solver inside benchopt's runner
# the library's defaults but larger learning rates (the recommended settings add XLA: a long compile)
SOLVER = "penalty[batch_size=8,eval_every=4,settings=default,upper_lr=0.01,lower_lr=0.01]"


def test_benchopt_runs_the_simulated_quadratic(tmp_path):
    out = benchopt.run_benchmark(str(BENCHMARK), solver_names=[SOLVER],
                                 dataset_names=["simulated[spec=tiny]"], max_runs=4, n_repetitions=1, timeout=120,
                                 plot_result=False, display=False, html=False, show_progress=False, no_cache=True,
                                 output_file=str(tmp_path / "out"))
    frame = pd.read_parquet(out) if str(out).endswith(".parquet") else pd.read_csv(out)
    subopt = frame.sort_values("stop_val")["objective_relative_suboptimality"].to_numpy()
    assert subopt[0] == pytest.approx(1.0)  # the start, x0 = -2
    assert len(subopt) >= 3 and subopt[-1] < 0.9 * subopt[0]

"""Tables and plots of timed runs on the simulated quadratic (matplotlib only: no TensorFlow, no JAX).

A run record (``simulated_runs.run_solver`` and the JAX side of ``side_by_side.py`` write the same keys):
``framework``, ``method``, ``settings``, ``mode``, ``seconds``, ``iterations``, ``suboptimality`` (lists, the
first entry at the start), ``final``, ``best``, ``time_to_<threshold>``, ``iterations_to_<threshold>``,
``seconds_per_iteration``, ``stopped``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

FLOOR = 1e-16  # plotted in place of exact zeros on the log axis
CEILING = 1e2  # plotted in place of larger values (diverged runs)


def label(record: Dict[str, Any], with_framework: bool = False) -> str:
    name = record["method"]
    if record.get("settings") and record["settings"] != "published":
        name += f" ({record['settings']})"
    if with_framework:
        name = f"{record['framework']}: {name}"
    return name


def _fmt_value(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.2g}"


def _fmt_seconds(x: Optional[float]) -> str:
    return "never" if x is None else f"{x:.3g}"


def markdown_table(
    records: Sequence[Dict[str, Any]],
    seconds: float,
    thresholds: Sequence[float] = (1e-4,),
    with_framework: bool = False,
) -> str:
    """One row per run: suboptimality at the end of the budget, best value, time (and iterations) to each
    threshold, iterations done and seconds per iteration."""
    head = ["solver", "mode", f"subopt. at {seconds:g} s", "best"]
    for thr in thresholds:
        head += [f"time to {thr:g} (s)", f"iter. to {thr:g}"]
    head += ["iterations", "ms / iter.", "ended"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        row = [label(r, with_framework), r["mode"], _fmt_value(r["final"]), _fmt_value(r["best"])]
        for thr in thresholds:
            its = r.get(f"iterations_to_{thr:g}")
            row += [_fmt_seconds(r.get(f"time_to_{thr:g}")), "-" if its is None else str(its)]
        row += [str(r["iterations"][-1]), f"{1e3 * r['seconds_per_iteration']:.3g}", r.get("stopped", "time")]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot(records: Sequence[Dict[str, Any]], path: str, title: str, with_framework: bool = False) -> None:
    """Suboptimality vs time (left) and vs upper iterations (right), one panel row per mode; one color per
    method (and framework), dashed for default settings and for the JAX side; values clipped to
    [FLOOR, CEILING] so that diverged runs leave the top of the panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = sorted({r["mode"] for r in records}, key=lambda m: (m != "full", m))
    fig, axes = plt.subplots(len(modes), 2, figsize=(13, 4.6 * len(modes)), squeeze=False)
    keys = sorted({(r.get("framework", ""), r["method"]) for r in records})
    colors = {k: plt.get_cmap("tab10" if len(keys) <= 10 else "tab20")(i % 20) for i, k in enumerate(keys)}
    for row, mode in zip(axes, modes):
        for r in (r for r in records if r["mode"] == mode):
            color = colors[(r.get("framework", ""), r["method"])]
            style = "--" if r.get("settings") == "default" or r.get("framework", "").startswith("jax") else "-"
            values = [min(max(v, FLOOR), CEILING) if v == v else CEILING for v in r["suboptimality"]]
            # log axes: the start (t = 0, iteration 0) is drawn at 1 ms / iteration 1
            row[0].plot(
                [max(t, 1e-3) for t in r["seconds"]], values, style, color=color, label=label(r, with_framework), lw=1.4
            )
            row[1].plot([max(i, 1) for i in r["iterations"]], values, style, color=color, lw=1.4)
        for ax, xlabel in zip(row, ("solver time (s)", "upper iterations")):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_ylim(FLOOR, CEILING)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("(h(x) - h*) / (h(x0) - h*)")
            ax.grid(True, which="major", alpha=0.3)
            ax.set_title(f"{title}: {mode}")
        row[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def order(records: List[Dict[str, Any]], methods: Sequence[str]) -> List[Dict[str, Any]]:
    """Records sorted by mode (full first), then settings, then the given method order."""
    rank = {m: i for i, m in enumerate(methods)}
    return sorted(
        records,
        key=lambda r: (
            r["mode"] != "full",
            r["mode"],
            r.get("framework", ""),
            r.get("settings", ""),
            rank.get(r["method"], len(rank)),
            r["method"],
        ),
    )

"""Turn benchmark records into results.json, a markdown report (tables + target checks) and plots."""

from __future__ import annotations

import json
import os
import platform
from collections import defaultdict
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Iterable, List

SOLVER_ORDER = ("penalty", "approxgrad", "rmd", "gd", "vpbgd", "gpbgd")


def machine_info(args, argv: List[str]) -> Dict[str, Any]:
    versions = {}
    for package in ("tensorflow", "keras", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return dict(
        command=" ".join(argv),
        quick=bool(args.quick),
        cpu_count=os.cpu_count(),
        load_average_at_start=os.getloadavg(),
        platform=platform.platform(),
        processor=platform.processor(),
        python=platform.python_version(),
        **versions,
    )


def save_json(path: Path, data: Dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def _of(records: Iterable[Dict[str, Any]], **match) -> List[Dict[str, Any]]:
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


def _methods(records) -> List[str]:
    present = {r["method"] for r in records}
    return [m for m in SOLVER_ORDER if m in present]


def _fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _ratios(r: Dict[str, Any], key: str = "ratio") -> str:
    """'wall x / CPU x' (the CPU-time ratio is missing from records of older runs)."""
    cpu = r.get("cpu_" + key)
    return f"{r[key]:.2f}x" + ("" if cpu is None else f" / {cpu:.2f}x")


def _table(header: List[str], rows: List[List[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


# --------------------------------------------------------------------------------------------- sections
def _sweep_tables(records) -> List[str]:
    lines: List[str] = []
    for problem in sorted({r["problem"] for r in records}, key=lambda p: (p != "cnn", p)):
        rs = _of(records, problem=problem)
        ts = sorted({r["T"] for r in rs})
        info = rs[0]
        lines += [
            f"### {problem}: {info['model']}",
            "",
            f"{info['upper_variables']:,} upper / {info['lower_variables']:,} lower variables, batch {info['batch']}, "
            f"jit_compile={info['jit']}; plain Keras train step: {_fmt_s(_median([r['plain_seconds'] for r in rs]))} "
            f"(median over the run). Cells: seconds per upper iteration (its ratio to the plain step in wall time / in "
            f"CPU time).",
            "",
        ]
        lines += _solver_by_t(rs, ts, lambda r: f"{_fmt_s(r['seconds'])} ({_ratios(r)})")
        lines += [
            "Peak resident memory during steady-state steps, MB (above the process baseline of model, data, "
            "TensorFlow and a plain step"
            + (f": {info['baseline_rss_mb']:.0f} MB" if info.get("baseline_rss_mb") else "")
            + ")"
            + (
                ""
                if all(r.get("isolated") for r in rs)
                else "; quick run: all configurations share one process (peak reset before each, so memory "
                "freed but kept by earlier ones can only inflate later peaks)"
            ),
            "",
        ]
        lines += _solver_by_t(rs, ts, lambda r: f"{r['peak_rss_mb']:.0f} (+{r['peak_above_baseline_mb']:.0f})")
    return lines


def _solver_by_t(records, ts, cell) -> List[str]:
    """A table with one row per solver and one column per T; ``cell(record)`` formats an entry."""
    rows = []
    for m in _methods(records):
        hits = [_of(records, method=m, T=t) for t in ts]
        rows.append([m] + [cell(h[0]) if h else "" for h in hits])
    return _table(["solver"] + [f"T={t}" for t in ts], rows) + [""]


def _median(xs: List[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return float("nan") if n == 0 else (xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2]))


def _scale_table(records) -> List[str]:
    sizes = sorted({(r["upper_variables"], r["lower_variables"], r["problem"]) for r in records})
    rows = []
    for m in _methods(records):
        cells = []
        for _, _, problem in sizes:
            hit = _of(records, method=m, problem=problem)
            cells.append(
                f"{_fmt_s(hit[0]['seconds'])} ({_ratios(hit[0])}), {hit[0]['peak_rss_mb']:.0f} MB" if hit else ""
            )
        rows.append([m] + cells)
    header = ["solver"] + [f"{u / 1e6:.2f}M / {l / 1e6:.2f}M" for u, l, _ in sizes]
    return (
        [
            "Split MLP, T = 10, batch 128; columns: upper / lower variables. Cells: seconds per upper iteration "
            "(ratio to the plain step, wall / CPU time), peak resident memory.",
            "",
        ]
        + _table(header, rows)
        + [""]
    )


def _inner_tables(records) -> List[str]:
    inner, blocks = _of(records, kind="inner"), _of(records, kind="block")
    rows = [
        [
            r["problem"],
            str(r["jit"]),
            r["method"],
            _fmt_s(r["inner_seconds"]),
            _ratios(r),
            _fmt_s(r["plain_seconds"]),
            _ratios(r, "step_T1_ratio"),
        ]
        for r in inner
    ]
    lines = [
        "One inner step = the slope of seconds per upper iteration between T=1 and T=K (the marginal cost of "
        "one more inner step, everything else cancels); ratio = that / the plain Keras train step, interleaved, in wall "
        "time / in CPU time.",
        "An ApproxGrad 'inner step' is one lower step plus one linear-system step (two HVPs).",
        "",
    ]
    lines += _table(["problem", "XLA", "solver", "one inner step", "ratio", "plain step", "T=1 iteration ratio"], rows)
    if blocks:
        lines += [
            "",
            "Where the time goes: building blocks compiled alone, ratio to the plain step; FLOPs from "
            "TensorFlow's cost model on the traced graph (arithmetic, immune to load; forward-mode JVPs are "
            "not counted by it).",
            "",
        ]
        rows = [
            [
                r["problem"],
                str(r["jit"]),
                r["block"],
                _fmt_s(r["seconds"]),
                _ratios(r),
                f"{r['flop_ratio']:.2f}x" if "flop_ratio" in r else "-",
            ]
            for r in blocks
        ]
        lines += _table(["problem", "XLA", "block", "seconds", "ratio (wall / CPU)", "FLOPs vs plain"], rows)
    return lines + [""]


def _compare_table(records, study: str) -> List[str]:
    rs = _of(records, kind="compare", study=study)
    rows = []
    for r in rs:
        variant = ", ".join(f"{k}={v}" for k, v in r["variant"].items())
        rows.append(
            [
                r["problem"],
                r["method"],
                f"T={r['T']}",
                variant,
                _fmt_s(r["seconds"]),
                _ratios(r),
                _ratios(r, "ratio_to_first"),
                f"{r['compile_seconds']:.1f} s",
            ]
        )
    return _table(
        [
            "problem",
            "solver",
            "T",
            "variant",
            "s / iteration",
            "vs plain step (graph)",
            "vs first variant",
            "first call (compile)",
        ],
        rows,
    ) + [""]


def _overhead_table(records) -> List[str]:
    """Seconds per upper iteration through bl.fit for each steps_per_execution k, and the solver.run floor."""
    rs = _of(records, kind="overhead")
    ks = [k for k in (1, 10, 100) if _of(rs, k=k)]
    rows = []
    for problem in sorted({r["problem"] for r in rs}, key=lambda p: p != "ex1"):
        for jit in (False, True):
            cells = []
            for k in ks + ["solver.run"]:
                r = _of(rs, problem=problem, jit=jit, k=k)
                cells.append(f"{r[0]['seconds'] * 1000:.3f} ms ({r[0]['speedup_vs_first_k']:.1f}x)" if r else "-")
            if any(c != "-" for c in cells):
                first = _of(rs, problem=problem, jit=jit)[0]
                rows.append([problem, f"T={first['T']}", "XLA" if jit else "graph"] + cells)
    return _table(
        ["problem", "T", "compile"] + [f"bl.fit k={k}" for k in ks] + ["solver.run (in-graph floor)"], rows
    ) + [
        "",
        "Wall seconds per upper iteration (median of repeated fits after a warm-up fit, "
        "the whole bl.fit call timed); in brackets the speed-up over k=1. Not interleaved with a "
        "plain step: compare within a row.",
        "",
    ]


# --------------------------------------------------------------------------------------------- targets
def targets(records) -> List[str]:
    lines = []
    inner = _of(records, kind="inner", method="penalty")
    for r in inner:
        bound = 3.0 if "1024" in r["problem"] else 1.0 if "64-32" in r["problem"] else None
        if bound is not None:
            key = "cpu_ratio" if "cpu_ratio" in r else "ratio"
            ok = "met" if r[key] <= bound else "NOT met"
            lines.append(
                f"- Penalty inner step, {r['problem']}, XLA={r['jit']}: {_ratios(r)} the plain step "
                f"(wall / CPU time; target <= {bound:g}x): **{ok}**"
            )
            floor = _of(records, kind="block", problem=r["problem"], jit=r["jit"])
            floor = [b for b in floor if b["block"].startswith("Penalty pass") and "flop_ratio" in b]
            if floor and r[key] > bound:
                lines.append(
                    f"  - its arithmetic alone is {floor[0]['flop_ratio']:.2f}x the plain step's (the Penalty "
                    f"pass: grad f + exact HVP, TensorFlow's FLOP count), so no exact-HVP step can reach "
                    f"{bound:g}x at equal arithmetic efficiency"
                )
    sweep = _of(records, kind="sweep")
    for problem in sorted({r["problem"] for r in sweep}):
        rs = _of(sweep, problem=problem)
        ts = sorted({r["T"] for r in rs})
        if len(ts) < 2:
            continue
        lo, hi = ts[0], ts[-1]
        for m in ("penalty", "approxgrad", "rmd"):
            a, b = _of(rs, method=m, T=lo), _of(rs, method=m, T=hi)
            if not (a and b):
                continue
            a, b = a[0], b[0]
            growth = b["peak_rss_mb"] / a["peak_rss_mb"] - 1
            extra = b["peak_above_baseline_mb"] - a["peak_above_baseline_mb"]
            if m == "rmd":
                verdict = "grows, as it must" if extra > 0 else "does not grow (?)"
            else:
                verdict = "met" if growth <= 0.10 else "NOT met"
            lines.append(
                f"- {problem}: {m} peak memory T={hi} vs T={lo}: {b['peak_rss_mb']:.0f} vs {a['peak_rss_mb']:.0f} MB "
                f"({growth:+.1%}; {extra:+.0f} MB above baseline): **{verdict}**"
            )
        # compared through their ratios to the plain step: the two ran at different times (or in different
        # processes), and the machine's load drifts in between
        pairs = [(t, _of(rs, method="penalty", T=t), _of(rs, method="approxgrad", T=t)) for t in ts]
        key = "cpu_ratio" if all("cpu_ratio" in r for r in rs) else "ratio"
        speed = [(t, q[0][key] / p[0][key]) for t, p, q in pairs if p and q]
        if speed:
            ok = all(s >= 1 for _, s in speed)
            lines.append(
                f"- {problem}: ApproxGrad / Penalty time per upper iteration (each normalised by its plain "
                f"step, {'CPU' if key == 'cpu_ratio' else 'wall'} time): "
                f"{', '.join(f'T={t}: {s:.2f}x' for t, s in speed)} (target >= 1): "
                f"**{'met' if ok else 'NOT met'}**"
            )
    for jit in (False, True):
        one, hundred = (
            _of(records, kind="overhead", problem="ex1", jit=jit, k=1),
            _of(records, kind="overhead", problem="ex1", jit=jit, k=100),
        )
        if one and hundred:
            speedup = one[0]["seconds"] / hundred[0]["seconds"]
            cpu = one[0]["cpu_seconds"] / hundred[0]["cpu_seconds"]
            floor = _of(records, kind="overhead", problem="ex1", jit=jit, k="solver.run")
            bound = (
                f"; solver.run's in-graph loop, the floor, is {floor[0]['speedup_vs_first_k']:.1f}x" if floor else ""
            )
            lines.append(
                f"- Ex.1 (T=10) through bl.fit, {'XLA' if jit else 'graph'}: steps_per_execution=100 is "
                f"{speedup:.1f}x (CPU time {cpu:.1f}x) faster per upper iteration than k=1{bound} "
                f"(target >= 5x): **{'met' if speedup >= 5 else 'NOT met'}**"
            )
    largest = [r for r in sweep if r.get("scale") == 1.0 and r["problem"].startswith("mlp")]
    if largest:
        worst = max(largest, key=lambda r: r["peak_rss_mb"])
        lines.append(
            f"- Largest problem ({largest[0]['upper_variables']:,} upper / {largest[0]['lower_variables']:,} lower) "
            f"ran: {len(largest)} configurations; highest peak {worst['peak_rss_mb']:.0f} MB "
            f"({worst['method']} T={worst['T']}), slowest {max(r['seconds'] for r in largest):.1f} s per iteration"
        )
    return lines


# --------------------------------------------------------------------------------------------- plots
def plots(records, out: Path) -> List[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    sweep = _of(records, kind="sweep")
    by_problem = defaultdict(list)
    for r in sweep:
        by_problem[r["problem"]].append(r)
    multi_t = {p: rs for p, rs in by_problem.items() if len({r["T"] for r in rs}) > 1}
    if multi_t:
        fig, axes = plt.subplots(len(multi_t), 2, figsize=(11, 4 * len(multi_t)), squeeze=False)
        for row, (problem, rs) in enumerate(sorted(multi_t.items())):
            for m in _methods(rs):
                pts = sorted((r["T"], r["seconds"], r["peak_rss_mb"]) for r in rs if r["method"] == m)
                axes[row][0].plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=m)
                axes[row][1].plot([p[0] for p in pts], [p[2] for p in pts], "o-", label=m)
            axes[row][0].set(xlabel="T (inner steps)", ylabel="seconds per upper iteration", title=f"{problem}: time")
            axes[row][1].set(xlabel="T (inner steps)", ylabel="peak resident memory (MB)", title=f"{problem}: memory")
            axes[row][0].legend()
        fig.tight_layout()
        fig.savefig(out / "time_memory_vs_T.png", dpi=110)
        plt.close(fig)
        written.append("time_memory_vs_T.png")
    scale = [r for r in sweep if r["problem"].startswith("mlp@") and r["T"] == 10]
    if len({r["problem"] for r in scale}) > 1:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for m in _methods(scale):
            pts = sorted(
                (r["upper_variables"] + r["lower_variables"], r["seconds"], r["peak_rss_mb"])
                for r in scale
                if r["method"] == m
            )
            axes[0].loglog([p[0] for p in pts], [p[1] for p in pts], "o-", label=m)
            axes[1].semilogx([p[0] for p in pts], [p[2] for p in pts], "o-", label=m)
        axes[0].set(xlabel="variables (upper + lower)", ylabel="seconds per upper iteration", title="split MLP, T=10")
        axes[1].set(xlabel="variables (upper + lower)", ylabel="peak resident memory (MB)", title="split MLP, T=10")
        axes[0].legend()
        fig.tight_layout()
        fig.savefig(out / "scale.png", dpi=110)
        plt.close(fig)
        written.append("scale.png")
    return written


# --------------------------------------------------------------------------------------------- report
def write(results: Dict[str, Any], out: Path) -> None:
    save_json(out / "results.json", results)
    records, meta = results["records"], results["meta"]
    sweep = _of(records, kind="sweep")
    multi_t = {p for p in {r["problem"] for r in sweep} if len({r["T"] for r in _of(sweep, problem=p)}) > 1}
    t_sweep = [r for r in sweep if r["problem"] in multi_t]
    scale = [r for r in sweep if r["problem"].startswith("mlp@") and r["T"] == 10]
    lines = [
        f"# bilevel_tf benchmark ({'quick' if meta.get('quick') else 'full'})",
        "",
        f"`{meta.get('command')}` — {meta.get('cpu_count')} CPUs, load average at start "
        f"{', '.join(f'{x:.1f}' for x in meta.get('load_average_at_start', []))}, TensorFlow {meta.get('tensorflow')}, "
        f"Keras {meta.get('keras')}; {meta.get('seconds', 0) / 60:.1f} min.",
        "",
        "Every time is the median of repeated calls after warm-up (compilation excluded), measured interleaved "
        "with a plain Keras train step of the same model and batch in the same process; ratios are medians of "
        "back-to-back pairs, so they hold up on a shared, noisy machine better than the absolute times. Ratios "
        "are given in wall time / in process CPU time: on a machine shared with other jobs the wall time also "
        "counts waits for a core, so the CPU-time ratio is the steadier one and the targets are judged on it.",
        "",
    ]
    target_lines = targets(records)
    if target_lines:
        lines += ["## Targets", ""] + target_lines + [""]
    if t_sweep:
        lines += ["## Time and memory vs T", ""] + _sweep_tables(t_sweep)
    if len({r["problem"] for r in scale}) > 1:
        lines += ["## Scaling with problem size", ""] + _scale_table(scale)
    if _of(records, kind="inner"):
        lines += ["## One inner step vs a plain Keras train step", ""] + _inner_tables(records)
    for study, title in (
        ("hvp", "Second-order products: double backward vs forward-over-reverse"),
        ("xla", "XLA (jit_compile) off vs on"),
        ("precision", "Mixed precision: float32 vs mixed_bfloat16"),
    ):
        if _of(records, kind="compare", study=study):
            lines += [f"## {title}", ""] + _compare_table(records, study)
    if _of(records, kind="overhead"):
        lines += ["## Per-call overhead: bl.fit steps_per_execution", ""] + _overhead_table(records)
    errors = _of(records, kind="error")
    if errors:
        lines += ["## Failed workers", ""] + [f"- `{json.dumps(e['spec'])}`: {e['error']}" for e in errors] + [""]
    figures = plots(records, out)
    if figures:
        lines += ["## Figures", ""] + [f"![{f}]({f})" for f in figures] + [""]
    (out / "results.md").write_text("\n".join(lines))

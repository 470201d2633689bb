"""The clean-label attack's report, from its per-target records (targets.jsonl): the success rates and curves
against the radius budget (paper figure 3), the figures and results.json."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np

from bilevel_tf.runner import experiment, plots, results_file, tensorboard_logs
from bilevel_tf.published import cells


def success_curve(records: Sequence[Mapping[str, Any]], radii: Sequence[float]) -> Dict[str, List[float]]:
    """Paper figure 3: for each budget R, the fraction of targets flipped with a radius <= R and the average
    L2 distortion of the poisons used (the first flipping one, or the one at the largest radius <= R)."""
    radii = sorted(radii)
    rates, distortions = [], []
    for budget in radii:
        flipped, used = [], []
        for rec in records:
            tried = sorted((float(r), d) for r, d in rec["distortions"].items() if float(r) <= budget)
            flipped.append(rec["radius"] is not None and rec["radius"] <= budget)
            used.append(tried[-1][1] if tried else 0.0)
        rates.append(float(np.mean(flipped)) if records else float("nan"))
        distortions.append(float(np.mean(used)) if records else float("nan"))
    return dict(radius=[float(r) for r in radii], success_rate=rates, average_distortion=distortions)


def clean_label_metrics(
    records: Sequence[Mapping[str, Any]], radii: Sequence[float], clean_accuracy: float, num_train: int
) -> Dict[str, Any]:
    bilevel = success_curve([r["bilevel"] for r in records], radii)
    metrics: Dict[str, Any] = dict(
        clean_test_accuracy=clean_accuracy,
        num_targets=len(records),
        num_train=num_train,
        attack_success_rate=bilevel["success_rate"][-1] if records else float("nan"),
        success_curve=bilevel,
    )
    found = [r["bilevel"]["radius"] for r in records if r["bilevel"]["radius"] is not None]
    metrics["mean_success_radius"] = float(np.mean(found)) if found else None
    with_baseline = [r["baseline"] for r in records if r["baseline"] is not None]
    if with_baseline:
        base_curve = success_curve(with_baseline, radii)
        metrics.update(baseline_attack_success_rate=base_curve["success_rate"][-1], baseline_success_curve=base_curve)
    with_pgd = [r["pgd_radius"] for r in records if "pgd_radius" in r]
    if with_pgd:
        rates = [float(np.mean([r is not None and r <= R for r in with_pgd])) for R in sorted(radii)]
        metrics.update(
            pgd_evasion_success_rate=rates[-1], pgd_success_curve=dict(radius=sorted(radii), success_rate=rates)
        )
    return metrics


def plot_clean_label(
    out: str, records: Sequence[Mapping[str, Any]], metrics: Mapping[str, Any], image_dir: str, count: int, method: str
) -> None:
    """Paper figure 3 (success rate vs average distortion) and figure 8 (target / base / poison rows)."""
    curves = {f"bilevel ({method})": metrics["success_curve"]}
    if "baseline_success_curve" in metrics:
        curves["Shafahi et al. feature collision"] = metrics["baseline_success_curve"]
    plots.plot_curves(
        os.path.join(out, "success_vs_distortion.png"),
        {k: (c["average_distortion"], c["success_rate"]) for k, c in curves.items()},
        xlabel="average L2 distortion ||poison - base||",
        ylabel="attack success rate",
        title="clean-label attack (paper figure 3)",
        markers=True,
    )
    saved = [r for r in records if os.path.exists(os.path.join(image_dir, f"target_{r['target']}.npz"))]
    saved.sort(key=lambda r: r["bilevel"]["radius"] is None)  # successful targets first
    saved = saved[:count]
    if not saved:
        return
    rows: Dict[str, list] = {"target": [], "base": [], "poison": [], "baseline poison": []}
    for r in saved:
        with np.load(os.path.join(image_dir, f"target_{r['target']}.npz")) as f:
            for row, key in zip(rows, ("target", "base", "poison", "baseline")):
                rows[row].append(to_unit_range(f[key]))
    plots.plot_image_rows(
        os.path.join(out, "poison_images.png"),
        {k: np.stack(v) for k, v in rows.items()},
        title="radius found per column: " + " ".join(str(r["bilevel"]["radius"]) for r in saved),
    )


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """[-1, 1] Inception pixels -> [0, 1] for figures (the original saved (x + 1) / 2)."""
    return np.clip((np.asarray(images) + 1.0) / 2.0, 0.0, 1.0)


def write_clean_label_outputs(
    args, records: List[Dict[str, Any]], metrics: Dict[str, Any], image_dir: str, attack: Any
) -> None:
    """The figures, the TensorBoard records and results.json of the finished attack."""
    for figure in ("success_vs_distortion.png", "poison_images.png"):  # what plot_clean_label writes
        experiment.output_path(args, figure)
    plot_clean_label(args.out, records, metrics, image_dir, args.figure_targets, args.method)
    seconds = attack.seconds[1:] or attack.seconds
    tensorboard_logs.write_records(args, records)
    results_file.write_results(
        args,
        metrics=metrics,
        history=records,
        paper=cells.paper_entry(args, "dogfish"),
        seconds_per_upper_iteration=float(np.median(seconds)) if seconds else None,
        solver=attack.solver,
        dataset="smoke" if args.smoke and not args.data_dir else "dogfish",
        summary_keys=[
            "clean_test_accuracy",
            "num_targets",
            "attack_success_rate",
            "baseline_attack_success_rate",
            "pgd_evasion_success_rate",
        ],
    )

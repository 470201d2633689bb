"""A run's ``results.json``: what it measured, the configuration that produced it (flags and solver), and the
published values it compares with; written atomically, with a one-line summary on the console."""

from __future__ import annotations

import argparse
import json
import math
import os
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..training.files import atomic_write_text


def config_of(args: argparse.Namespace, **extra: Any) -> Dict[str, Any]:
    cfg = {k: v for k, v in vars(args).items() if k != "verbose" and not k.startswith("_")}
    cfg.update(extra)
    return _jsonable(cfg)


def flatten(mapping: Mapping[str, Any], sep: str = ".", prefix: str = "") -> Dict[str, Any]:
    """Nested dicts as one level, keys joined by ``sep`` ({"a": {"b": 1}} -> {"a.b": 1})."""
    out: Dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, sep, name + sep))
        else:
            out[name] = value
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if hasattr(x, "numpy"):
        return _jsonable(x.numpy())
    return x


def write_results(
    args: argparse.Namespace,
    *,
    metrics: Mapping[str, Any],
    history: Iterable[Mapping[str, Any]] = (),
    seconds_per_upper_iteration: Optional[float] = None,
    dataset: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
    summary_keys: Optional[Sequence[str]] = None,
    paper: Optional[Tuple[Optional[Mapping[str, Any]], Optional[str]]] = None,
    solver: Any = None,
    setting: str = "",
) -> str:
    """Write ``<out>/results.json`` (experiment, method, dataset, config, metrics, history,
    seconds_per_upper_iteration, paper) atomically and print a one-line summary. ``paper``:
    ``bilevel_tf.published.cells.paper_entry(args, dataset)``, i.e. the published values this run compares with, or None
    and the reason it does not (recorded as ``paper_reason``). ``solver``: the bilevel solver that produced
    the result (or a mapping name -> solver); its class and full ``get_config()`` (every schedule constant,
    each optimizer's config) go into ``config["solver"]``. ``setting`` (e.g. "5-way 1-shot") follows the method
    in the summary line."""
    result = {
        "experiment": args.experiment,
        "method": args.method,
        "dataset": dataset if dataset is not None else getattr(args, "dataset", None),
        "config": dict(config) if config is not None else config_of(args),
        "paper": paper[0] if paper else None,
        "paper_reason": paper[1] if paper else "this runner records no comparison with the paper",
        "metrics": dict(metrics),
        "history": list(history),
        "seconds_per_upper_iteration": seconds_per_upper_iteration,
    }
    if isinstance(solver, Mapping):  # several solvers (e.g. the synthetic sweep's): one entry each
        result["config"]["solver"] = {name: {"class": type(s).__name__, **s.get_config()} for name, s in solver.items()}
    elif solver is not None:
        result["config"]["solver"] = {"class": type(solver).__name__, **solver.get_config()}
    path = os.path.join(args.out, "results.json")
    atomic_write_text(path, json.dumps(_jsonable(result), indent=1))
    keys = summary_keys or [k for k, v in metrics.items() if isinstance(v, (int, float, np.floating))]
    parts = [f"{k}={_fmt(metrics[k])}" for k in keys if k in metrics]
    if seconds_per_upper_iteration is not None:
        parts.append(f"s/iter={seconds_per_upper_iteration:.4g}")
    print(
        f"[{args.experiment}] method={args.method} "
        + (f"{setting} " if setting else "")
        + " ".join(parts)
        + f" -> {path}",
        flush=True,
    )
    return path


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, (float, np.floating)) else str(x)

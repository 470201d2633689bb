"""A behaviour snapshot of every experiment runner: ~20 tiny offline settings, their metrics in one JSON file.

    python benchmarks/snapshot.py --out snapshot.json [--jobs 2] [--only NAME ...]
    python benchmarks/snapshot.py --compare before.json after.json

Each setting runs one runner with ``--smoke`` (offline data, tiny sizes), a fixed ``--seed`` and its own ``--out``,
as a subprocess of this checkout (``PYTHONPATH`` = its root, an empty ``KERAS_HOME``), and keeps every key of its
results.json's ``metrics`` and ``history`` except timings (a key naming seconds or time). ``--compare`` prints
every difference between two snapshots (missing settings or keys, unequal values) and exits with status 1 when
there is one: a refactoring that keeps behaviour gives equal snapshots.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
SEED = 3

_DENOISING = {
    "small": "data_denoising/mnist_small_scale/test_bilevel_importance_learning_mnist.py",
    "large": "data_denoising/mnist_large_scale/test_bilevel_importance_learning_mnist.py",
    "cifar10": "data_denoising/cifar10/test_bilevel_importance_learning_cifar10.py",
    "svhn": "data_denoising/svhn/test_bilevel_importance_learning_svhn.py",
}
_HYPER_CLEANING = "data_denoising/hyper_cleaning/data_hyper_clean.py"
_OMNIGLOT = "few_shot/omniglot/test_bilevel_few_shot_learning_omniglot.py"
_MINIIMAGENET = "few_shot/miniimagenet/test_bilevel_few_shot_learning_miniimagenet.py"
_POISONING = {
    "untargeted": "data_poisoning/untargeted/test_bilevel_poisoning_untargeted.py",
    "targeted": "data_poisoning/targeted/test_bilevel_poisoning_targeted.py",
}

#: setting name -> (runner, flags besides --smoke --seed --out --verbose)
SETTINGS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "synthetic": ("synthetic_examples/test_synthetic.py", ()),
    "pbgd_toy": ("synthetic_examples/pbgd_toy.py", ()),
    **{f"denoising_{name}": (path, ()) for name, path in _DENOISING.items()},
    "denoising_small_rmd": (_DENOISING["small"], ("--method", "rmd")),
    "denoising_large_approxgrad": (_DENOISING["large"], ("--method", "approxgrad")),
    **{f"hyper_cleaning_{m}": (_HYPER_CLEANING, ("--method", m)) for m in ("vpbgd", "gpbgd", "rhg", "penalty")},
    "few_shot_omniglot_penalty": (_OMNIGLOT, ()),
    "few_shot_omniglot_approxgrad": (_OMNIGLOT, ("--method", "approxgrad")),
    "few_shot_miniimagenet": (_MINIIMAGENET, ()),
    **{
        f"poisoning_{attack}_{m}": (path, ("--method", m))
        for attack, path in _POISONING.items()
        for m in ("penalty", "rmd")
    },
    "clean_label": ("clean_label/test_bilevel_clean_label_attack.py", ()),
}
_TIMING = re.compile(r"second|time|timing", re.IGNORECASE)


def without_timings(value: Any) -> Any:
    """``value`` with every mapping key that names seconds or time left out, at any depth."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if not _TIMING.search(str(k))}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def run_setting(name: str, folder: Path) -> Dict[str, Any]:
    runner, flags = SETTINGS[name]
    out = folder / name
    argv = [
        sys.executable,
        str(ROOT / runner),
        "--smoke",
        *flags,
        "--seed",
        str(SEED),
        "--out",
        str(out),
        "--verbose",
        "0",
    ]
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        TF_CPP_MIN_LOG_LEVEL="2",
        MPLBACKEND="Agg",
        KERAS_HOME=str(folder / "empty_keras_home"),
    )
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return {"runner": runner, "flags": list(flags), "error": (done.stderr or done.stdout)[-2000:]}
    result = json.loads((out / "results.json").read_text())
    print(f"{name}: {seconds:.0f} s", flush=True)
    return {
        "runner": runner,
        "flags": list(flags),
        "metrics": without_timings(result["metrics"]),
        "history": without_timings(result["history"]),
    }


def snapshot(names: Sequence[str], jobs: int) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bilevel_snapshot_") as tmp:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = dict(zip(names, pool.map(lambda n: run_setting(n, Path(tmp)), names)))
    return {"seed": SEED, "settings": results}


def _flatten(value: Any, prefix: str = "") -> Dict[str, Any]:
    if isinstance(value, dict):
        out: Dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list):
        out = {}
        for i, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


def compare(before: Dict[str, Any], after: Dict[str, Any]) -> List[str]:
    """Every difference between two snapshots, one line each (empty: equal)."""
    lines = []
    a_settings, b_settings = before["settings"], after["settings"]
    for name in sorted(set(a_settings) | set(b_settings)):
        if name not in a_settings or name not in b_settings:
            lines.append(f"{name}: only in {'after' if name in b_settings else 'before'}")
            continue
        for part in ("error", "metrics", "history"):
            a, b = _flatten(a_settings[name].get(part)), _flatten(b_settings[name].get(part))
            for key in sorted(set(a) | set(b)):
                if key not in a or key not in b:
                    lines.append(f"{name} {part} {key}: only in {'after' if key in b else 'before'}")
                elif not _same(a[key], b[key]):
                    lines.append(f"{name} {part} {key}: {a[key]!r} -> {b[key]!r}")
    return lines


def main(argv: Sequence[str] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--out", help="snapshot file to write")
    p.add_argument("--jobs", type=int, default=1, help="settings run at once (each is one process)")
    p.add_argument("--only", nargs="+", choices=sorted(SETTINGS), help="run only these settings")
    p.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="compare two snapshot files")
    args = p.parse_args(argv)
    if args.compare:
        before, after = (json.loads(Path(path).read_text()) for path in args.compare)
        lines = compare(before, after)
        counted = sum(
            len(_flatten(s.get("metrics"))) + len(_flatten(s.get("history"))) for s in before["settings"].values()
        )
        print(
            "\n".join(lines)
            if lines
            else f"equal: {len(before['settings'])} settings, {counted} values (metrics and history without timings)"
        )
        return 1 if lines else 0
    if not args.out:
        p.error("--out is required (or --compare BEFORE AFTER)")
    result = snapshot(args.only or list(SETTINGS), max(1, args.jobs))
    Path(args.out).write_text(json.dumps(result, indent=1, sort_keys=True))
    failed = [n for n, s in result["settings"].items() if "error" in s]
    for name in failed:
        print(f"{name} failed: {result['settings'][name]['error']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

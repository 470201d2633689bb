"""Plumbing shared by the experiment runners: flags, seeding, solver construction, results and figures.

A runner reads like its experiment::

    parser = experiment.parser("Importance learning on MNIST", method="penalty", epochs=100, ...)
    parser.add_argument("--noise", type=float, default=NOISE_LEVEL, help=...)
    args = experiment.parse(parser, argv)            # seeds, output folder, --smoke sizes
    ...
    experiment.write_results(args, "data_denoising/mnist", metrics=..., history=..., seconds_per_iteration=...)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

METHODS = ("penalty", "approxgrad", "rmd", "gd", "vpbgd", "gpbgd")
#: --steps-per-execution default (README "Performance", benchmarks/run.py --sections overhead)
STEPS_PER_EXECUTION = 1


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


class UsageError(ValueError):
    """A flag value the data or the experiment cannot satisfy (e.g. more poison points than training points).
    :func:`run_main` prints it as one line and exits with status 2, as argparse does for malformed flags."""


def int_range(minimum: int, maximum: Optional[int] = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in [minimum, maximum]; anything else is rejected at parse time (before
    the run touches its output folder) with "argument --flag: must be an integer >= minimum, got '...'"."""
    expected = f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]"

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value
    return convert


def float_range(minimum: float, maximum: Optional[float] = None, *,
                include_maximum: bool = True) -> Callable[[str], float]:
    """An argparse ``type``: a number in [minimum, maximum] (or [minimum, maximum) with
    ``include_maximum=False``; no upper bound when maximum is None), checked at parse time like
    :func:`int_range`."""
    expected = (f"a number >= {minimum:g}" if maximum is None
                else f"a number in [{minimum:g}, {maximum:g}{']' if include_maximum else ')'}")

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if maximum is None:
            below = value < math.inf
        else:
            below = value <= maximum if include_maximum else value < maximum
        if not (value >= minimum and below):  # also rejects NaN
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value
    return convert


def parser(description: str, *, method: str = "penalty", methods: Sequence[str] = METHODS,
           inner_steps: Optional[int] = 20, epochs: Optional[int] = None, seed: int = 0,
           out: Optional[str] = None, data_dir: bool = True, mixed_precision: bool = True) -> argparse.ArgumentParser:
    """An ``argparse`` parser with the flags every runner shares; the runner adds its own knobs."""
    p = argparse.ArgumentParser(description=description, formatter_class=_Formatter)
    p.add_argument("--method", default=method, choices=list(methods),
                   help="bilevel solver: penalty (Mehra & Hamm), approxgrad, rmd (RHG/T-RHG), gd, vpbgd, gpbgd")
    if inner_steps is not None:
        p.add_argument("--inner-steps", type=int, default=inner_steps,
                       help="T: lower-level steps per upper iteration (ApproxGrad also uses T linear-system steps)")
    if epochs is not None:
        p.add_argument("--epochs", type=int, default=epochs, help="passes (or upper iterations, see above) to run")
    p.add_argument("--seed", type=int_range(0, 2 ** 32 - 1), default=seed,
                   help="seed for numpy, Python and TensorFlow")
    if data_dir:
        p.add_argument("--data-dir", default=None, help="folder holding the data files (default: the standard cache)")
    p.add_argument("--out", default=out, help="output folder for results.json and figures "
                                              "(default: runs/<experiment>/<method>)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes and few steps: checks the pipeline end to end")
    p.add_argument("--checkpoint-every", type=int_range(1), default=100,
                   help="save a checkpoint every N upper iterations in <out>/checkpoints; a rerun with the same "
                        "--out resumes from the latest one")
    p.add_argument("--fresh", action="store_true", help="ignore (delete) checkpoints in <out> and start over")
    p.add_argument("--jit", action="store_true", help="compile each upper iteration with XLA (jit_compile=True)")
    if mixed_precision:
        from . import precision
        p.add_argument("--precision", default=precision.FLOAT32, choices=list(precision.POLICIES),
                       help="mixed_bfloat16: the models compute in bfloat16 while variables, losses and every "
                            "solver quantity stay float32 (pays off on GPUs/TPUs with bfloat16 units; slower on "
                            "CPUs without them)")
    p.add_argument("--deterministic", action="store_true", help="enable TensorFlow op determinism")
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="0 silent, 1 progress bar, 2 one line per log")
    return p


def add_schedule_flag(p: argparse.ArgumentParser, default: str) -> None:
    """``--schedule``: the Penalty method's schedule preset (see ``bl.Penalty``)."""
    from .solvers.penalty import SCHEDULES
    p.add_argument("--schedule", default=default, choices=list(SCHEDULES),
                   help="Penalty schedule: auglag (the library default: multiplier step every iteration, penalty "
                        "scaled to the problem), original (the code behind the paper's tables: its constants "
                        "from this runner's table), paper (Algorithm 2 as printed)")


def add_fit_flags(p: argparse.ArgumentParser, strategy: bool = True) -> None:
    """``--steps-per-execution`` and (``strategy=True``) ``--strategy`` for a runner whose training goes through
    ``bl.fit`` (build the strategy with :func:`make_strategy`). Full-batch runners leave ``--strategy`` out:
    without batches to split, every replica would repeat the whole computation."""
    from .workers import STRATEGIES
    if strategy:
        p.add_argument("--strategy", default="none", choices=list(STRATEGIES),
                       help="tf.distribute strategy: none (one device), mirrored (every local GPU), multi_worker "
                            "(the workers of the cluster in the TF_CONFIG environment variable, one process each, "
                            "each global batch split across them; only the chief writes results and checkpoints; "
                            "see the README's 'Multi-device and long runs')")
    p.add_argument("--steps-per-execution", type=int_range(1), default=STEPS_PER_EXECUTION,
                   help="upper iterations per compiled call of bl.fit (Keras' steps_per_execution): removes "
                        "TensorFlow's per-call overhead on small problems, mostly with --jit (README 'Performance'); "
                        "logging, callbacks and checkpoints happen at call boundaries")


def make_strategy(args: argparse.Namespace):
    """The ``tf.distribute`` strategy of ``--strategy`` (None for "none"); a missing TF_CONFIG is a one-line
    usage error."""
    from . import workers
    try:
        return workers.make_strategy(args.strategy)
    except ValueError as e:
        raise UsageError(str(e)) from None


def parse(p: argparse.ArgumentParser, argv: Optional[Sequence[str]], experiment: str) -> argparse.Namespace:
    """Parse flags, validate the common ones, seed everything and create the output folder."""
    args = p.parse_args(argv)
    for name in ("inner_steps", "epochs"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    args.experiment = experiment
    if args.out is None:
        args.out = os.path.join("runs", experiment.replace("/", "_"), getattr(args, "method", None) or "run")
    os.makedirs(args.out, exist_ok=True)
    # --fresh clears a phase's checkpoints when the runner first asks for that folder (checkpoint_dir), i.e.
    # after data loading and flag checks: a run that fails before training loses nothing.
    args._fresh_cleared = []  # phases already emptied (private: config_of leaves out '_' names)
    seed_everything(args.seed, deterministic=args.deterministic)
    from . import precision
    # set on every parse (float32 included): a policy never leaks from one in-process run into the next
    precision.set_policy(getattr(args, "precision", precision.FLOAT32))
    return args


def checkpoint_dir(args: argparse.Namespace, phase: str = "bilevel") -> str:
    """Where a runner's ``bl.fit`` keeps checkpoints (one subfolder per training phase); with ``--fresh``
    the folder is emptied the first time it is asked for."""
    path = os.path.join(args.out, "checkpoints", phase)
    cleared = getattr(args, "_fresh_cleared", None)
    if getattr(args, "fresh", False) and cleared is not None and phase not in cleared:
        import shutil
        shutil.rmtree(path, ignore_errors=True)
        cleared.append(phase)
    return path


def seed_everything(seed: int, deterministic: bool = False) -> None:
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(seed)  # Python, numpy and TensorFlow
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def config_of(args: argparse.Namespace, **extra: Any) -> Dict[str, Any]:
    cfg = {k: v for k, v in vars(args).items() if k != "verbose" and not k.startswith("_")}
    cfg.update(extra)
    return _jsonable(cfg)


class Stopwatch:
    """Wall-clock since creation, for accuracy-vs-time curves."""

    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start


def time_steps(step: Callable[..., Any], repeats: int,
               inputs: Callable[[], Sequence[Any]] = tuple) -> Dict[str, float]:
    """Time ``step(*inputs())``: the first call (tracing and compilation plus one iteration) and the median
    wall-clock and process-CPU seconds of ``repeats`` further calls. ``inputs`` is drawn before each timer
    starts; ``step`` must wait for its result (e.g. ``float()`` of a log value). CPU seconds are the steadier
    figure on a shared machine."""
    wall, cpu = [], []
    for _ in range(repeats + 1):
        args = inputs()
        t0, c0 = time.perf_counter(), time.process_time()
        step(*args)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"first_seconds": wall[0], "seconds": float(np.median(wall[1:])), "cpu_seconds": float(np.median(cpu[1:]))}


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


def atomic_write_text(path: str, text: str) -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_results(args: argparse.Namespace, *, metrics: Mapping[str, Any], history: Iterable[Mapping[str, Any]] = (),
                  seconds_per_upper_iteration: Optional[float] = None, dataset: Optional[str] = None,
                  config: Optional[Mapping[str, Any]] = None, summary_keys: Optional[Sequence[str]] = None) -> str:
    """Write ``<out>/results.json`` in the layout of DESIGN.md and print a one-line summary."""
    result = {
        "experiment": args.experiment,
        "method": args.method,
        "dataset": dataset if dataset is not None else getattr(args, "dataset", None),
        "config": dict(config) if config is not None else config_of(args),
        "metrics": dict(metrics),
        "history": list(history),
        "seconds_per_upper_iteration": seconds_per_upper_iteration,
    }
    path = os.path.join(args.out, "results.json")
    atomic_write_text(path, json.dumps(_jsonable(result), indent=1))
    keys = summary_keys or [k for k, v in metrics.items() if isinstance(v, (int, float, np.floating))]
    parts = [f"{k}={_fmt(metrics[k])}" for k in keys if k in metrics]
    if seconds_per_upper_iteration is not None:
        parts.append(f"s/iter={seconds_per_upper_iteration:.4g}")
    print(f"[{args.experiment}] method={args.method} " + " ".join(parts) + f" -> {path}", flush=True)
    return path


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, (float, np.floating)) else str(x)


# ---------------------------------------------------------------------------------------------- figures
def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_curves(path: str, curves: Mapping[str, Tuple[Sequence[float], Sequence[float]]], *, xlabel: str,
                ylabel: str, title: str = "", logy: bool = False, bands: Optional[Mapping[str, Tuple]] = None) -> str:
    """One line per label (x, y); optional shaded (low, high) bands per label. Saved as PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (x, y) in curves.items():
        line, = ax.plot(x, y, label=label)
        if bands and label in bands:
            lo, hi = bands[label]
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if curves:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_histograms(path: str, groups: Mapping[str, Sequence[float]], *, xlabel: str, title: str = "",
                    bins: int = 30) -> str:
    """Overlaid histograms (e.g. learned importance of clean vs flipped points)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    all_values = np.concatenate([np.asarray(v, float).ravel() for v in groups.values() if len(v)] or [np.zeros(1)])
    edges = np.histogram_bin_edges(all_values, bins=bins)
    for label, values in groups.items():
        ax.hist(np.asarray(values, float).ravel(), bins=edges, alpha=0.55, label=f"{label} (n={len(values)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_image_rows(path: str, rows: Mapping[str, np.ndarray], *, title: str = "", max_cols: int = 10) -> str:
    """A grid with one row per label (e.g. poison starts above learned poisons); images in [0, 1]."""
    plt = _pyplot()
    n_rows = len(rows)
    n_cols = max(1, min(max_cols, max(len(v) for v in rows.values())))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.2 * n_cols, 1.3 * n_rows + 0.4), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(images):
                img = np.clip(np.asarray(images[c], float), 0, 1)
                ax.imshow(img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img, cmap="gray" if img.ndim == 2
                          or img.shape[-1] == 1 else None, vmin=0, vmax=1)
        axes[r][0].set_title(label, fontsize=8, loc="left")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_main(main, argv: Optional[Sequence[str]] = None) -> None:
    """Script entry: run ``main(argv)`` and turn expected errors (missing files, bad flags) into one line."""
    from .datasets.errors import DataFileMissingError, DataFormatError
    try:
        main(argv)
    except (DataFileMissingError, DataFormatError, FileNotFoundError, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None

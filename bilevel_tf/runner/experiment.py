"""Plumbing shared by the experiment runners: flags, seeding, errors (the output folder is
:mod:`bilevel_tf.runner.run_folder`, the flags' argparse types :mod:`bilevel_tf.runner.flag_types`, the
results :mod:`bilevel_tf.runner.results_file`).

A runner's app reads like its experiment::

    p = experiment.parser(__doc__, method="penalty", epochs=EPOCHS, inner_steps=INNER_STEPS)
    p.add_argument("--noise", type=flag_types.float_range(0, 1, include_maximum=False), default=NOISE_LEVEL, ...)
    args = experiment.parse(p, argv, "data_denoising/mnist_large_scale")  # seeds, --out
    ... load data ...
    with run_folder.Run(args, data=experiment.fingerprint(y_noisy)) as run:  # lock, resume check
        history = bl.fit(solver, ..., callbacks=[run.backup()])  # checkpoints under the run's lock and record
        results_file.write_results(args, metrics=..., history=history,
                                   seconds_per_upper_iteration=history.seconds_per_step)

and its script ends with ``experiment.run_main(main)`` (one-line errors, exit status 2 or 1).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import warnings
from typing import Any, Callable, List, Mapping, Optional, Sequence

import numpy as np

from . import console
from ..core import options
from .console import ArgumentParser
from .flag_types import int_range
from ..solvers import penalty_schedules, registry

#: --steps-per-execution default (README "Performance", benchmarks/run.py --sections overhead)
STEPS_PER_EXECUTION = 1


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Adds "(default: X)" to a flag's help once: not when the help already says its default, and not for
    defaults that are None (resolved later, e.g. per method or per data set) or False (plain switches)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or action.option_strings == []
            or isinstance(action, argparse._HelpAction)
        ):
            return text
        shown = ", ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})"


class UsageError(ValueError):
    """A flag value the data or the experiment cannot satisfy (e.g. more poison points than training points).
    :func:`run_main` prints it as one line and exits with status 2, as argparse does for malformed flags."""


def _method_help(name: str) -> str:
    try:
        return f"{name} ({registry.describe(name)})"
    except ValueError:  # a runner's own choice, e.g. "all"
        return name


def parser(
    description: str,
    *,
    method: str = "penalty",
    methods: Optional[Sequence[str]] = None,
    inner_steps: Optional[int] = 20,
    epochs: Optional[int] = None,
    upper_iterations: Optional[int] = None,
    seed: int = 0,
    out: Optional[str] = None,
    data_dir: bool = True,
    mixed_precision: bool = True,
    helps: Optional[Mapping[str, Optional[str]]] = None,
) -> argparse.ArgumentParser:
    """An ``argparse`` parser with the flags every runner shares; the runner adds its own knobs. A budget is
    ``epochs`` (passes over the training set) or ``upper_iterations`` (``--upper-iterations``, alias ``--epochs``
    as the original scripts name it; stored as ``args.epochs`` all the same). ``helps``
    (flag dest -> text; None keeps the shared text) makes a shared flag's help specific to the runner."""
    p = ArgumentParser(description=description, formatter_class=_Formatter)  # one-line errors with a suggestion
    helps = {k: v for k, v in (helps or {}).items() if v}

    def add(*names: str, **kwargs: Any) -> None:  # the runner's text wins over the shared one
        dest = kwargs.get("dest") or names[0].lstrip("-").replace("-", "_")
        p.add_argument(*names, **{**kwargs, "help": helps.get(dest, kwargs.get("help"))})

    methods = registry.METHODS if methods is None else methods  # default: every registered method
    add(
        "--method",
        default=method,
        choices=list(methods),
        help="bilevel solver: " + ", ".join(map(_method_help, methods)),
    )
    if inner_steps is not None:
        add(
            "--inner-steps",
            type=int,
            default=inner_steps,
            help="T: lower-level steps per upper iteration (ApproxGrad also uses T linear-system steps)",
        )
    if epochs is not None:  # an epoch is one pass over the training set, in every runner
        add("--epochs", type=int, default=epochs, help="passes over the training set")
    if upper_iterations is not None:  # runners without a training-set pass count upper iterations (K)
        add(
            "--upper-iterations",
            "--epochs",
            dest="epochs",
            type=int,
            default=upper_iterations,
            help="K: upper iterations to run (--epochs: the original code's name, nepochs)",
        )
    _add_run_flags(add, seed=seed, out=out, data_dir=data_dir)
    _add_execution_flags(add, mixed_precision=mixed_precision)
    return p


def _add_run_flags(add: Callable[..., None], *, seed: int, out: Optional[str], data_dir: bool) -> None:
    """What a run reads and writes: its seed, data folder, output folder, size, checkpoints."""
    add("--seed", type=int_range(0, 2**32 - 1), default=seed, help="seed for numpy, Python and TensorFlow")
    if data_dir:
        add("--data-dir", default=None, help="folder holding the data files (default: the standard cache)")
    add("--out", default=out, help="output folder for results.json and figures (default: runs/<experiment>/<method>)")
    add(
        "--smoke",
        action="store_true",
        help="tiny sizes and few steps on offline data (the bundled digits, random "
        "arrays or generated images, unless the data are named): checks the pipeline end to end",
    )
    add(
        "--checkpoint-every",
        type=int_range(1),
        default=100,
        help="save a checkpoint every N upper iterations in <out>/checkpoints; a rerun with the same "
        "--out resumes from the latest one",
    )
    add("--fresh", action="store_true", help="ignore (delete) checkpoints in <out> and start over")


def _add_execution_flags(add: Callable[..., None], *, mixed_precision: bool) -> None:
    """How a run executes and reports: XLA, TensorBoard, precision, determinism, verbosity, tracebacks."""
    add("--jit", action="store_true", help="compile each upper iteration with XLA (jit_compile=True)")
    add("--tensorboard", action="store_true", help="write TensorBoard logs to <out>/tensorboard")
    if mixed_precision:
        add(
            "--precision",
            default=options.FLOAT32,
            choices=list(options.PRECISIONS),
            help="mixed_bfloat16: the models compute in bfloat16 while variables, losses and every "
            "solver quantity stay float32 (pays off on GPUs/TPUs with bfloat16 units; slower on "
            "CPUs without them)",
        )
    add("--deterministic", action="store_true", help="enable TensorFlow op determinism")
    add(
        "--verbose",
        type=int,
        default=1,
        choices=[0, 1, 2],
        help="0 silent, 1 progress bar (plain lines when not on a terminal), 2 one line per log and "
        "TensorFlow's start-up messages",
    )
    add("--debug", action="store_true", help="show the traceback of a failure instead of one line")


def add_schedule_flag(p: argparse.ArgumentParser, default: str) -> None:
    """``--schedule``: the Penalty method's schedule preset (see ``bl.Penalty``)."""
    described = ", ".join(f"{name} ({penalty_schedules.summary(name)})" for name in penalty_schedules.SCHEDULES)
    p.add_argument(
        "--schedule",
        default=default,
        choices=list(penalty_schedules.SCHEDULES),
        help=f"Penalty schedule: {described}; original runs with this runner's constants",
    )


def add_fit_flags(p: argparse.ArgumentParser, strategy: bool = True) -> None:
    """``--steps-per-execution`` and (``strategy=True``) ``--strategy`` for a runner whose training goes through
    ``bl.fit`` (build the strategy with :func:`make_strategy`). Full-batch runners leave ``--strategy`` out:
    without batches to split, every replica would repeat the whole computation."""
    if strategy:
        p.add_argument(
            "--strategy",
            default="none",
            choices=list(options.STRATEGIES),
            help="tf.distribute strategy: none (one device), mirrored (every local GPU), multi_worker "
            "(the workers of the cluster in the TF_CONFIG environment variable, one process each, "
            "each global batch split across them; only the chief writes results and checkpoints; "
            "see the README's 'Multi-device and long runs')",
        )
    p.add_argument(
        "--steps-per-execution",
        type=int_range(1),
        default=STEPS_PER_EXECUTION,
        help="upper iterations per compiled call of bl.fit (Keras' steps_per_execution): removes "
        "TensorFlow's per-call overhead on small problems, mostly with --jit (README 'Performance'); "
        "logging, callbacks and checkpoints happen at call boundaries",
    )


def make_strategy(args: argparse.Namespace):
    """The ``tf.distribute`` strategy of ``--strategy`` (None for "none", without loading TensorFlow); a
    missing TF_CONFIG is a one-line usage error. A strategy is created after TensorFlow is seeded
    (:func:`start_tensorflow`), so that every worker starts from the state a single process has."""
    if getattr(args, "strategy", "none") == "none":
        return None
    start_tensorflow(args)
    from ..training import workers

    try:
        return workers.make_strategy(args.strategy, verbose=args.verbose)
    except ValueError as e:
        raise UsageError(str(e)) from None


def offline_smoke_argv(argv: Optional[Sequence[str]], flag: str = "--dataset", offline: str = "digits") -> List[str]:
    """``argv`` (None: the command line's) with ``flag offline`` added when it has ``--smoke`` but neither
    ``flag`` nor ``--data-dir``: a smoke run is offline (the bundled digits, random arrays or generated images)
    unless the user names the data (a data set, or a folder of its files)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    named = [a for a in argv for name in (flag, "--data-dir") if a == name or a.startswith(name + "=")]
    if "--smoke" in argv and not named:
        argv += [flag, offline]
    return argv


def parse(
    p: argparse.ArgumentParser, argv: Optional[Sequence[str]], experiment: str, offline_dataset: Optional[str] = None
) -> argparse.Namespace:
    """Parse flags, validate the common ones, seed Python and numpy, create the output folder; no TensorFlow
    (see :func:`start_tensorflow`). With ``offline_dataset``, ``--smoke`` without ``--dataset`` runs on it
    (see :func:`offline_smoke_argv`)."""
    if offline_dataset is not None:
        argv = offline_smoke_argv(argv, offline=offline_dataset)
    args = p.parse_args(argv)
    for name in ("inner_steps", "epochs"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    args.experiment = experiment
    if args.out is None:
        args.out = os.path.join("runs", experiment.replace("/", "_"), getattr(args, "method", None) or "run")
    os.makedirs(args.out, exist_ok=True)
    random.seed(args.seed)  # TensorFlow's seed follows in start_tensorflow (Run calls it after its checks)
    np.random.seed(args.seed)
    return args


def start_tensorflow(args: argparse.Namespace) -> None:
    """Load TensorFlow for a parsed run: seed it and Keras (``--seed``; Python's and numpy's generators keep
    the state :func:`parse` seeded), op determinism (``--deterministic``), the precision policy (``--precision``).
    :class:`Run` calls it after the checks that need no TensorFlow (flags, data files, the output folder),
    so those answer at once; a script without a ``Run`` calls it after parsing. Once per parse."""
    if getattr(args, "_tensorflow_started", False):
        return
    if "tensorflow" not in sys.modules:  # its import takes 5-60 s: say so before it starts
        console.status(args, "loading TensorFlow")
    states = random.getstate(), np.random.get_state()
    seed_everything(args.seed, deterministic=args.deterministic)
    random.setstate(states[0])
    np.random.set_state(states[1])
    from ..core import precision

    # set on every run (float32 included): a policy never leaks from one in-process run into the next
    precision.set_policy(getattr(args, "precision", options.FLOAT32))
    args._tensorflow_started = True


def checkpoint_dir(args: argparse.Namespace, phase: str = "bilevel") -> str:
    """Where a runner's ``bl.fit`` keeps checkpoints (one subfolder per training phase)."""
    return os.path.join(args.out, "checkpoints", phase)


def fingerprint(*arrays: Any) -> str:
    """A short hash of arrays (shapes, dtypes and bytes): what the run was computed on."""
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def output_path(args: argparse.Namespace, name: str) -> str:
    """``<out>/<name>``, a file or folder the run writes there. Inside an open :class:`Run` the name is first
    recorded in run.json, so that ``--fresh`` deletes it (and nothing the run did not write)."""
    run = getattr(args, "_run", None)
    if run is not None:
        run.record_output(name)
    return os.path.join(args.out, name)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)  # Python, numpy and TensorFlow
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def run_main(main, argv: Optional[Sequence[str]] = None) -> None:
    """Script entry: run ``main(argv)``; every expected failure prints ONE line and exits with status 2 (the
    run cannot start or continue as asked: flags, data files, a folder in use or of another configuration,
    checkpoints, files that cannot be written, a full disk) or 1 (the run failed: NaN/inf, a lost worker);
    Ctrl-C exits with 130 and SIGTERM with 143 (128 + the signal) after the checkpoint ``bl.fit`` saves.
    Warnings print as one ``warning: ...`` line. ``--debug`` shows the traceback and Python's warning format."""
    argv_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv_list
    python_format = warnings.formatwarning
    if not debug:
        warnings.formatwarning = console.one_line_warning
    try:
        main(argv)
    except SystemExit:
        raise
    except KeyboardInterrupt as e:
        if debug:
            raise
        # 128 + the signal, the shell's convention: 130 for Ctrl-C, 143 for SIGTERM (bl.fit raises it as "signal 15")
        terminated = str(e) == f"signal {int(signal.SIGTERM)}"
        print(
            f"error: {'terminated' if terminated else 'interrupted'}; rerun the same command to resume from the last "
            "checkpoint",
            file=sys.stderr,
        )
        raise SystemExit(128 + int(signal.SIGTERM if terminated else signal.SIGINT)) from None
    except Exception as e:  # noqa: BLE001 -- classified below, re-raised with --debug
        status = _exit_status(e)
        if debug or status is None:
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        raise SystemExit(status) from None
    finally:
        warnings.formatwarning = python_format


def _exit_status(error: BaseException) -> Optional[int]:
    """2: cannot start/continue as asked; 1: the run failed; None: not an expected failure (a bug)."""
    from ..training.folders import CheckpointError, FolderLockedError

    # a module not loaded raised none of its errors (and importing it would load TensorFlow)
    loop, workers = sys.modules.get("bilevel_tf.training.loop"), sys.modules.get("bilevel_tf.training.workers")
    if (loop is not None and isinstance(error, loop.NonFiniteError)) or (
        workers is not None and isinstance(error, workers.WorkerLostError)
    ):
        return 1
    if isinstance(error, (UsageError, CheckpointError, FolderLockedError, OSError, ValueError, TypeError)):
        return 2  # data files (DataFileMissingError is an OSError, DataFormatError a ValueError), config, I/O
    return None


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"  # e.g. read-only folder, no space left, --out is a file
    text = " ".join(str(error).split()) or type(error).__name__
    hint = "" if isinstance(error, (UsageError, OSError)) else " (--debug shows the traceback)"
    return text + hint

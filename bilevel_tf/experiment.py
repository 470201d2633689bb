"""Plumbing shared by the experiment runners: flags, the output folder, seeding, results, figures, errors.

A runner's app reads like its experiment::

    p = experiment.parser(__doc__, method="penalty", epochs=EPOCHS, inner_steps=INNER_STEPS)
    p.add_argument("--noise", type=experiment.float_range(0, 1, include_maximum=False), default=NOISE_LEVEL, ...)
    args = experiment.parse(p, argv, "data_denoising/mnist_large_scale")  # seeds, --out
    ... load data ...
    with experiment.Run(args, data=experiment.fingerprint(y_noisy)) as run:  # lock, resume check
        history = bl.fit(solver, ..., checkpoint_dir=experiment.checkpoint_dir(args), config=run.config)
        experiment.write_results(args, metrics=..., history=history,
                                 seconds_per_upper_iteration=history.seconds_per_step)

and its script ends with ``experiment.run_main(main)`` (one-line errors, exit status 2 or 1).
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import random
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import console, options
from .console import ArgumentParser
from .files import atomic_write_text
from .solvers import registry

#: --steps-per-execution default (README "Performance", benchmarks/run.py --sections overhead)
STEPS_PER_EXECUTION = 1


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Adds "(default: X)" to a flag's help once: not when the help already says its default, and not for
    defaults that are None (resolved later, e.g. per method or per data set) or False (plain switches)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or default is False or default is argparse.SUPPRESS
                or action.option_strings == [] or isinstance(action, argparse._HelpAction)):
            return text
        shown = ", ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})"


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


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number > 0 (learning rates, step sizes)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value < math.inf):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


#: an argparse ``type``: a finite number >= 0 (penalty weights, regularizers)
nonnegative_float = float_range(0.0)


def finite_float(text: str) -> float:
    """An argparse ``type``: any finite number."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _method_help(name: str) -> str:
    try:
        return f"{name} ({registry.describe(name)})"
    except ValueError:  # a runner's own choice, e.g. "all"
        return name


def parser(description: str, *, method: str = "penalty", methods: Optional[Sequence[str]] = None,
           inner_steps: Optional[int] = 20, epochs: Optional[int] = None,
           upper_iterations: Optional[int] = None, seed: int = 0,
           out: Optional[str] = None, data_dir: bool = True, mixed_precision: bool = True,
           helps: Optional[Mapping[str, Optional[str]]] = None) -> argparse.ArgumentParser:
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
    add("--method", default=method, choices=list(methods), help="bilevel solver: " + ", ".join(map(_method_help, methods)))
    if inner_steps is not None:
        add("--inner-steps", type=int, default=inner_steps,
            help="T: lower-level steps per upper iteration (ApproxGrad also uses T linear-system steps)")
    if epochs is not None:  # an epoch is one pass over the training set, in every runner
        add("--epochs", type=int, default=epochs, help="passes over the training set")
    if upper_iterations is not None:  # runners without a training-set pass count upper iterations (K)
        add("--upper-iterations", "--epochs", dest="epochs", type=int, default=upper_iterations,
            help="K: upper iterations to run (--epochs: the original code's name, nepochs)")
    add("--seed", type=int_range(0, 2 ** 32 - 1), default=seed,
        help="seed for numpy, Python and TensorFlow")
    if data_dir:
        add("--data-dir", default=None, help="folder holding the data files (default: the standard cache)")
    add("--out", default=out, help="output folder for results.json and figures "
                                   "(default: runs/<experiment>/<method>)")
    add("--smoke", action="store_true", help="tiny sizes and few steps on offline data (the bundled digits, random "
        "arrays or generated images, unless the data are named): checks the pipeline end to end")
    add("--checkpoint-every", type=int_range(1), default=100,
        help="save a checkpoint every N upper iterations in <out>/checkpoints; a rerun with the same "
             "--out resumes from the latest one")
    add("--fresh", action="store_true", help="ignore (delete) checkpoints in <out> and start over")
    add("--jit", action="store_true", help="compile each upper iteration with XLA (jit_compile=True)")
    add("--tensorboard", action="store_true", help="write TensorBoard logs to <out>/tensorboard")
    if mixed_precision:
        add("--precision", default=options.FLOAT32, choices=list(options.PRECISIONS),
            help="mixed_bfloat16: the models compute in bfloat16 while variables, losses and every "
                 "solver quantity stay float32 (pays off on GPUs/TPUs with bfloat16 units; slower on "
                 "CPUs without them)")
    add("--deterministic", action="store_true", help="enable TensorFlow op determinism")
    add("--verbose", type=int, default=1, choices=[0, 1, 2],
        help="0 silent, 1 progress bar (plain lines when not on a terminal), 2 one line per log and "
             "TensorFlow's start-up messages")
    add("--debug", action="store_true", help="show the traceback of a failure instead of one line")
    return p


def add_schedule_flag(p: argparse.ArgumentParser, default: str) -> None:
    """``--schedule``: the Penalty method's schedule preset (see ``bl.Penalty``)."""
    p.add_argument("--schedule", default=default, choices=list(options.PENALTY_SCHEDULES),
                   help="Penalty schedule: auglag (the library default: multiplier step every iteration, penalty "
                        "scaled to the problem), original (the code behind the paper's tables: its constants "
                        "from this runner's table), paper (Algorithm 2 as printed)")


def add_fit_flags(p: argparse.ArgumentParser, strategy: bool = True) -> None:
    """``--steps-per-execution`` and (``strategy=True``) ``--strategy`` for a runner whose training goes through
    ``bl.fit`` (build the strategy with :func:`make_strategy`). Full-batch runners leave ``--strategy`` out:
    without batches to split, every replica would repeat the whole computation."""
    if strategy:
        p.add_argument("--strategy", default="none", choices=list(options.STRATEGIES),
                       help="tf.distribute strategy: none (one device), mirrored (every local GPU), multi_worker "
                            "(the workers of the cluster in the TF_CONFIG environment variable, one process each, "
                            "each global batch split across them; only the chief writes results and checkpoints; "
                            "see the README's 'Multi-device and long runs')")
    p.add_argument("--steps-per-execution", type=int_range(1), default=STEPS_PER_EXECUTION,
                   help="upper iterations per compiled call of bl.fit (Keras' steps_per_execution): removes "
                        "TensorFlow's per-call overhead on small problems, mostly with --jit (README 'Performance'); "
                        "logging, callbacks and checkpoints happen at call boundaries")


def make_strategy(args: argparse.Namespace):
    """The ``tf.distribute`` strategy of ``--strategy`` (None for "none", without loading TensorFlow); a
    missing TF_CONFIG is a one-line usage error. A strategy is created after TensorFlow is seeded
    (:func:`start_tensorflow`), so that every worker starts from the state a single process has."""
    if getattr(args, "strategy", "none") == "none":
        return None
    start_tensorflow(args)
    from . import workers
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


def parse(p: argparse.ArgumentParser, argv: Optional[Sequence[str]], experiment: str,
          offline_dataset: Optional[str] = None) -> argparse.Namespace:
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
    from . import precision
    # set on every run (float32 included): a policy never leaks from one in-process run into the next
    precision.set_policy(getattr(args, "precision", options.FLOAT32))
    args._tensorflow_started = True


def checkpoint_dir(args: argparse.Namespace, phase: str = "bilevel") -> str:
    """Where a runner's ``bl.fit`` keeps checkpoints (one subfolder per training phase)."""
    return os.path.join(args.out, "checkpoints", phase)


#: flags that change where and how loudly a run works, not what it computes: free to differ on a rerun
NON_RESULT_FLAGS = ("out", "fresh", "verbose", "debug", "checkpoint_every", "jit", "data_dir", "tensorboard",
                    "steps_per_execution", "experiment")
#: how long to run: a rerun may raise them (continue the run further); a finished run counts as finished only
#: for the same values, and smaller ones than it ran are refused
BUDGET_FLAGS = ("epochs", "max_steps", "meta_iterations", "outer_itr", "iterations", "max_iterations")


def fingerprint(*arrays: Any) -> str:
    """A short hash of arrays (shapes, dtypes and bytes): what the run was computed on."""
    import hashlib
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


class Run:
    """The output folder of one run: one process at a time, one configuration, nothing half-written.

    Open it after the data are loaded and the flags checked, and before anything needs TensorFlow (opening
    calls :func:`start_tensorflow`, so a refused or finished run answers at once)::

        with experiment.Run(args, data=fingerprint(y_noisy)) as run:
            if run.complete:            # rerun of a finished run: outputs left as they are
                return run.metrics
            ... bl.fit(..., config=run.config) ...; experiment.write_results(...)

    Opening locks ``--out`` (a second run is refused; a killed run's lock is free), removes what a kill left
    half-written, and with ``--fresh`` deletes what the folder's record says the run wrote (:func:`output_path`
    records each file; a user's files stay). ``run.json`` records the configuration (every flag but
    ``NON_RESULT_FLAGS``, plus the keyword arguments, e.g. a data fingerprint) and the outputs; a folder
    holding another configuration is refused with :class:`~bilevel_tf.folders.ResumeMismatchError` naming the
    differences. The ``BUDGET_FLAGS`` may grow (a rerun continues the run further); a finished run is reused
    when they are the same and refused when they are smaller (its results would be mislabelled). In a
    multi-worker run only the chief (``chief=True``) locks and writes the folder; the other workers check the
    same configuration and read it.
    """

    def __init__(self, args: argparse.Namespace, *, chief: bool = True, **extra: Any):
        self.args, self.folder, self.chief = args, args.out, chief
        everything = config_of(args, **extra)
        self.config = {k: v for k, v in everything.items() if k not in NON_RESULT_FLAGS + BUDGET_FLAGS}
        self.budget = {k: v for k, v in everything.items() if k in BUDGET_FLAGS}
        self.complete, self.metrics = False, None
        self.outputs: List[str] = []
        self._lock = None

    def __enter__(self) -> "Run":
        from .folders import FolderLock, delete_outputs, remove_partial_files
        try:
            if self.chief:  # a multi-worker run's other workers only read the chief's folder
                self._lock = FolderLock(self.folder).acquire()
                remove_partial_files(self.folder, checkpoint_temps=False)
                for folder in sorted(glob.glob(os.path.join(self.folder, "checkpoints", "*"))):
                    remove_partial_files(folder)
                if getattr(self.args, "fresh", False):
                    delete_outputs(self.folder)
            self._check()
            if not self.complete:
                self.args._run = self  # output_path() records the run's files through it
                start_tensorflow(self.args)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _check(self) -> None:
        """Compare run.json, record this configuration (chief only) and find out whether the run is complete."""
        from .folders import ResumeMismatchError, config_differences, read_record
        saved = read_record(self.folder)  # without it a results.json cannot be matched to its configuration
        if saved is not None:
            differences = config_differences(saved["config"], self.config)
            if differences:
                raise ResumeMismatchError(
                    f"{self.folder} holds a run of another configuration ({'; '.join(differences[:6])}); rerun "
                    "with the same flags to resume or reuse it, pass --fresh to start over, or choose another --out")
            self.outputs = saved["outputs"]
            self._check_results()
        if self.chief:
            self._write_record()

    def _check_results(self) -> None:
        """A results.json of this configuration: complete for the same budget, refused for a smaller one."""
        from .folders import ResumeMismatchError, budget_excess
        path = os.path.join(self.folder, "results.json")
        finished = _read_results(path)
        if finished is None:
            return  # none, or damaged: the run is redone (its checkpoints make that cheap)
        mismatch = [f"{k}: {finished['config'][k]!r} -> {v!r}" for k, v in self.config.items()
                    if k in finished["config"] and finished["config"][k] != v]
        if mismatch:
            print(f"[{self.args.experiment}] {path} does not hold this configuration's results "
                  f"({'; '.join(mismatch[:3])}); the run is finished again and rewrites it", flush=True)
            return
        excess = budget_excess(finished["config"], self.budget)
        if excess:
            raise ResumeMismatchError(
                f"{self.folder} holds the finished run of this configuration with a larger budget ("
                f"{'; '.join(excess)}); rerun with its budget (or a larger one) to reuse or continue it, pass "
                "--fresh to start over with this one, or choose another --out")
        self.complete = all(finished["config"].get(k) == v for k, v in self.budget.items())
        if self.complete:
            self.metrics = finished["metrics"]
            print(f"[{self.args.experiment}] {self.folder} already holds the finished run of this configuration "
                  f"(results.json); nothing to do (--fresh redoes it)", flush=True)

    def record_output(self, name: str) -> None:
        """Add ``name`` (an entry of the folder) to the files and folders run.json says this run wrote."""
        if self.chief and name not in self.outputs:
            self.outputs.append(name)
            self._write_record()

    def _write_record(self) -> None:
        from .folders import RECORD
        atomic_write_text(os.path.join(self.folder, RECORD), json.dumps(
            {"config": self.config, "budget": self.budget, "outputs": self.outputs}, indent=1, sort_keys=True))

    def __exit__(self, *exc) -> None:
        if getattr(self.args, "_run", None) is self:
            del self.args._run
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @classmethod
    def once(cls, args: argparse.Namespace, body: Callable[["Run"], Any], **extra: Any) -> Any:
        """``body(run)`` inside the open folder, unless the run is already complete (then its metrics)."""
        with cls(args, **extra) as run:
            return run.metrics if run.complete else body(run)


def _read_results(path: str) -> Optional[Dict[str, Any]]:
    """A results.json with its "config" and "metrics" objects, or None (missing or damaged)."""
    try:
        finished = json.loads(Path(path).read_text())
        if isinstance(finished["config"], dict) and isinstance(finished["metrics"], dict):
            return finished
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


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


def config_of(args: argparse.Namespace, **extra: Any) -> Dict[str, Any]:
    cfg = {k: v for k, v in vars(args).items() if k != "verbose" and not k.startswith("_")}
    cfg.update(extra)
    return _jsonable(cfg)


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


def write_results(args: argparse.Namespace, *, metrics: Mapping[str, Any], history: Iterable[Mapping[str, Any]] = (),
                  seconds_per_upper_iteration: Optional[float] = None, dataset: Optional[str] = None,
                  config: Optional[Mapping[str, Any]] = None, summary_keys: Optional[Sequence[str]] = None,
                  paper: Optional[Tuple[Optional[Mapping[str, Any]], Optional[str]]] = None,
                  solver: Any = None, setting: str = "") -> str:
    """Write ``<out>/results.json`` (experiment, method, dataset, config, metrics, history,
    seconds_per_upper_iteration, paper) atomically and print a one-line summary. ``paper``:
    ``paper_cells.paper_entry(args, dataset)``, i.e. the published values this run compares with, or None
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
    print(f"[{args.experiment}] method={args.method} " + (f"{setting} " if setting else "") + " ".join(parts)
          + f" -> {path}", flush=True)
    return path


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, (float, np.floating)) else str(x)


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
        print(f"error: {'terminated' if terminated else 'interrupted'}; rerun the same command to resume from the last "
              "checkpoint", file=sys.stderr)
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
    from .folders import CheckpointError, FolderLockedError
    # a module not loaded raised none of its errors (and importing it would load TensorFlow)
    fit, workers = sys.modules.get(f"{__package__}.fit"), sys.modules.get(f"{__package__}.workers")
    if (fit is not None and isinstance(error, fit.NonFiniteError)) or (
            workers is not None and isinstance(error, workers.WorkerLostError)):
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

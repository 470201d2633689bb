"""Data denoising by importance learning (Mehra & Hamm, Sec. 3.2, Table 2), shared by the four runners.

Bilevel problem (the original ``bilevel_importance*.py``)::

    upper  u in R^N_train  (one atanh-logit per training point),   a = (tanh(u) + 1) / 2 in (0, 1)
    lower  v = the classifier's weights
    g(u, v) = sum_i a_i CE_i / sum_i a_i      on a training batch (its example indices gather u)
    f(u, v) = mean CE                          on a clean validation batch of the same size

Protocol (as the original): flip a fraction of the training labels; pre-train the classifier on the
validation set; initialise a to ``init_importance`` = (low, high) for training points whose noisy label
disagrees / agrees with the pre-trained prediction; run the bilevel solver over shuffled training
batches; after every epoch renormalise a <- 0.5 a / mean(a) clipped to [1e-5, 0.99999].

Evaluation (DESIGN section 3): ``test_accuracy`` = a fresh classifier trained with the learned
importance as example weights on train + val; ``noisy_baseline_test_accuracy`` = the same model and budget
with uniform weights; ``bilevel_test_accuracy`` = the lower-level network itself (the number the original
printed); ``noise_precision`` / ``noise_recall`` from :func:`importance_eval.noise_detection`.

A runner defines a :class:`DenoisingSpec` (its constants and hyperparameter table, in
:mod:`importance_config`, which parses the flags without TensorFlow) and calls :func:`run_denoising`.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

import bilevel_tf as bl

from .. import console, datasets, experiment, paper_cells, tensorboard_logs, workers
from . import importance_data as data
from .classifier import train_classifier, weighted_ce
from .importance_eval import (Predictor, accuracy_curves, evaluation_classifiers, importance_of, logits_of,
                              lower_evaluation, noise_detection)
from .importance_optim import PerExampleAdam
from .importance_config import (APPROXGRAD_SCHEDULE, DIGITS_DEMO, DIGITS_SIZES, METHODS, PENALTY_SCHEDULE, SOLVER_OPTIONS,  # noqa: F401
                              SMALL_MODELS, DenoisingSpec, build_parser, load_splits, parse, run_denoising)

Sizes = data.Sizes
CLIP = (1e-5, 0.99999)
#: keys of a hyperparameter row that are not solver keyword arguments
_RUNNER_KEYS = ("lr_u", "lr_v", "lr_p", "halve_every", "pretrain_lr", "by_schedule")
#: --upper-optimizer -> the Keras class (registered) name of the importance optimizer
UPPER_OPTIMIZERS = {"per_example_adam": keras.saving.get_registered_name(PerExampleAdam), "adam": "Adam"}

# --------------------------------------------------------------------------------------------- the problem
class ImportanceLearning:
    """The upper variable (importance logits), the losses, and the in-place epoch renormalisation."""

    def __init__(self, model: keras.Model, init_logits: np.ndarray, training: bool = False):
        self.model = model
        self.training = bool(training)
        self.logits = tf.Variable(np.asarray(init_logits, np.float32), name="importance_atanh")

    def importance(self, idx: Optional[tf.Tensor] = None) -> tf.Tensor:
        u = self.logits if idx is None else tf.gather(self.logits, idx)  # gather -> sparse gradients
        return 0.5 * (tf.tanh(u) + 1.0)

    def lower_loss(self, batch) -> tf.Tensor:
        idx, x, y = batch
        return weighted_ce(self.model(x, training=self.training), y, self.importance(idx))

    def upper_loss(self, batch) -> tf.Tensor:
        x, y = batch
        return weighted_ce(self.model(x, training=self.training), y)

    def problem(self) -> bl.BilevelProblem:
        return bl.BilevelProblem(self.upper_loss, self.lower_loss, [self.logits], self.model.trainable_variables,
                                 extra_state={"model": self.model})

    def values(self) -> np.ndarray:
        return importance_of(self.logits.numpy())

    def renormalize(self) -> None:
        """a <- 0.5 a / mean(a), clipped to [1e-5, 0.99999] (the original's end-of-epoch step)."""
        a = self.values()
        a = np.clip(0.5 * a / a.mean(), *CLIP)
        self.logits.assign(logits_of(a).astype(np.float32))


def initial_logits(predicted: np.ndarray, noisy_labels: np.ndarray, init: Tuple[float, float]) -> np.ndarray:
    """Warm start: importance init[1] where the pre-trained prediction agrees with the label, else init[0]."""
    a = np.where(np.asarray(predicted) == np.asarray(noisy_labels), init[1], init[0])
    return logits_of(a).astype(np.float32)


def solver_options(method: str, hp: Dict[str, Any], inner_steps: int, upper_optimizer: str = "per_example_adam",
                   jit_compile: bool = False) -> Dict[str, Any]:
    """``bl.make_solver``'s options for ``method`` and one hyperparameter row: the table's, the upper
    optimizer (an ``UPPER_OPTIMIZERS`` name) at ``lr_u``, then the row's solver keywords."""
    upper = {"class_name": UPPER_OPTIMIZERS[upper_optimizer], "config": {"learning_rate": hp["lr_u"]}}
    options = dict(SOLVER_OPTIONS[method](hp), upper_optimizer=upper, inner_steps=inner_steps,
                   jit_compile=jit_compile)
    options.update((k, v) for k, v in hp.items() if k not in _RUNNER_KEYS)
    return options


class EpochEnd(bl.Callback):
    """After every epoch: renormalise the importance in place (outside the compiled step) and halve the
    learning rates every ``halve_every`` epochs (ApproxGrad's schedule)."""

    def __init__(self, task: ImportanceLearning, steps_per_epoch: int, optimizers: Sequence = (),
                 halve_every: Optional[int] = None):
        self.task, self.steps_per_epoch = task, steps_per_epoch
        self.optimizers, self.halve_every = list(optimizers), halve_every

    def on_step_end(self, step: int, logs: Dict[str, float]) -> None:
        if step % self.steps_per_epoch:
            return
        epoch = step // self.steps_per_epoch
        self.task.renormalize()
        if self.halve_every and epoch % self.halve_every == 0:
            for opt in self.optimizers:
                opt.learning_rate.assign(opt.learning_rate * 0.5)
        logs["epoch"] = float(epoch)


# --------------------------------------------------------------------------------------------- the run
@dataclass
class Setup:
    """A built experiment: data, noisy labels, the bilevel task and its solver, the data streams."""

    args: argparse.Namespace
    spec: DenoisingSpec
    splits: data.Splits
    noisy: np.ndarray
    flipped: np.ndarray
    hp: Dict[str, Any]
    task: ImportanceLearning
    solver: bl.BilevelSolver
    train_stream: tf.data.Dataset
    val_stream: tf.data.Dataset
    steps_per_epoch: int
    augment: Optional[Callable]
    predictor: Predictor  # of the lower-level network


def _hyperparams(spec: DenoisingSpec, args: argparse.Namespace) -> Dict[str, Any]:
    hp = dict(spec.hyperparams[args.method])
    if args.method == "penalty":
        if args.schedule != "original":  # the table's constants are the original schedule's
            hp = {k: v for k, v in hp.items() if k not in PENALTY_SCHEDULE}
        hp.update(hp.pop("by_schedule", {}).get(args.schedule, {}))
        hp["schedule"] = args.schedule
    for key in ("lr_u", "lr_v"):
        if getattr(args, key) is not None:
            hp[key] = getattr(args, key)
    return hp


def prepare(spec: DenoisingSpec, args: argparse.Namespace, warm_start: bool = True,
            splits: Optional[data.Splits] = None, strategy: Optional[tf.distribute.Strategy] = None) -> Setup:
    """Load and corrupt the data, warm-start the classifier and the importance, build the solver (the model,
    the importance and the solver inside ``strategy``'s scope)."""
    splits = load_splits(spec, args) if splits is None else splits
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        return _prepare(spec, args, warm_start, splits)


def _prepare(spec: DenoisingSpec, args: argparse.Namespace, warm_start: bool, splits: data.Splits) -> Setup:
    hp = _hyperparams(spec, args)
    noisy, flipped = datasets.flip_labels(splits.y_train, args.noise, data.NUM_CLASSES, seed=args.seed)
    model = spec.classifier(args.model, splits.input_shape)
    predictor = Predictor(model, splits.scale)
    batch = args.batch_size
    init = np.zeros(len(noisy), np.float32)
    if warm_start:
        warm_steps = spec.pretrain_epochs * data.steps_per_epoch(len(splits.x_val), batch)
        console.status(args, f"warm start: {warm_steps} steps training the classifier on the {len(splits.x_val)} "
                             "validation examples")
        train_classifier(model, splits.x_val, splits.y_val, None, steps=warm_steps,
                         batch_size=batch, learning_rate=hp.get("pretrain_lr", hp["lr_v"]), scale=splits.scale,
                         seed=args.seed)
        init = initial_logits(predictor.predict(splits.x_train), noisy, spec.init_importance)
    task = ImportanceLearning(model, init, training=args.dropout)
    solver = bl.make_solver(args.method, task.problem(),
                            **solver_options(args.method, hp, args.inner_steps, args.upper_optimizer, args.jit))
    augment = None
    if spec.augment is not None and getattr(args, "augment", False):
        augment = data.augmentation(**spec.augment)
    train_stream = data.indexed_batches(splits.x_train, noisy, batch, args.seed, splits.scale, augment,
                                        cycle=True)  # cycle: exact resume from a checkpoint
    val_stream = data.indexed_batches(splits.x_val, splits.y_val, batch, args.seed + 1, splits.scale, augment,
                                      with_index=False, repeat=True)
    return Setup(args, spec, splits, noisy, flipped, hp, task, solver, train_stream, val_stream,
                 data.steps_per_epoch(len(noisy), batch), augment, predictor)


def read_warm_start(path: str) -> Optional[Dict[str, Any]]:
    """The warm start's metrics a resumed run reports, or None (said, naming the file) when they must be
    recomputed: the file is missing or unreadable."""
    try:
        warm = json.loads(open(path).read())
        if isinstance(warm, dict) and isinstance(warm.get("pretrain_test_accuracy"), (int, float)):
            return warm
        problem = "holds no pretrain_test_accuracy"
    except FileNotFoundError:
        problem = "is missing"
    except (OSError, ValueError) as e:
        problem = f"is unreadable ({type(e).__name__})"
    print(f"{path} {problem}: redoing the warm start to recompute its metrics", flush=True)
    return None


def has_checkpoint(folder: str) -> bool:
    """True when ``folder`` holds checkpoint files (a run to resume rather than start)."""
    return bool(glob.glob(os.path.join(folder, "ckpt-*.index")))


def run_in_folder(args: argparse.Namespace, spec: DenoisingSpec, splits: data.Splits, run: experiment.Run,
                  strategy: Optional[tf.distribute.Strategy]) -> Dict[str, Any]:
    """The experiment in its open run folder (:func:`importance_config.run_denoising` parses, loads the data
    and opens the folder first); returns the metrics (results.json has everything)."""
    chief = run.chief
    ckpt = experiment.checkpoint_dir(args, "bilevel")
    resuming = has_checkpoint(ckpt)
    warm_path = os.path.join(ckpt, "warm_start.json")
    warm = read_warm_start(warm_path) if resuming else None
    # a resumed run restores u and v from the checkpoint: its warm start is redone only when the warm start's
    # metrics are lost (the same seed gives the same warm start)
    setup = prepare(spec, args, warm_start=warm is None, splits=splits, strategy=strategy)
    s, task, solver = setup.splits, setup.task, setup.solver
    if warm is None:
        warm = {"pretrain_test_accuracy": setup.predictor.accuracy(s.x_test, s.y_test),
                **{f"warm_start_{k}": v for k, v in noise_detection(task.values(), setup.flipped).items()
                   if k in ("noise_precision", "noise_recall")}}
        if chief:
            os.makedirs(ckpt, exist_ok=True)
            experiment.atomic_write_text(warm_path, json.dumps(warm))

    evaluate = lower_evaluation(setup)
    spe = setup.steps_per_epoch
    total = args.epochs * spe if args.max_steps is None else args.max_steps  # --upper-iterations K replaces epochs
    # the state before the bilevel phase (evaluation time not counted); a resume restores it with the rest
    start = [] if resuming else [{"step": 0, "seconds": 0.0, **evaluate(), "eval_seconds": 0.0}]
    halve = setup.hp.get("halve_every") if args.method == "approxgrad" else None
    callbacks = [EpochEnd(task, spe, [solver.upper_optimizer, solver.lower_optimizer], halve),
                 bl.Evaluate(evaluate, every=args.eval_every * spe)]
    fit_history = bl.fit(solver, setup.val_stream, setup.train_stream, steps=total,
                         steps_per_execution=_steps_per_execution(args, spe), checkpoint_dir=ckpt,
                         checkpoint_every=args.checkpoint_every, callbacks=callbacks, verbose=args.verbose,
                         log_every=max(1, spe // 5),
                         csv_path=experiment.output_path(args, "history.csv") if chief else None,
                         config=run.config, history=start,
                         tensorboard_dir=tensorboard_logs.log_dir(args) if chief else None)
    history = list(fit_history)
    if not chief:  # TensorFlow's rule: only the chief writes results; its evaluation would be discarded here
        print(f"[{args.experiment}] worker {workers.task_index(strategy)}: bilevel phase done, the chief writes "
              "the results", flush=True)
        return {}

    importance = task.values()
    metrics: Dict[str, Any] = {}
    eval_steps = data.epochs_to_steps(spec.eval_epochs, len(s.x_train) + len(s.x_val), args.batch_size)
    console.status(args, f"evaluating: training {4 if args.baselines else 2} classifiers for {eval_steps} steps each "
                         "(learned weights, uniform weights" + (", oracle, validation only)" if args.baselines else ")"))
    metrics.update(evaluation_classifiers(setup, importance, eval_steps, args.baselines))
    metrics["bilevel_test_accuracy"] = setup.predictor.accuracy(s.x_test, s.y_test)
    metrics.update(noise_detection(importance, setup.flipped))
    metrics.update(warm)
    if "warm_start_noise_precision" in warm:  # what the bilevel phase added to the warm start's ranking
        metrics["noise_precision_gain"] = metrics["noise_precision"] - warm["warm_start_noise_precision"]
    metrics.update(n_train=len(s.x_train), n_val=len(s.x_val), n_test=len(s.x_test),
                   n_flipped=int(setup.flipped.sum()), upper_iterations=int(solver.iterations.numpy()),
                   eval_steps=eval_steps, step_traces=solver.trace_count)

    experiment.plot_histograms(experiment.output_path(args, "importance_histogram.png"),
                               {"clean": importance[~setup.flipped], "flipped": importance[setup.flipped]},
                               xlabel="learned importance a_i",
                               title=f"{args.method} on {s.source}, {args.noise:.0%} flipped labels")
    curves = accuracy_curves(history, ["lower_train_accuracy", "lower_val_accuracy", "lower_test_accuracy"])
    experiment.plot_curves(experiment.output_path(args, "accuracy_vs_time.png"),
                           {k.split("_")[1]: v for k, v in curves.items()},
                           xlabel="wall-clock of the bilevel phase (s, evaluation excluded)", ylabel="accuracy",
                           title=f"lower-level network, {args.method} on {s.source}")
    config = experiment.config_of(args, hyperparams={k: v for k, v in setup.hp.items()},
                                  sizes=dataclasses.asdict(spec.datasets[args.dataset]),
                                  pretrain_epochs=spec.pretrain_epochs, eval_epochs=spec.eval_epochs,
                                  eval_lr=spec.eval_lr, init_importance=list(spec.init_importance),
                                  selection_threshold=spec.selection_threshold)
    experiment.write_results(args, metrics=metrics, history=history,
                             seconds_per_upper_iteration=fit_history.seconds_per_step, dataset=s.source,
                             config=config, paper=paper_cells.paper_entry(args, s.source), solver=solver,
                             summary_keys=["test_accuracy", "noisy_baseline_test_accuracy", "bilevel_test_accuracy",
                                           "noise_precision", "noise_recall", "oracle_test_accuracy",
                                           "val_only_test_accuracy"])
    return metrics


def _steps_per_execution(args: argparse.Namespace, steps_per_epoch: int) -> int:
    """--steps-per-execution, lowered to a divisor of the epoch so that the end-of-epoch renormalisation
    (a callback, run at call boundaries) keeps its exact steps."""
    k = math.gcd(args.steps_per_execution, steps_per_epoch)
    if k != args.steps_per_execution and args.verbose:
        print(f"--steps-per-execution {args.steps_per_execution} -> {k}: a divisor of the {steps_per_epoch} "
              "upper iterations per epoch (the importance is renormalised at every epoch's end)", flush=True)
    return k


def time_upper_iterations(spec: DenoisingSpec, method: str, *, steps: int = 3, dataset: Optional[str] = None,
                          inner_steps: Optional[int] = None, out: str = "runs/timing") -> Dict[str, float]:
    """Seconds per upper iteration of ``spec``'s runner at its paper size, on random data of the real shape
    (no warm start, no evaluation): the median of ``steps`` iterations after the first (tracing) one."""
    dataset = dataset or next(iter(spec.datasets))
    argv = ["--method", method, "--dataset", dataset, "--synthetic-data", "--out", out, "--verbose", "0"]
    if inner_steps is not None:
        argv += ["--inner-steps", str(inner_steps)]
    args, spec = parse(spec, argv)
    experiment.start_tensorflow(args)
    setup = prepare(spec, args, warm_start=False)
    train, val = iter(setup.train_stream), iter(setup.val_stream)
    timing = experiment.time_steps(  # float() waits for the step to finish
        lambda ub, lb: {k: float(v) for k, v in setup.solver.step(ub, lb).items()}, steps,
        inputs=lambda: (next(val), next(train)))
    return {"seconds_per_upper_iteration": timing["seconds"], "first_step_seconds": timing["first_seconds"],
            "n_train": len(setup.noisy), "batch_size": args.batch_size, "inner_steps": args.inner_steps,
            "lower_parameters": int(sum(np.prod(v.shape) for v in setup.task.model.trainable_variables))}

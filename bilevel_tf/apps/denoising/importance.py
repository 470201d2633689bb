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
printed); ``noise_precision`` / ``noise_recall`` from :func:`evaluation.noise_detection`.

A runner defines a :class:`DenoisingSpec` (its constants and hyperparameter table, in
:mod:`.config`, which parses the flags without TensorFlow) and calls :func:`run_denoising`.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

import bilevel_tf as bl

from ...runner import console, experiment
from ... import datasets
from ...runner.timing import time_steps
from . import data
from ..classifier import train_classifier, weighted_ce
from .evaluation import Predictor, importance_of, logits_of
from .per_example_adam import PerExampleAdam
from .config import BORROWED_ROWS, PENALTY_SCHEDULE, SOLVER_OPTIONS, DenoisingSpec, load_splits, parse

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
        return bl.BilevelProblem(
            self.upper_loss,
            self.lower_loss,
            [self.logits],
            self.model.trainable_variables,
            extra_state={"model": self.model},
        )

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


def solver_options(
    method: str,
    hp: Dict[str, Any],
    inner_steps: int,
    upper_optimizer: str = "per_example_adam",
    jit_compile: bool = False,
) -> Dict[str, Any]:
    """``bl.make_solver``'s options for ``method`` and one hyperparameter row: the table's, the upper
    optimizer (an ``UPPER_OPTIMIZERS`` name) at ``lr_u``, then the row's solver keywords."""
    upper = {"class_name": UPPER_OPTIMIZERS[upper_optimizer], "config": {"learning_rate": hp["lr_u"]}}
    options = dict(SOLVER_OPTIONS[method](hp), upper_optimizer=upper, inner_steps=inner_steps, jit_compile=jit_compile)
    options.update((k, v) for k, v in hp.items() if k not in _RUNNER_KEYS)
    return options


class EpochEnd(bl.Callback):
    """After every epoch: renormalise the importance in place (outside the compiled step) and halve the
    learning rates every ``halve_every`` epochs (ApproxGrad's schedule)."""

    def __init__(
        self,
        task: ImportanceLearning,
        steps_per_epoch: int,
        optimizers: Sequence = (),
        halve_every: Optional[int] = None,
    ):
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
    if args.method in spec.hyperparams:
        hp = dict(spec.hyperparams[args.method])
    else:
        borrowed = spec.hyperparams[BORROWED_ROWS[args.method]]
        hp = {k: v for k, v in borrowed.items() if k in ("lr_u", "lr_v", "pretrain_lr")}
    if args.method == "penalty":
        if args.schedule != "original":  # the table's constants are the original schedule's
            hp = {k: v for k, v in hp.items() if k not in PENALTY_SCHEDULE}
        hp.update(hp.pop("by_schedule", {}).get(args.schedule, {}))
        hp["schedule"] = args.schedule
    for key in ("lr_u", "lr_v"):
        if getattr(args, key) is not None:
            hp[key] = getattr(args, key)
    return hp


def prepare(
    spec: DenoisingSpec,
    args: argparse.Namespace,
    warm_start: bool = True,
    splits: Optional[data.Splits] = None,
    strategy: Optional[tf.distribute.Strategy] = None,
) -> Setup:
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
        console.status(
            args,
            f"warm start: {warm_steps} steps training the classifier on the {len(splits.x_val)} validation examples",
        )
        train_classifier(
            model,
            splits.x_val,
            splits.y_val,
            None,
            steps=warm_steps,
            batch_size=batch,
            learning_rate=hp.get("pretrain_lr", hp["lr_v"]),
            scale=splits.scale,
            seed=args.seed,
        )
        init = initial_logits(predictor.predict(splits.x_train), noisy, spec.init_importance)
    task = ImportanceLearning(model, init, training=args.dropout)
    solver = bl.make_solver(
        args.method, task.problem(), **solver_options(args.method, hp, args.inner_steps, args.upper_optimizer, args.jit)
    )
    augment = None
    if spec.augment is not None and getattr(args, "augment", False):
        augment = data.augmentation(**spec.augment)
    train_stream = data.indexed_batches(
        splits.x_train, noisy, batch, args.seed, splits.scale, augment, cycle=True
    )  # cycle: exact resume from a checkpoint
    val_stream = data.indexed_batches(
        splits.x_val, splits.y_val, batch, args.seed + 1, splits.scale, augment, with_index=False, repeat=True
    )
    return Setup(
        args,
        spec,
        splits,
        noisy,
        flipped,
        hp,
        task,
        solver,
        train_stream,
        val_stream,
        data.steps_per_epoch(len(noisy), batch),
        augment,
        predictor,
    )


def time_upper_iterations(
    spec: DenoisingSpec,
    method: str,
    *,
    steps: int = 3,
    dataset: Optional[str] = None,
    inner_steps: Optional[int] = None,
    out: str = "runs/timing",
) -> Dict[str, float]:
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
    timing = time_steps(  # float() waits for the step to finish
        lambda ub, lb: {k: float(v) for k, v in setup.solver.step(ub, lb).items()},
        steps,
        inputs=lambda: (next(val), next(train)),
    )
    return {
        "seconds_per_upper_iteration": timing["seconds"],
        "first_step_seconds": timing["first_seconds"],
        "n_train": len(setup.noisy),
        "batch_size": args.batch_size,
        "inner_steps": args.inner_steps,
        "lower_parameters": int(sum(np.prod(v.shape) for v in setup.task.model.trainable_variables)),
    }

"""The data-augmentation attacks (untargeted / targeted): the bilevel problem, solver, flags and driver."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf import experiment, models, paper_cells, tensorboard_logs

from .data import DATASETS, PoisonData
from .solver import add_solver_flags, attack_solver_options, halve_learning_rates
from .trainer import ClassifierTrainer, cross_entropy, regularized_loss

def data_augmentation_problem(model: keras.Model, poison: tf.Variable, data: PoisonData,
                              weight_decay: float) -> bl.BilevelProblem:
    """Lower: regularized logistic regression on poison + clean train; upper: the (signed) validation loss;
    the poison pixels stay in [0, 1]."""
    x_train = tf.constant(data.x_train)
    y_all = tf.constant(np.concatenate([data.poison_y, data.y_train]), tf.int64)
    x_val, y_val = tf.constant(data.x_val), tf.constant(data.y_val, tf.int64)
    sign = 1.0 if data.targeted else -1.0

    def lower_loss(_):
        return regularized_loss(model, tf.concat([poison, x_train], axis=0), y_all, weight_decay)

    def upper_loss(_):
        return sign * cross_entropy(model(x_val, training=False), y_val)

    return bl.BilevelProblem(upper_loss, lower_loss, [poison], model.trainable_variables,
                             upper_constraint=bl.constraints.box(0.0, 1.0))


# =========================================================================== MNIST runner plumbing
@dataclass
class AttackDefaults:
    """The constants block of a data-augmentation runner (the paper's / original's knobs)."""

    num_poison: Mapping[str, int]                      # dataset -> number of poison points
    splits: Mapping[str, Tuple[int, int, int]]        # dataset (and "smoke") -> (train, val, test)
    learning_rates: Mapping[str, Mapping[str, float]]  # method -> lr_u, lr_v (, lr_p)
    rho: float
    lam: float
    eps: float
    nu: float
    sigma: float
    halve_every: int
    full_epochs: int
    pretrain_lr: float
    weight_decay: float
    smoke: Mapping[str, int] = field(default_factory=lambda: dict(num_poison=6, epochs=3, inner_steps=2,
                                                                   full_epochs=100))

    @classmethod
    def from_constants(cls, constants: Mapping[str, Any]) -> "AttackDefaults":
        """Read a runner's module-level constants (NUM_POISON, DIGITS_NUM_POISON, SPLITS, LEARNING_RATES, RHO,
        LAM, EPS, NU, SIGMA, HALVE_EVERY, FULL_EPOCHS, PRETRAIN_LR, WEIGHT_DECAY)."""
        c = constants
        return cls(num_poison={"mnist": c["NUM_POISON"], "digits": c["DIGITS_NUM_POISON"]}, splits=c["SPLITS"],
                   learning_rates=c["LEARNING_RATES"], rho=c["RHO"], lam=c["LAM"], eps=c["EPS"], nu=c["NU"],
                   sigma=c["SIGMA"], halve_every=c["HALVE_EVERY"], full_epochs=c["FULL_EPOCHS"],
                   pretrain_lr=c["PRETRAIN_LR"], weight_decay=c["WEIGHT_DECAY"])


def add_attack_flags(p, d: AttackDefaults) -> None:
    experiment.add_fit_flags(p, strategy=False)  # a full-batch attack: nothing to split across replicas
    lrs = "; ".join(f"{m}: " + ", ".join(f"{k}={v:g}" for k, v in lr.items()) for m, lr in d.learning_rates.items())
    p.add_argument("--dataset", default="mnist", choices=list(DATASETS),
                   help="mnist (the paper's; keras cache, never downloaded) or digits (bundled 8x8, offline demo)")
    p.add_argument("--num-poison", type=experiment.int_range(1), default=None,
                   help="number of poison points added to the training set (default per dataset: "
                        + ", ".join(f"{k} {v}" for k, v in d.num_poison.items()) + ")")
    for i, name in enumerate(("train", "val", "test")):
        p.add_argument(f"--{name}-points", type=experiment.int_range(1), default=None,
                       help=f"{name} subset size (default per dataset: "
                            + ", ".join(f"{k} {v[i]}" for k, v in d.splits.items()) + ")")
    p.add_argument("--full-epochs", type=experiment.int_range(0), default=d.full_epochs,
                   help="full-batch Adam steps to pre-train the clean model and to retrain on clean + poison")
    p.add_argument("--pretrain-lr", type=experiment.positive_float, default=d.pretrain_lr, help="Adam learning rate of (re)training")
    p.add_argument("--weight-decay", type=experiment.nonnegative_float, default=d.weight_decay,
                   help="coefficient of ||W||^2 in the lower loss (original: 0.5*0.01*l2_loss = 0.0025; "
                        "the paper says 0.05)")
    p.add_argument("--lr-u", type=experiment.positive_float, default=None, help=f"upper (poison) learning rate; default per method ({lrs})")
    p.add_argument("--lr-v", type=experiment.positive_float, default=None, help="lower (classifier) learning rate (default per method)")
    p.add_argument("--lr-p", type=experiment.positive_float, default=None, help="ApproxGrad linear-system learning rate (per method)")
    add_solver_flags(p, d)
    p.add_argument("--halve-every", type=experiment.int_range(0), default=d.halve_every,
                   help="ApproxGrad: halve lr_u and lr_v every N upper iterations (0: never)")
    p.add_argument("--log-every", type=experiment.int_range(1), default=10,
                   help="keep one history record every N upper iterations")


def resolve_attack_args(args, d: AttackDefaults) -> None:
    """Fill per-dataset and per-method defaults and apply --smoke sizes (in place)."""
    if args.num_poison is None:
        args.num_poison = d.num_poison[args.dataset]
    split = d.splits["smoke" if args.smoke else args.dataset]
    for name, value in zip(("train_points", "val_points", "test_points"), split):
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name, value in d.learning_rates[args.method].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.smoke:
        for name, value in d.smoke.items():
            setattr(args, name, min(getattr(args, name), value))
        args.checkpoint_every = min(args.checkpoint_every, args.epochs)


def run_data_augmentation_attack(args, data: PoisonData) -> Dict[str, Any]:
    """Pre-train, attack (bl.fit, resumable), retrain on clean + poison, compare with label flipping; writes
    results.json, the poison (poison.npz) and figures; returns the metrics."""
    fingerprint = experiment.fingerprint(data.y_train, data.poison_y, data.x_train[:256])
    return experiment.Run.once(args, lambda run: _run_data_augmentation_attack(args, data, run), data=fingerprint)


def _run_data_augmentation_attack(args, data: PoisonData, run: experiment.Run) -> Dict[str, Any]:
    model = models.logistic_regression(data.x_train.shape[1], data.num_classes, use_bias=False)
    trainer = ClassifierTrainer(model, keras.optimizers.Adam(args.pretrain_lr), args.weight_decay, args.jit)

    def retrain_and_score(poison_x: Optional[np.ndarray]) -> Dict[str, float]:
        x, y = data.x_train, data.y_train
        if poison_x is not None:
            x, y = np.concatenate([x, poison_x]), np.concatenate([y, data.poison_y])
        trainer.fit(x, y, args.full_epochs)
        return {name: trainer.accuracy(xs, ys) for name, (xs, ys) in data.eval_sets.items()}

    flipped = retrain_and_score(data.poison_x0)
    clean = retrain_and_score(None)  # last: the clean model is the attack's starting point (pre-training)
    poison = tf.Variable(data.poison_x0, name="poison")
    problem = data_augmentation_problem(model, poison, data, args.weight_decay)
    solver = bl.make_solver(args.method, problem, **attack_solver_options(
        args.method, lr_u=args.lr_u, lr_v=args.lr_v, lr_p=args.lr_p, inner_steps=args.inner_steps, rho=args.rho,
        lam=args.lam, eps=args.eps, nu=args.nu, sigma=args.sigma, jit_compile=args.jit))
    callbacks = [halve_learning_rates(solver, args.halve_every)] if args.method == "approxgrad" else []
    history = bl.fit(solver, None, None, steps=args.epochs, steps_per_execution=args.steps_per_execution,
                     checkpoint_dir=experiment.checkpoint_dir(args, "bilevel"),
                     checkpoint_every=args.checkpoint_every, callbacks=callbacks, verbose=args.verbose,
                     log_every=args.log_every, config=run.config, tensorboard_dir=tensorboard_logs.log_dir(args))
    learned = poison.numpy()
    poisoned = retrain_and_score(learned)

    metrics: Dict[str, Any] = {}
    for phase, scores in (("clean", clean), ("label_flip", flipped), ("poisoned", poisoned)):
        for name, value in scores.items():
            metrics[name if (phase, name) == ("poisoned", "attack_success_rate") else f"{phase}_{name}"] = value
    metrics.update(num_poison=len(learned), poison_min=float(learned.min()), poison_max=float(learned.max()),
                   mean_abs_pixel_change=float(np.abs(learned - data.poison_x0).mean()), sizes=data.sizes())
    np.savez(os.path.join(args.out, "poison.npz"), start=data.poison_x0, learned=learned, labels=data.poison_y)
    plot_poison_rows(os.path.join(args.out, "poison_images.png"), learned, data.poison_x0, data.poison_y,
                     data.image_shape)
    if history:
        experiment.plot_curves(os.path.join(args.out, "upper_loss.png"),
                               {args.method: ([h["step"] for h in history], [h["upper_loss"] for h in history])},
                               xlabel="upper iteration", ylabel="upper loss f",
                               title="validation loss (negated)" if not data.targeted else "targeted loss")
    seconds = history.seconds_per_step if np.isfinite(history.seconds_per_step) else None
    keys = ["clean_test_accuracy"] + (["label_flip_attack_success_rate", "attack_success_rate"] if data.targeted
                                      else ["label_flip_test_accuracy", "poisoned_test_accuracy"])
    experiment.write_results(args, metrics=metrics, history=history, seconds_per_upper_iteration=seconds,
                             dataset=args.dataset, summary_keys=keys,
                             paper=paper_cells.paper_entry(args, args.dataset), solver=solver)
    return metrics


def plot_poison_rows(path: str, learned: np.ndarray, start: np.ndarray, labels: np.ndarray,
                     image_shape: Tuple[int, int], count: int = 10) -> str:
    """Paper figure 6: learned poison images above the images they started from."""
    n = min(count, len(learned))
    return experiment.plot_image_rows(
        path, {"learned poison": learned[:n].reshape(n, *image_shape), "start": start[:n].reshape(n, *image_shape)},
        title="poison labels: " + " ".join(str(int(c)) for c in labels[:n]))

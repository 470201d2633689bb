"""The data-augmentation attacks (untargeted / targeted): the bilevel problem, solver, flags and driver."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf.runner import console, experiment, plots, results_file, run_folder, tensorboard_logs
from bilevel_tf import models
from bilevel_tf.published import cells

from .data import PoisonData
from .solver import attack_solver_options, halve_learning_rates
from ..classifier import ClassifierTrainer
from .trainer import cross_entropy, regularized_loss


def data_augmentation_problem(
    model: keras.Model, poison: tf.Variable, data: PoisonData, weight_decay: float
) -> bl.BilevelProblem:
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

    return bl.BilevelProblem(
        upper_loss, lower_loss, [poison], model.trainable_variables, upper_constraint=bl.constraints.box(0.0, 1.0)
    )


def attack_in_folder(args, data: PoisonData, run: run_folder.Run) -> Dict[str, Any]:
    """Pre-train, attack (bl.fit, resumable), retrain on clean + poison, compare with label flipping; writes
    results.json, the poison (poison.npz) and figures into the open run folder
    (:func:`runs.run_data_augmentation_attack` opens it); returns the metrics."""
    model = models.logistic_regression(data.x_train.shape[1], data.num_classes, use_bias=False)
    trainer = ClassifierTrainer(model, keras.optimizers.Adam(args.pretrain_lr), args.weight_decay, args.jit)

    def retrain_and_score(poison_x: Optional[np.ndarray]) -> Dict[str, float]:
        x, y = data.x_train, data.y_train
        if poison_x is not None:
            x, y = np.concatenate([x, poison_x]), np.concatenate([y, data.poison_y])
        trainer.fit(x, y, args.full_epochs)
        return {name: trainer.accuracy(xs, ys) for name, (xs, ys) in data.eval_sets.items()}

    console.status(
        args, f"training the label-flip and the clean classifiers ({args.full_epochs} full-batch steps each)"
    )
    flipped = retrain_and_score(data.poison_x0)
    clean = retrain_and_score(None)  # last: the clean model is the attack's starting point (pre-training)
    poison = tf.Variable(data.poison_x0, name="poison")
    problem = data_augmentation_problem(model, poison, data, args.weight_decay)
    solver = _attack_solver(args, problem)
    callbacks = [halve_learning_rates(solver, args.halve_every)] if args.method == "approxgrad" else []
    history = bl.fit(
        solver,
        None,
        None,
        steps=args.epochs,
        steps_per_execution=args.steps_per_execution,
        callbacks=[*callbacks, run.backup()],
        verbose=args.verbose,
        log_every=args.log_every,
        tensorboard_dir=tensorboard_logs.log_dir(args),
    )
    learned = poison.numpy()
    console.status(args, f"retraining on clean + {len(learned)} learned poison points ({args.full_epochs} steps)")
    poisoned = retrain_and_score(learned)

    metrics = _attack_metrics({"clean": clean, "label_flip": flipped, "poisoned": poisoned}, learned, data)
    _write_poison_and_figures(args, data, learned, history)
    seconds = history.seconds_per_step if np.isfinite(history.seconds_per_step) else None
    keys = ["clean_test_accuracy"] + (
        ["label_flip_attack_success_rate", "attack_success_rate"]
        if data.targeted
        else ["label_flip_test_accuracy", "poisoned_test_accuracy"]
    )
    results_file.write_results(
        args,
        metrics=metrics,
        history=history,
        seconds_per_upper_iteration=seconds,
        dataset=args.dataset,
        summary_keys=keys,
        paper=cells.paper_entry(args, args.dataset),
        solver=solver,
    )
    return metrics


def _attack_solver(args, problem: bl.BilevelProblem) -> bl.BilevelSolver:
    """The chosen solver with the attack's learning rates and constants from the flags."""
    return bl.make_solver(
        args.method,
        problem,
        **attack_solver_options(
            args.method,
            lr_u=args.lr_u,
            lr_v=args.lr_v,
            lr_p=args.lr_p,
            inner_steps=args.inner_steps,
            rho=args.rho,
            lam=args.lam,
            eps=args.eps,
            nu=args.nu,
            sigma=args.sigma,
            jit_compile=args.jit,
        ),
    )


def _attack_metrics(scores: Dict[str, Dict[str, float]], learned: np.ndarray, data: PoisonData) -> Dict[str, Any]:
    """Each phase's scores (clean, label_flip, poisoned) under its prefix, the poisoned attack success rate under
    its own name, and what the poison looks like."""
    metrics: Dict[str, Any] = {}
    for phase, phase_scores in scores.items():
        for name, value in phase_scores.items():
            metrics[name if (phase, name) == ("poisoned", "attack_success_rate") else f"{phase}_{name}"] = value
    metrics.update(
        num_poison=len(learned),
        poison_min=float(learned.min()),
        poison_max=float(learned.max()),
        mean_abs_pixel_change=float(np.abs(learned - data.poison_x0).mean()),
        sizes=data.sizes(),
    )
    return metrics


def _write_poison_and_figures(args, data: PoisonData, learned: np.ndarray, history: Any) -> None:
    """poison.npz (start, learned, labels), the poison images above their starts, the upper loss curve."""
    np.savez(experiment.output_path(args, "poison.npz"), start=data.poison_x0, learned=learned, labels=data.poison_y)
    plot_poison_rows(
        experiment.output_path(args, "poison_images.png"), learned, data.poison_x0, data.poison_y, data.image_shape
    )
    if history:
        plots.plot_curves(
            experiment.output_path(args, "upper_loss.png"),
            {args.method: ([h["step"] for h in history], [h["upper_loss"] for h in history])},
            xlabel="upper iteration",
            ylabel="upper loss f",
            title="validation loss (negated)" if not data.targeted else "targeted loss",
        )


def plot_poison_rows(
    path: str, learned: np.ndarray, start: np.ndarray, labels: np.ndarray, image_shape: Tuple[int, int], count: int = 10
) -> str:
    """Paper figure 6: learned poison images above the images they started from."""
    n = min(count, len(learned))
    return plots.plot_image_rows(
        path,
        {"learned poison": learned[:n].reshape(n, *image_shape), "start": start[:n].reshape(n, *image_shape)},
        title="poison labels: " + " ".join(str(int(c)) for c in labels[:n]),
    )

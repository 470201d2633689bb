"""Data hyper-cleaning as in the PBGD code (Shen & Chen 2023, hanshen95/penalized-bilevel-gradient-descent).

    upper  x in R^N_train (init 0), example weight sigmoid(x_i); predicted clean <=> x_i >= 0
    lower  a linear (784-10) or MLP (784-300 sigmoid-10) network, PyTorch's default initialisation
    g(x, y) = mean_i sigmoid(x_i) CE_i(train, polluted labels) + reg * sum ||w||^2      (full batch)
    f(x, y) = mean CE(val)                                                               (full batch)

Data (PBGD): the training split shuffled, 5000 train / 5000 val / 10000 test, pixels / max, flattened; a
``pollute_rate`` fraction of the training points gets a label drawn uniformly from 0..9 (it may equal the
true one) and all of them are marked dirty. Cleaner metrics as PBGD: p = precision of "clean" predictions,
r = recall of the clean points, F1 = 2pr / (p + r).
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Callable, Dict, Tuple

import keras
import numpy as np
import tensorflow as tf

import bilevel_tf as bl

from ...runner import experiment, plots, results_file, run_folder, tensorboard_logs
from ... import models
from ...published import cells
from ...core import precision
from ...runner.timing import time_steps
from .hyper_cleaning_config import SOLVER_OPTIONS, Split, load_hyperclean_data
from .data import NUM_CLASSES
from ..classifier import ClassifierTrainer, weighted_ce
from .evaluation import accuracy_curves, noise_detection


def build_net(net: str, input_dim: int) -> keras.Model:
    if net == "linear":
        return models.logistic_regression(input_dim, NUM_CLASSES)
    return models.mlp(input_dim, (300,), "sigmoid", NUM_CLASSES)


def torch_default_init(model: keras.Model, rng: tf.random.Generator) -> None:
    """PyTorch's nn.Linear initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases, in
    place with TF ops (so it can run inside a compiled step: RHG restarts the net every outer step)."""
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Dense):
            continue
        bound = 1.0 / math.sqrt(layer.kernel.shape[0])
        for var in [layer.kernel] + ([layer.bias] if layer.use_bias else []):
            var.assign(rng.uniform(var.shape, -bound, bound, dtype=var.dtype))


def cleaner_scores(x: np.ndarray, dirty: np.ndarray) -> Dict[str, float]:
    """PBGD's p, r and F1 of the prediction "clean <=> x_i >= 0" (as fractions, PBGD prints 100 F1)."""
    predicted_clean = np.asarray(x) >= 0
    clean = ~np.asarray(dirty, bool)
    true_pos = float(np.sum(predicted_clean & clean))
    p = true_pos / max(predicted_clean.sum(), 1)
    r = true_pos / max(clean.sum(), 1)
    return {"cleaner_precision": p, "cleaner_recall": r, "f1": 2 * p * r / (p + r + 1e-8)}


class HyperCleaning:
    """The full-batch bilevel problem; losses take no batch (the data are constants of the step)."""

    def __init__(self, net: str, train: Split, val: Split, reg: float, seed: int):
        (x_tr, y_tr), (x_val, y_val) = train, val
        self.model = build_net(net, x_tr.shape[1])
        self.rng = tf.random.Generator.from_seed(seed)
        torch_default_init(self.model, self.rng)
        self.x = tf.Variable(tf.zeros(len(x_tr)), name="x")
        self.reg = float(reg)
        self.train = (tf.constant(x_tr), tf.constant(y_tr, tf.int32))
        self.val = (tf.constant(x_val), tf.constant(y_val, tf.int32))

    def lower_loss(self, _batch=None) -> tf.Tensor:
        x, y = self.train
        ce = precision.cross_entropy(self.model(x), y)
        loss = tf.reduce_mean(tf.sigmoid(self.x) * ce)
        if self.reg:
            loss += self.reg * tf.add_n([tf.reduce_sum(tf.square(w)) for w in self.model.trainable_variables])
        return loss

    def upper_loss(self, _batch=None) -> tf.Tensor:
        x, y = self.val
        return weighted_ce(self.model(x), y)

    def problem(self, restart_lower: bool) -> bl.BilevelProblem:
        init = (lambda: torch_default_init(self.model, self.rng)) if restart_lower else None
        return bl.BilevelProblem(
            self.upper_loss,
            self.lower_loss,
            [self.x],
            self.model.trainable_variables,
            lower_init=init,
            extra_state={"init_rng": self.rng},
        )


def solver_options(args: argparse.Namespace, penalty_options: Dict[str, Any]) -> Dict[str, Any]:
    """``bl.make_solver``'s options for ``args.method`` (see ``SOLVER_OPTIONS``)."""
    return dict(SOLVER_OPTIONS[args.method](args, penalty_options), jit_compile=args.jit)


def baseline_accuracy(net: str, train: Split, test: Split, steps: int, lr: float, seed: int) -> float:
    """The same net trained with uniform weights on the polluted training set (full-batch SGD)."""
    model = build_net(net, train[0].shape[1])
    torch_default_init(model, tf.random.Generator.from_seed(seed))
    # a diverged baseline reports its (chance-level) accuracy rather than ending the run after the bilevel phase
    ClassifierTrainer(model, keras.optimizers.SGD(lr)).fit(train[0], train[1], steps, check_finite=False)
    return float(np.mean(np.argmax(model(test[0]).numpy(), -1) == test[1]))


def time_upper_iterations(
    args: argparse.Namespace, penalty_options: Dict[str, Any], steps: int = 3
) -> Dict[str, float]:
    """Median seconds per upper iteration (after the tracing one) on random data of MNIST's shape."""
    experiment.start_tensorflow(args)
    train, val, _, _, _ = load_hyperclean_data("synthetic", args.pollute_rate, args.seed)
    task = HyperCleaning(args.net, train, val, args.reg, args.seed)
    solver = bl.make_solver(
        args.method, task.problem(restart_lower=args.method == "rhg"), **solver_options(args, penalty_options)
    )
    timing = time_steps(lambda: float(solver.step()["upper_loss"]), steps)  # float() waits
    return {"seconds_per_upper_iteration": timing["seconds"]}


def run_in_folder(
    args, penalty_options: Dict[str, Any], baseline: Tuple[int, float], data, run: run_folder.Run
) -> Dict[str, Any]:
    """The experiment in its open run folder (:func:`hyper_cleaning_config.run_hyper_cleaning` loads the data and
    opens it); returns the metrics."""
    train, val, test, dirty, _ = data
    task = HyperCleaning(args.net, train, val, args.reg, args.seed)
    solver = bl.make_solver(
        args.method, task.problem(restart_lower=args.method == "rhg"), **solver_options(args, penalty_options)
    )
    x_test, y_test = tf.constant(test[0]), test[1]

    def evaluate() -> Dict[str, float]:
        return {
            "test_accuracy": float(np.mean(np.argmax(task.model(x_test).numpy(), -1) == y_test)),
            **cleaner_scores(task.x.numpy(), dirty),
        }

    history = bl.fit(
        solver,
        None,
        None,
        steps=args.outer_itr,
        steps_per_execution=args.steps_per_execution,
        callbacks=[bl.Evaluate(evaluate, args.eval_every), run.backup()],
        verbose=args.verbose,
        log_every=args.eval_every,
        csv_path=experiment.output_path(args, "history.csv"),
        tensorboard_dir=tensorboard_logs.log_dir(args),
    )
    weights = 1.0 / (1.0 + np.exp(-task.x.numpy()))
    metrics = _final_metrics(args, history, evaluate, weights, data, baseline)
    _write_figures(args, history, weights, dirty)
    results_file.write_results(
        args,
        metrics=metrics,
        history=history,
        seconds_per_upper_iteration=history.seconds_per_step,
        dataset=args.dataset,
        paper=cells.paper_entry(args, args.dataset),
        solver=solver,
        summary_keys=["test_accuracy", "noisy_baseline_test_accuracy", "f1", "cleaner_precision", "cleaner_recall"],
    )
    return metrics


def _final_metrics(
    args, history, evaluate: Callable[[], Dict[str, float]], weights: np.ndarray, data, baseline
) -> Dict[str, Any]:
    """The last evaluation, the best one of the run, how well the weights find the polluted labels, and the
    baseline trained with uniform weights."""
    train, _, test, dirty, y_clean = data
    metrics: Dict[str, Any] = evaluate()
    evaluated = [r for r in history if "test_accuracy" in r] or [dict(step=args.outer_itr, **metrics)]
    best = max(evaluated, key=lambda r: r["test_accuracy"])
    metrics.update(
        best_test_accuracy=best["test_accuracy"],
        best_test_accuracy_iteration=best["step"],
        final_test_accuracy=metrics["test_accuracy"],
    )
    metrics.update(noise_detection(weights, dirty, threshold=0.5))
    steps, lr = baseline
    steps = min(steps, args.outer_itr) if args.smoke else steps
    metrics["noisy_baseline_test_accuracy"] = baseline_accuracy(args.net, train, test, steps, lr, args.seed)
    metrics.update(n_train=len(dirty), n_dirty=int(dirty.sum()), labels_unchanged=float(np.mean(train[1] == y_clean)))
    return metrics


def _write_figures(args, history, weights: np.ndarray, dirty: np.ndarray) -> None:
    """The histogram of the learned weights (clean vs polluted) and the accuracy-vs-time curves."""
    plots.plot_histograms(
        experiment.output_path(args, "importance_histogram.png"),
        {"clean": weights[~dirty], "polluted": weights[dirty]},
        xlabel="learned weight sigmoid(x_i)",
        title=f"{args.method} hyper-cleaning",
    )
    curves = accuracy_curves(history, ["test_accuracy", "f1"])
    plots.plot_curves(
        experiment.output_path(args, "accuracy_vs_time.png"),
        curves,
        xlabel="wall-clock (s, evaluation excluded)",
        ylabel="test accuracy / cleaner F1",
        title=f"{args.method}, {args.net} net on {args.dataset}",
    )

"""One importance-learning run in its open folder: the warm start, the bilevel phase (``bl.fit`` with the
epoch-end renormalisation and the lower level's evaluation), the fresh classifiers on the learned weighting and
the baselines', the figures and results.json. :func:`config.run_denoising` parses, loads the data
and opens the folder first, then calls :func:`run_in_folder`."""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import math
import os
from typing import Any, Callable, Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf

import bilevel_tf as bl

from ...runner import console, experiment, plots, results_file, run_folder, tensorboard_logs
from ...published import cells
from ...training import workers
from ...training.files import atomic_write_text
from . import data
from ..classifier import ClassifierTrainer
from .importance import EpochEnd, Setup, prepare
from .config import DenoisingSpec
from .evaluation import Predictor, accuracy_curves, noise_detection


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


def run_in_folder(
    args: argparse.Namespace,
    spec: DenoisingSpec,
    splits: data.Splits,
    run: run_folder.Run,
    strategy: Optional[tf.distribute.Strategy],
) -> Dict[str, Any]:
    """The experiment in its open run folder; returns the metrics (results.json has everything)."""
    ckpt = experiment.checkpoint_dir(args, "bilevel")
    resuming = has_checkpoint(ckpt)
    warm_path = os.path.join(ckpt, "warm_start.json")
    warm = read_warm_start(warm_path) if resuming else None
    # a resumed run restores u and v from the checkpoint: its warm start is redone only when the warm start's
    # metrics are lost (the same seed gives the same warm start)
    setup = prepare(spec, args, warm_start=warm is None, splits=splits, strategy=strategy)
    if warm is None:
        warm = _warm_start_metrics(setup, ckpt if run.chief else None)
    fit_history = _bilevel_phase(setup, run, resuming)
    if not run.chief:  # TensorFlow's rule: only the chief writes results; its evaluation would be discarded here
        print(
            f"[{args.experiment}] worker {workers.task_index(strategy)}: bilevel phase done, the chief writes "
            "the results",
            flush=True,
        )
        return {}
    metrics = _final_metrics(setup, warm)
    _write_outputs(setup, run, metrics, list(fit_history), fit_history.seconds_per_step)
    return metrics


def _warm_start_metrics(setup: Setup, folder: Optional[str]) -> Dict[str, Any]:
    """The pre-trained network's test accuracy and the warm start's noise detection (kept in ``folder``)."""
    s = setup.splits
    warm = {
        "pretrain_test_accuracy": setup.predictor.accuracy(s.x_test, s.y_test),
        **{
            f"warm_start_{k}": v
            for k, v in noise_detection(setup.task.values(), setup.flipped).items()
            if k in ("noise_precision", "noise_recall")
        },
    }
    if folder is not None:
        os.makedirs(folder, exist_ok=True)
        atomic_write_text(os.path.join(folder, "warm_start.json"), json.dumps(warm))
    return warm


def _bilevel_phase(setup: Setup, run: run_folder.Run, resuming: bool) -> bl.History:
    args, task, solver = setup.args, setup.task, setup.solver
    evaluate = lower_evaluation(setup)
    spe = setup.steps_per_epoch
    total = args.epochs * spe if args.max_steps is None else args.max_steps  # --upper-iterations K replaces epochs
    # the state before the bilevel phase (evaluation time not counted); a resume restores it with the rest
    start = [] if resuming else [{"step": 0, "seconds": 0.0, **evaluate(), "eval_seconds": 0.0}]
    halve = setup.hp.get("halve_every") if args.method == "approxgrad" else None
    callbacks = [
        EpochEnd(task, spe, [solver.upper_optimizer, solver.lower_optimizer], halve),
        bl.Evaluate(evaluate, every=args.eval_every * spe),
        run.backup(),
    ]
    chief = run.chief
    return bl.fit(
        solver,
        setup.val_stream,
        setup.train_stream,
        steps=total,
        steps_per_execution=_steps_per_execution(args, spe),
        callbacks=callbacks,
        verbose=args.verbose,
        log_every=max(1, spe // 5),
        csv_path=experiment.output_path(args, "history.csv") if chief else None,
        history=start,
        tensorboard_dir=tensorboard_logs.log_dir(args) if chief else None,
    )


def _final_metrics(setup: Setup, warm: Dict[str, Any]) -> Dict[str, Any]:
    """Fresh classifiers on the learned weighting (and the baselines'), the bilevel network's accuracy, the
    noise detection, and what the bilevel phase added to the warm start."""
    args, s, spec, solver = setup.args, setup.splits, setup.spec, setup.solver
    importance = setup.task.values()
    metrics: Dict[str, Any] = {}
    eval_steps = data.epochs_to_steps(spec.eval_epochs, len(s.x_train) + len(s.x_val), args.batch_size)
    others = ", oracle, validation only)" if args.baselines else ")"
    console.status(
        args,
        f"evaluating: training {4 if args.baselines else 2} classifiers for {eval_steps} steps each "
        "(learned weights, uniform weights" + others,
    )
    metrics.update(evaluation_classifiers(setup, importance, eval_steps, args.baselines))
    metrics["bilevel_test_accuracy"] = setup.predictor.accuracy(s.x_test, s.y_test)
    metrics.update(noise_detection(importance, setup.flipped))
    metrics.update(warm)
    if "warm_start_noise_precision" in warm:  # what the bilevel phase added to the warm start's ranking
        metrics["noise_precision_gain"] = metrics["noise_precision"] - warm["warm_start_noise_precision"]
    metrics.update(
        n_train=len(s.x_train),
        n_val=len(s.x_val),
        n_test=len(s.x_test),
        n_flipped=int(setup.flipped.sum()),
        upper_iterations=int(solver.iterations.numpy()),
        eval_steps=eval_steps,
        step_traces=solver.trace_count,
    )
    return metrics


def _write_outputs(
    setup: Setup,
    run: run_folder.Run,
    metrics: Dict[str, Any],
    history: List[Dict[str, Any]],
    seconds_per_step: Optional[float],
) -> None:
    """The importance histogram, the accuracy curves and results.json."""
    args, s, spec = setup.args, setup.splits, setup.spec
    importance = setup.task.values()
    plots.plot_histograms(
        experiment.output_path(args, "importance_histogram.png"),
        {"clean": importance[~setup.flipped], "flipped": importance[setup.flipped]},
        xlabel="learned importance a_i",
        title=f"{args.method} on {s.source}, {args.noise:.0%} flipped labels",
    )
    curves = accuracy_curves(history, ["lower_train_accuracy", "lower_val_accuracy", "lower_test_accuracy"])
    plots.plot_curves(
        experiment.output_path(args, "accuracy_vs_time.png"),
        {k.split("_")[1]: v for k, v in curves.items()},
        xlabel="wall-clock of the bilevel phase (s, evaluation excluded)",
        ylabel="accuracy",
        title=f"lower-level network, {args.method} on {s.source}",
    )
    config = results_file.config_of(
        args,
        hyperparams={k: v for k, v in setup.hp.items()},
        sizes=dataclasses.asdict(spec.datasets[args.dataset]),
        pretrain_epochs=spec.pretrain_epochs,
        eval_epochs=spec.eval_epochs,
        eval_lr=spec.eval_lr,
        init_importance=list(spec.init_importance),
        selection_threshold=spec.selection_threshold,
    )
    results_file.write_results(
        args,
        metrics=metrics,
        history=history,
        seconds_per_upper_iteration=seconds_per_step,
        dataset=s.source,
        config=config,
        paper=cells.paper_entry(args, s.source),
        solver=setup.solver,
        summary_keys=[
            "test_accuracy",
            "noisy_baseline_test_accuracy",
            "bilevel_test_accuracy",
            "noise_precision",
            "noise_recall",
            "oracle_test_accuracy",
            "val_only_test_accuracy",
        ],
    )


def _steps_per_execution(args: argparse.Namespace, steps_per_epoch: int) -> int:
    """--steps-per-execution, lowered to a divisor of the epoch so that the end-of-epoch renormalisation
    (a callback, run at call boundaries) keeps its exact steps."""
    k = math.gcd(args.steps_per_execution, steps_per_epoch)
    if k != args.steps_per_execution and args.verbose:
        print(
            f"--steps-per-execution {args.steps_per_execution} -> {k}: a divisor of the {steps_per_epoch} "
            "upper iterations per epoch (the importance is renormalised at every epoch's end)",
            flush=True,
        )
    return k


def lower_evaluation(setup: Setup) -> Callable[[], Dict[str, float]]:
    s, predictor = setup.splits, setup.predictor

    def evaluate() -> Dict[str, float]:
        a = setup.task.values()
        return {
            "lower_train_accuracy": predictor.accuracy(s.x_train, setup.noisy),  # noisy labels, as fig. 4a
            "lower_val_accuracy": predictor.accuracy(s.x_val, s.y_val),
            "lower_test_accuracy": predictor.accuracy(s.x_test, s.y_test),
            "mean_importance": float(a.mean()),
            "noise_precision": noise_detection(a, setup.flipped)["noise_precision"],
        }

    return evaluate


def evaluation_classifiers(setup: Setup, importance: np.ndarray, steps: int, baselines: bool) -> Dict[str, float]:
    """Fresh classifiers (same initial weights, data order seed and step budget) on different weightings."""
    s, spec, args = setup.splits, setup.spec, setup.args
    model = spec.classifier(args.model, s.input_shape)
    # every fit restarts from the model's initial weights and a fresh Adam
    trainer, predictor = ClassifierTrainer(model, keras.optimizers.Adam(spec.eval_lr)), Predictor(model, s.scale)
    x_tv = np.concatenate([s.x_train, s.x_val])
    y_tv = np.concatenate([setup.noisy, s.y_val])
    ones_val = np.ones(len(s.x_val), np.float32)
    if spec.selection_threshold is not None:
        learned = (importance > spec.selection_threshold).astype(np.float32)
    else:
        learned = importance.astype(np.float32)
    runs = {
        "test_accuracy": (x_tv, y_tv, np.concatenate([learned, ones_val])),
        "noisy_baseline_test_accuracy": (x_tv, y_tv, None),
    }
    if baselines:
        clean = ~setup.flipped
        runs["oracle_test_accuracy"] = (
            np.concatenate([s.x_train[clean], s.x_val]),
            np.concatenate([setup.noisy[clean], s.y_val]),
            None,
        )
        runs["val_only_test_accuracy"] = (s.x_val, s.y_val, None)
    out = {}
    for key, (x, y, w) in runs.items():
        trainer.fit_batches(
            x, y, w, steps=steps, batch_size=args.batch_size, scale=s.scale, seed=args.seed + 2, augment=setup.augment
        )
        out[key] = predictor.accuracy(s.x_test, s.y_test)
    if baselines:
        out["train_val_test_accuracy"] = out["noisy_baseline_test_accuracy"]
    if spec.selection_threshold is not None:
        out["selected_training_points"] = int(learned.sum())
    return out

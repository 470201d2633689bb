"""Few-shot learning as a bilevel problem (Mehra & Hamm, Sec. 3.3; original ``bilevel_meta_commonfilter.py``).

Upper level u: a representation shared by all tasks (Omniglot conv net, Mini-ImageNet ResNet). Lower level v:
one cosine-normalised softmax head per task of a meta-batch (``models.CosineClassifier``, W of shape
(tasks, d, N)), re-initialised at the start of every meta-iteration::

    g(u, v) = mean over tasks of the support cross-entropy      (lower loss, support sets)
    f(u, v) = mean over tasks of the query cross-entropy        (upper loss, query sets)

Meta-test as in the paper: freeze the representation, draw fresh heads, train them for 100 Adam(1e-3) steps on
each task's support set, report mean query accuracy and its 95% interval over 600 tasks.

Batch normalisation. The original builds one encoder copy per task and per split, so its batch norm (always in
training mode, moving averages never used) normalises each task's support set and each task's query set with
their own statistics. :func:`bilevel_tf.models.taskwise_encoder` reproduces this with one vectorised pass over the
whole meta-batch (a statistics group per task) instead of 2 x meta-batch encoder copies.

The runners ``few_shot/omniglot/...`` and ``few_shot/miniimagenet/...`` hold the paper's constants and data
loading; everything else (flags, problem, solver, evaluation, the driver) lives here.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf.runner import console, experiment, plots, results_file, run_folder, tensorboard_logs
from bilevel_tf.published import cells
from bilevel_tf.core import precision
from bilevel_tf.runner.timing import time_steps
from bilevel_tf.datasets import EpisodeSampler
from bilevel_tf.models import CosineClassifier, cosine_logits, taskwise_encoder

from .config import ADAM_EPSILON, SOLVER_OPTIONS, FewShotData, sampler

CI95_Z = 1.96


# ---------------------------------------------------------------------------------------------- data
class EpisodeSource:
    """Meta-batches for ``bl.fit``: ``query(step)`` is the upper batch and ``support(step)`` the lower batch of
    the same episode. Episode ``step`` depends only on (seed, step), so a resumed run sees the same tasks."""

    def __init__(self, sampler: EpisodeSampler, meta_batch: int, seed: int):
        self.sampler, self.meta_batch, self.seed = sampler, meta_batch, seed
        self._step, self._episode = None, None

    def episode(self, step: int):
        if step != self._step:
            self.sampler.rng = np.random.default_rng([self.seed, step])
            ep = self.sampler.sample(self.meta_batch)
            self._episode = tuple(tf.convert_to_tensor(a) for a in ep)
            self._step = step
        return self._episode

    def support(self, step: int):
        return self.episode(step)[:2]

    def query(self, step: int):
        return self.episode(step)[2:]


def random_episode(
    image_shape: Sequence[int], n_way: int, k_shot: int, n_query: int, meta_batch: int, seed: int = 0
) -> Tuple[tf.Tensor, ...]:
    """A meta-batch of random images and labels with the real shapes (for timing)."""
    rng = np.random.default_rng(seed)

    def part(per_class):
        x = rng.random((meta_batch, n_way * per_class) + tuple(image_shape), dtype=np.float32)
        y = np.tile(np.repeat(np.arange(n_way), per_class), (meta_batch, 1))
        return tf.constant(x), tf.constant(y, tf.int64)

    return part(k_shot) + part(n_query)


# ---------------------------------------------------------------------------------------------- model
class FewShotModel:
    """Representation + per-task heads for meta-batches of ``meta_batch`` tasks, and the bilevel problem."""

    def __init__(self, encoder: keras.Model, n_way: int, meta_batch: int, seed: Optional[int] = None):
        self.encoder, self.n_way, self.meta_batch = encoder, int(n_way), int(meta_batch)
        self.feature_dim = int(encoder.output_shape[-1])
        self.head = CosineClassifier(self.n_way, num_tasks=self.meta_batch, feature_dim=self.feature_dim, seed=seed)
        self.seed = 0 if seed is None else int(seed)
        self.head_resets = tf.Variable(0, dtype=tf.int64, trainable=False, name="head_resets")
        self._taskwise: Dict[int, keras.Model] = {}
        self.taskwise(self.meta_batch)

    def reset_heads(self) -> None:
        """Fresh heads (W ~ N(0, w_stddev), b = b_init, as ``CosineClassifier.reset``) drawn from a counter that
        is checkpointed with the solver, so a resumed run draws the same heads as an uninterrupted one."""
        seed = tf.stack([tf.constant(self.seed, tf.int64), self.head_resets])
        self.head.W.assign(tf.random.stateless_normal(self.head.W.shape, seed, stddev=self.head.w_stddev))
        self.head.b.assign(tf.fill(self.head.b.shape, tf.constant(self.head.b_init, self.head.b.dtype)))
        self.head_resets.assign_add(1)

    def taskwise(self, num_tasks: int) -> keras.Model:
        """The per-task-statistics encoder for batches of ``num_tasks`` tasks (built eagerly, then cached)."""
        if num_tasks not in self._taskwise:
            self._taskwise[num_tasks] = taskwise_encoder(self.encoder, num_tasks)
        return self._taskwise[num_tasks]

    def features(self, x: tf.Tensor) -> tf.Tensor:
        """(tasks, n, H, W, C) images -> (tasks, n, d) features."""
        x = tf.convert_to_tensor(x)
        tasks = int(x.shape[0])
        flat = tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], 0))
        return tf.reshape(self.taskwise(tasks)(flat), [tasks, -1, self.feature_dim])

    def loss(self, batch) -> tf.Tensor:
        """Mean over tasks of the mean cross-entropy of the tasks' heads on ``batch = (images, labels)``."""
        x, y = batch
        return mean_cross_entropy(self.head(self.features(x)), y)

    def problem(self) -> bl.BilevelProblem:
        """f = query loss (upper batch), g = support loss (lower batch); heads reset before every iteration."""
        return bl.BilevelProblem(
            upper_loss=self.loss,
            lower_loss=self.loss,
            upper_vars=self.encoder.trainable_variables,
            lower_vars=[self.head.W, self.head.b],
            lower_init=self.reset_heads,
            extra_state={"encoder": self.encoder, "head_resets": self.head_resets},
        )


def mean_cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    # Every task has the same number of examples, so the overall mean is the mean of per-task means.
    return tf.reduce_mean(precision.cross_entropy(logits, labels))


# ---------------------------------------------------------------------------------------------- meta-test
class MetaTester:
    """The paper's meta-test: representation frozen, fresh heads trained ``steps`` Adam steps on each task's
    support set, accuracy on its queries. One compiled call handles ``tasks_per_call`` tasks (features are
    computed once since the representation is frozen; the head updates run in a graph loop)."""

    def __init__(self, model: FewShotModel, tasks_per_call: int, steps: int = 100, learning_rate: float = 1e-3):
        self.model, self.tasks_per_call = model, int(tasks_per_call)
        self.steps, self.learning_rate = int(steps), float(learning_rate)
        model.taskwise(self.tasks_per_call)  # build outside the tf.function
        self._accuracy_fn = tf.function(self._task_accuracies, reduce_retracing=True)

    def _task_accuracies(self, support_x, support_y, query_x, query_y, seed):
        head = self.model.head
        support, query = self.model.features(support_x), self.model.features(query_x)
        tasks, d, n_way = int(support.shape[0]), self.model.feature_dim, self.model.n_way
        params = [
            tf.random.stateless_normal([tasks, d, n_way], seed, stddev=head.w_stddev),
            tf.fill([tasks, n_way], tf.constant(head.b_init, tf.float32)),
        ]
        m = [tf.zeros_like(p) for p in params]
        v = list(m)
        for step in tf.range(1, self.steps + 1):
            with tf.GradientTape() as tape:
                tape.watch(params)
                loss = mean_cross_entropy(cosine_logits(support, *params, head.scale, head.eps), support_y)
            params, m, v = adam_update(params, tape.gradient(loss, params), m, v, step, self.learning_rate)
        predicted = tf.argmax(cosine_logits(query, *params, head.scale, head.eps), axis=-1)
        return tf.reduce_mean(tf.cast(tf.equal(predicted, query_y), tf.float32), axis=-1)

    def accuracies(self, sampler: EpisodeSampler, n_tasks: int, seed: int) -> np.ndarray:
        """Query accuracies of ``n_tasks`` tasks drawn from ``sampler`` (the same tasks and head initialisations
        for the same ``seed``)."""
        sampler.rng = np.random.default_rng(seed)
        out: List[np.ndarray] = []
        for call in range(math.ceil(n_tasks / self.tasks_per_call)):
            ep = sampler.sample(self.tasks_per_call)
            out.append(self._accuracy_fn(*ep, tf.constant([seed, call], tf.int64)).numpy())
        return np.concatenate(out)[:n_tasks]


def adam_update(
    params: List[tf.Tensor],
    grads: List[tf.Tensor],
    m: List[tf.Tensor],
    v: List[tf.Tensor],
    step: tf.Tensor,
    learning_rate: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
):
    """One Adam update (tf.train.AdamOptimizer's form) on plain tensors -> (params, m, v): a head trained in a
    graph loop needs no variables or optimizer slots to reset between task batches.

    Why not ``keras.optimizers.Adam``: it only updates variables in place (``apply_gradients``), so the heads,
    m and v would become variables (plus the optimizer's step counter) to re-initialise before every task
    batch inside the compiled loop, and its moment update ``m += (g - m) * (1 - beta1)`` rounds differently
    from ``beta1 * m + (1 - beta1) * g`` below: fed the same gradients, the parameters differ in their last bit
    after 99 of 100 steps (up to 1.2e-7 on values of order 1), so the meta-test accuracies would no longer be
    bit-identical. (Its bias correction and epsilon placement are the same as here; ``tests/test_few_shot_app.py``
    checks that the two agree to rounding.)"""
    step = tf.cast(step, tf.float32)
    rate = learning_rate * tf.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)
    m = [beta1 * a + (1.0 - beta1) * g for a, g in zip(m, grads)]
    v = [beta2 * a + (1.0 - beta2) * tf.square(g) for a, g in zip(v, grads)]
    return [p - rate * a / (tf.sqrt(b) + ADAM_EPSILON) for p, a, b in zip(params, m, v)], m, v


def summarize(accuracies: np.ndarray) -> Tuple[float, float]:
    """(mean, 95% confidence half-width 1.96 * std / sqrt(n))."""
    acc = np.asarray(accuracies, np.float64)
    return float(acc.mean()), float(CI95_Z * acc.std() / math.sqrt(len(acc)))


# ---------------------------------------------------------------------------------------------- flags
# ---------------------------------------------------------------------------------------------- solver
def solver_options(args: argparse.Namespace) -> Dict:
    """``bl.make_solver``'s options for ``args.method`` (see ``SOLVER_OPTIONS``)."""
    return dict(SOLVER_OPTIONS[args.method](args), inner_steps=args.inner_steps, jit_compile=args.jit)


def seconds_per_upper_iteration(
    model: FewShotModel,
    args: argparse.Namespace,
    k_shot: int,
    n_query: int,
    image_shape: Sequence[int],
    repeats: int = 3,
) -> Dict[str, float]:
    """Timing of upper iterations on random data of the given shapes: median wall-clock and process CPU seconds
    of ``repeats`` iterations after the first call, and the first call (tracing + one iteration). CPU seconds
    are the steadier figure on a shared machine."""
    solver = bl.make_solver(args.method, model.problem(), **solver_options(args))
    sx, sy, qx, qy = random_episode(image_shape, model.n_way, k_shot, n_query, model.meta_batch)
    timing = time_steps(lambda: float(solver.step((qx, qy), (sx, sy))["upper_loss"]), repeats)
    return {
        "seconds": timing["seconds"],
        "cpu_seconds": timing["cpu_seconds"],
        "first_call_seconds": timing["first_seconds"],
    }


# ---------------------------------------------------------------------------------------------- driver
def run_in_folder(
    args: argparse.Namespace,
    data: FewShotData,
    make_encoder: Callable[[Tuple[int, ...]], keras.Model],
    train_sampler: EpisodeSampler,
    test_sampler: EpisodeSampler,
    run: run_folder.Run,
) -> Dict:
    """Meta-train with the chosen solver in the open run folder (:func:`.config.run` opens it), evaluate
    as the paper, write results.json and the accuracy curves. Returns the metrics."""
    encoder = make_encoder(data.image_shape)
    model = FewShotModel(encoder, args.n_way, args.meta_batch, seed=args.seed)
    solver = bl.make_solver(args.method, model.problem(), **solver_options(args))
    tester = MetaTester(model, args.eval_batch, args.test_steps, args.test_lr)
    source = EpisodeSource(sampler(data, "train", args), args.meta_batch, args.seed)
    accuracies = _FixedTaskAccuracies(
        tester, solver, {"train": (train_sampler, args.seed + 1), "test": (test_sampler, args.seed + 2)}
    )
    console.status(
        args,
        f"evaluating the untrained representation on {args.test_tasks} meta-test tasks "
        f"({args.n_way}-way {args.k_shot}-shot, {args.test_steps} steps each)",
    )
    untrained = summarize(accuracies("test", args.test_tasks))
    start = [summarize(accuracies(w, args.eval_tasks))[0] for w in ("train", "test")]

    history = bl.fit(
        solver,
        source.query,
        source.support,
        steps=args.meta_iterations,
        steps_per_execution=args.steps_per_execution,
        callbacks=[bl.Evaluate(lambda: accuracies.curve_point(args.eval_tasks), args.eval_every), run.backup()],
        verbose=args.verbose,
        log_every=math.gcd(args.eval_every, 10),
        tensorboard_dir=tensorboard_logs.log_dir(args),
    )
    console.status(args, f"meta-testing on {args.test_tasks} tasks of meta-train and of meta-test classes")
    metrics = _meta_test_metrics(args, accuracies, untrained, solver)
    _plot_curves(args, data.name, history, start)
    encoder.save_weights(experiment.output_path(args, "representation.weights.h5"))
    results_file.write_results(
        args,
        metrics=metrics,
        history=history,
        dataset=data.name,
        paper=cells.paper_entry(args, data.name),
        solver=solver,
        seconds_per_upper_iteration=history.seconds_per_step,
        summary_keys=["test_accuracy", "test_accuracy_ci95", "untrained_test_accuracy"],
        setting=f"{args.n_way}-way {args.k_shot}-shot",
    )
    return metrics


class _FixedTaskAccuracies:
    """Query accuracies on fixed task streams, one per split ("train", "test") with its own seed: every curve
    point and the final test see the same tasks and head initialisations. Computed once per upper iteration."""

    def __init__(self, tester: MetaTester, solver: Any, streams: Dict[str, Tuple[EpisodeSampler, int]]):
        self._tester, self._solver, self._streams = tester, solver, streams
        self._cache: Dict[Tuple, np.ndarray] = {}

    def __call__(self, which: str, n_tasks: int) -> np.ndarray:
        key = (which, n_tasks, int(self._solver.iterations.numpy()))
        if key not in self._cache:
            sampler, seed = self._streams[which]
            self._cache[key] = self._tester.accuracies(sampler, n_tasks, seed)
        return self._cache[key]

    def curve_point(self, n_tasks: int) -> Dict[str, float]:
        """A point of the accuracy-vs-time curves: mean query accuracy on meta-train and on meta-test classes."""
        return {
            "meta_train_test_accuracy": summarize(self("train", n_tasks))[0],
            "meta_test_test_accuracy": summarize(self("test", n_tasks))[0],
        }


def _meta_test_metrics(
    args: argparse.Namespace, accuracies: _FixedTaskAccuracies, untrained: Tuple[float, float], solver: Any
) -> Dict:
    """The paper's numbers: mean query accuracy and its 95% interval on meta-test and on meta-train classes, and
    before training."""
    test_acc, test_ci = summarize(accuracies("test", args.test_tasks))
    train_acc, train_ci = summarize(accuracies("train", args.test_tasks))
    metrics = {
        "test_accuracy": test_acc,
        "test_accuracy_ci95": test_ci,
        "meta_train_test_accuracy": train_acc,
        "meta_train_test_accuracy_ci95": train_ci,
        "untrained_test_accuracy": untrained[0],
        "untrained_test_accuracy_ci95": untrained[1],
        "test_tasks": args.test_tasks,
        "meta_iterations": int(solver.iterations.numpy()),
    }
    return metrics


def _plot_curves(args: argparse.Namespace, data_name: str, history: Any, start: Sequence[float]) -> None:
    """accuracy_vs_time.png: query accuracy on meta-train and meta-test classes against training seconds."""
    # training seconds: fit's clock (continued across resumes) minus the evaluations' share
    points = [(0.0, *start)] + [
        (h["seconds"] - h["eval_seconds"], h["meta_train_test_accuracy"], h["meta_test_test_accuracy"])
        for h in history
        if "eval_seconds" in h
    ]
    t, tr, te = (list(c) for c in zip(*points))
    plots.plot_curves(
        experiment.output_path(args, "accuracy_vs_time.png"),
        {"meta-train-test": (t, tr), "meta-test-test": (t, te)},
        xlabel="wall-clock seconds (training only)",
        ylabel="query accuracy",
        title=f"{data_name} {args.n_way}-way {args.k_shot}-shot, {args.method}",
    )

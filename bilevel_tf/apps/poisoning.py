"""Training-data poisoning (paper section 3.4, supp. D.2 / E.4): the MNIST data-augmentation attacks and
the clean-label dog-fish attack. The runners in ``data_poisoning/`` and ``clean_label/`` stay short; their
shared logic lives here.

Data-augmentation attacks (after Munoz-Gonzalez et al. 2017). The attacker adds ``num_poison`` points with
fixed labels to the training set; the upper variables are their pixels, kept in [0, 1]; the lower level is
L2-regularized multinomial logistic regression trained on clean train + poison::

    g(u, W) = weight_decay ||W||^2 + mean CE(concat(u, x_train) W, concat(y_poison, y_train))
    f(u, W) = -CE(x_val W, y_val)            untargeted: maximize the validation loss
    f(u, W) = +CE(x_val8 W, 3)               targeted: validation 8s relabeled 3

The attack is judged by retraining a fresh classifier on clean train + poison (same budget as the clean
model) and comparing with the label-flipping baseline (the unoptimized start points with their labels).

Clean-label attack (Shafahi et al. 2018 setting; the paper's constrained formulation). A softmax layer on
frozen InceptionV3 features r(.) is the lower level; the upper variable is one poison image u, added to
the training set with the label of the base image b it starts from::

    f(u, W) = CE(softmax(W r(t)), wrong label of t) + ||r(u) - r(t)||^2      s.t. ||u - b||_2 <= eps, u in [-1, 1]

and the attack searches the smallest eps in 1..16 that makes the retrained layer misclassify the target t.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf import datasets, experiment, models, precision

METHODS = ("penalty", "approxgrad", "rmd")
DATASETS = ("mnist", "digits")
Split = Tuple[np.ndarray, np.ndarray]


# ================================================================================================ data
@dataclass
class PoisonData:
    """One data-augmentation attack setting: flat images in [0, 1], integer labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    poison_x0: np.ndarray            # the poison's start images
    poison_y: np.ndarray             # the poison's fixed (wrong) labels
    eval_sets: Dict[str, Split]      # metric name -> (x, y) scored by accuracy after retraining
    image_shape: Tuple[int, int]
    targeted: bool
    num_classes: int = 10

    def sizes(self) -> Dict[str, int]:
        return dict(train=len(self.x_train), val=len(self.x_val), poison=len(self.poison_x0),
                    **{name: len(x) for name, (x, _) in self.eval_sets.items()})


def load_flat_images(dataset: str, data_dir: Optional[str]) -> Tuple[Split, Optional[Split]]:
    """``(train split, test split or None)`` as float32 (N, pixels) in [0, 1] and int64 labels."""
    if dataset == "mnist":
        (x, y), (xt, yt) = datasets.load_mnist(data_dir)
        return (_flat(x / 255.0), y), (_flat(xt / 255.0), yt)
    if dataset == "digits":
        x, y = datasets.load_digits()
        return (_flat(x), y), None
    raise ValueError(f"unknown dataset {dataset!r}; choose one of {list(DATASETS)}")


def _flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).reshape(len(x), -1)


def _image_shape(x: np.ndarray) -> Tuple[int, int]:
    side = int(round(np.sqrt(x.shape[1])))
    return side, side


def wrong_labels(y: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random different class for every label."""
    return (y + rng.integers(1, num_classes, size=len(y))) % num_classes


def untargeted_data(dataset: str, data_dir: Optional[str], n_train: int, n_val: int, n_test: int,
                    num_poison: int, seed: int) -> PoisonData:
    """The original's split: shuffle, then consecutive train / validation / test blocks of the training split
    (MNIST) or of all 1797 digits; the poison starts as the first training images with random wrong labels."""
    (x, y), _ = load_flat_images(dataset, data_dir)
    if n_train + n_val + n_test > len(x):
        raise experiment.UsageError(f"{dataset} has {len(x)} images, fewer than {n_train}+{n_val}+{n_test} "
                                    "requested by --train-points/--val-points/--test-points")
    if not 0 < num_poison <= n_train:
        raise experiment.UsageError(f"--num-poison must be in 1..{n_train} (it starts from training images), "
                                    f"got {num_poison}")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    x, y = x[perm], y[perm]
    blocks = np.cumsum([n_train, n_val, n_test])
    (x_tr, x_val, x_te), (y_tr, y_val, y_te) = np.split(x, blocks)[:3], np.split(y, blocks)[:3]
    return PoisonData(x_tr, y_tr, x_val, y_val, x_tr[:num_poison].copy(), wrong_labels(y_tr[:num_poison], 10, rng),
                      {"test_accuracy": (x_te, y_te)}, _image_shape(x), targeted=False)


def balanced_subset(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator,
                    num_classes: int = 10) -> Split:
    """``n // num_classes`` random examples of every class (fewer where a class has fewer), shuffled."""
    idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:n // num_classes] for c in range(num_classes)])
    idx = rng.permutation(idx)
    return x[idx], y[idx]


def targeted_data(dataset: str, data_dir: Optional[str], n_train: int, n_val: int, n_test: int,
                  num_poison: int, source: int, target: int, seed: int) -> PoisonData:
    """The original's targeted split: balanced train from the first 2*n_train pool images, balanced
    validation from the rest and balanced test from the test split, both restricted to ``source`` images
    relabeled ``target``; the poison starts from training ``target`` and ``source`` images with the two
    labels swapped. Digits have no test split: the last third of the shuffled images serves as one."""
    (x, y), test = load_flat_images(dataset, data_dir)
    if source == target or not (0 <= source < 10 and 0 <= target < 10):
        raise experiment.UsageError(f"--source-class and --target-class must be two different classes in 0..9, "
                                    f"got {source} and {target}")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    x, y = x[perm], y[perm]
    if test is None:
        cut = 2 * len(x) // 3
        test, (x, y) = (x[cut:], y[cut:]), (x[:cut], y[:cut])
    x_tr, y_tr = balanced_subset(x[:2 * n_train], y[:2 * n_train], n_train, rng)
    x_val, y_val = balanced_subset(x[2 * n_train:], y[2 * n_train:], n_val, rng)
    x_te, y_te = balanced_subset(*test, n_test, rng)
    n_t, n_s = num_poison // 2, num_poison - num_poison // 2
    idx_t, idx_s = np.flatnonzero(y_tr == target)[:n_t], np.flatnonzero(y_tr == source)[:n_s]
    if len(idx_t) < n_t or len(idx_s) < n_s or num_poison < 1:
        raise experiment.UsageError(f"--num-poison {num_poison} needs {n_t} {target}s and {n_s} {source}s in the "
                                    f"training set, which has {len(idx_t)} and {len(idx_s)}")
    order = rng.permutation(num_poison)
    poison_x0 = np.concatenate([x_tr[idx_t], x_tr[idx_s]])[order]
    poison_y = np.concatenate([np.full(n_t, source), np.full(n_s, target)])[order].astype(np.int64)
    val_src, test_src = y_val == source, y_te == source
    return PoisonData(x_tr, y_tr, x_val[val_src], np.full(val_src.sum(), target, np.int64), poison_x0, poison_y,
                      {"test_accuracy": (x_te, y_te),
                       "attack_success_rate": (x_te[test_src], np.full(test_src.sum(), target, np.int64))},
                      _image_shape(x), targeted=True)


# ====================================================================================== classifiers
def cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(precision.cross_entropy(logits, labels))


def regularized_loss(model: keras.Model, x: tf.Tensor, y: tf.Tensor, weight_decay: float) -> tf.Tensor:
    """weight_decay * ||weights||^2 + mean CE: the original's 0.5 * 0.01 * tf.nn.l2_loss(W) + CE for 0.0025."""
    loss = cross_entropy(model(x, training=False), y)
    if weight_decay:
        loss += weight_decay * tf.add_n([tf.reduce_sum(tf.square(v)) for v in model.trainable_variables])
    return loss


def softmax_layer(feature_dim: int = 2048, num_classes: int = 2) -> keras.Model:
    """The clean-label lower level: one dense layer on the features, W ~ N(0, 0.01), b = 0 (original)."""
    inputs = keras.Input((feature_dim,))
    logits = keras.layers.Dense(num_classes, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                                bias_initializer="zeros", name="logits")(inputs)
    return keras.Model(inputs, logits, name="softmax_layer")


class ClassifierTrainer:
    """Full-batch training of a classifier from ONE fixed fresh initialisation, all steps in one compiled
    loop (the original's ``train_simple`` after ``global_variables_initializer``). Pre-training, every
    retraining on clean + poison and the baselines therefore start from the same weights."""

    def __init__(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, weight_decay: float = 0.0,
                 jit_compile: bool = False):
        self.model, self.optimizer, self.weight_decay = model, optimizer, float(weight_decay)
        self.variables = list(model.trainable_variables)
        optimizer.build(self.variables)
        self._fresh = self.snapshot()
        self._optimizer_start = [(v, tf.identity(v)) for v in optimizer.variables]
        self._loop = tf.function(self._train, jit_compile=jit_compile, reduce_retracing=True)
        self._predict = tf.function(lambda x: tf.argmax(model(x, training=False), axis=-1), reduce_retracing=True)

    def _train(self, x, y, steps):
        loss = tf.constant(0.0)
        for _ in tf.range(steps):
            with tf.GradientTape() as tape:
                loss = regularized_loss(self.model, x, y, self.weight_decay)
            self.optimizer.apply_gradients(zip(tape.gradient(loss, self.variables), self.variables))
        return loss

    def snapshot(self) -> List[tf.Tensor]:
        return [tf.identity(v) for v in self.variables]

    def load(self, values: Sequence[tf.Tensor]) -> None:
        for var, value in zip(self.variables, values):
            var.assign(value)

    def fit(self, x: np.ndarray, y: np.ndarray, steps: int) -> float:
        """Restart from the fresh weights and a fresh optimizer, run ``steps`` full-batch steps; final loss."""
        self.load(self._fresh)
        for var, value in self._optimizer_start:
            var.assign(value)
        loss = float(self._loop(tf.constant(x, tf.float32), tf.constant(y, tf.int64), tf.constant(steps)))
        if not np.isfinite(loss):
            raise bl.NonFiniteError(f"training the classifier diverged (loss {loss})")
        return loss

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._predict(tf.constant(x, tf.float32)).numpy()

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(x) == y)) if len(x) else float("nan")


# ================================================================================ bilevel solvers
def make_attack_solver(method: str, problem: bl.BilevelProblem, *, lr_u: float, lr_v: float,
                       lr_p: Optional[float] = None, inner_steps: int, rho: float = 1.0, lam: float = 1.0,
                       eps: float = 1.0, nu: float = 0.0, sigma: float = 1e-3,
                       jit_compile: bool = False) -> bl.BilevelSolver:
    """The original's optimizers: Adam at both levels (Penalty, ApproxGrad with an Adam linear solver);
    RMD unrolls plain SGD at the lower level and takes Adam steps on the poison."""
    adam = keras.optimizers.Adam
    if method == "penalty":
        return bl.Penalty(problem, adam(lr_u), adam(lr_v), inner_steps=inner_steps, schedule="original", rho=rho,
                          lam=lam, eps=eps, nu=nu, jit_compile=jit_compile)
    if method == "approxgrad":
        return bl.ApproxGrad(problem, adam(lr_u), adam(lr_v), inner_steps=inner_steps,
                             linear_optimizer=adam(lr_p or lr_v), sigma=sigma, jit_compile=jit_compile)
    if method == "rmd":
        return bl.RMD(problem, adam(lr_u), keras.optimizers.SGD(lr_v), inner_steps=inner_steps,
                      jit_compile=jit_compile)
    raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")


def halve_learning_rates(solver: bl.BilevelSolver, every: int) -> bl.LambdaCallback:
    """The original ApproxGrad runners halve lr_u and lr_v every ``every`` upper iterations."""
    def on_step_end(step: int, logs) -> None:
        if every and step % every == 0:
            for opt in (solver.upper_optimizer, solver.lower_optimizer):
                opt.learning_rate.assign(opt.learning_rate * 0.5)
    return bl.LambdaCallback(on_step_end=on_step_end)


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


def add_solver_flags(p, d) -> None:
    """--rho --lam --eps --nu (Penalty) and --sigma (ApproxGrad), defaults from a runner's constants."""
    p.add_argument("--rho", type=float, default=d.rho, help="Penalty: initial penalty weight (paper gamma_0)")
    p.add_argument("--lam", type=float, default=d.lam,
                   help="Penalty: initial weight of g in the lower objective (lambda_0)")
    p.add_argument("--eps", type=float, default=d.eps, help="Penalty: initial tolerance (epsilon_0)")
    p.add_argument("--nu", type=float, default=d.nu, help="Penalty: initial multiplier (nu_0)")
    p.add_argument("--sigma", type=float, default=d.sigma, help="ApproxGrad: Hessian regularizer")


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
    p.add_argument("--pretrain-lr", type=float, default=d.pretrain_lr, help="Adam learning rate of (re)training")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help="coefficient of ||W||^2 in the lower loss (original: 0.5*0.01*l2_loss = 0.0025; "
                        "the paper says 0.05)")
    p.add_argument("--lr-u", type=float, default=None, help=f"upper (poison) learning rate; default per method ({lrs})")
    p.add_argument("--lr-v", type=float, default=None, help="lower (classifier) learning rate (default per method)")
    p.add_argument("--lr-p", type=float, default=None, help="ApproxGrad linear-system learning rate (per method)")
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
    solver = make_attack_solver(args.method, problem, lr_u=args.lr_u, lr_v=args.lr_v, lr_p=args.lr_p,
                                inner_steps=args.inner_steps, rho=args.rho, lam=args.lam, eps=args.eps,
                                nu=args.nu, sigma=args.sigma, jit_compile=args.jit)
    callbacks = [halve_learning_rates(solver, args.halve_every)] if args.method == "approxgrad" else []
    history = bl.fit(solver, None, None, steps=args.epochs, steps_per_execution=args.steps_per_execution,
                     checkpoint_dir=experiment.checkpoint_dir(args, "bilevel"),
                     checkpoint_every=args.checkpoint_every, callbacks=callbacks, verbose=args.verbose,
                     log_every=args.log_every)
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
                             dataset=args.dataset, summary_keys=keys)
    return metrics


def plot_poison_rows(path: str, learned: np.ndarray, start: np.ndarray, labels: np.ndarray,
                     image_shape: Tuple[int, int], count: int = 10) -> str:
    """Paper figure 6: learned poison images above the images they started from."""
    n = min(count, len(learned))
    return experiment.plot_image_rows(
        path, {"learned poison": learned[:n].reshape(n, *image_shape), "start": start[:n].reshape(n, *image_shape)},
        title="poison labels: " + " ".join(str(int(c)) for c in labels[:n]))


# ============================================================================ clean-label: features
FEATURES_FILE = "dogfish_inception_features.h5"
SMOKE_IMAGES = 8   # --smoke: both clean-label scripts use the first 8 training and test images


def smoke_subset(args, *arrays: np.ndarray) -> List[np.ndarray]:
    return [a[:SMOKE_IMAGES] for a in arrays] if args.smoke else list(arrays)


def add_network_flags(p) -> None:
    p.add_argument("--weights", default=None,
                   help="InceptionV3 weights file (.h5); default: the ImageNet notop file in the Keras cache "
                        "(~/.keras/models), never downloaded")
    p.add_argument("--random-weights", action="store_true",
                   help="random InceptionV3 weights (tests and smoke runs only; features are meaningless)")


def feature_network(args, input_shape: Sequence[int]) -> "FeatureMap":
    """The frozen InceptionV3 + global average pooling. With --random-weights the weights depend on the seed
    only, so two scripts run with the same --seed build the same network."""
    weights = None if args.random_weights else (args.weights or "imagenet")
    return FeatureMap(models.inception_v3_features(weights=weights, input_shape=tuple(input_shape)))


class FeatureMap:
    """The frozen feature extractor r(.) as two compiled functions, each traced ONCE for any batch size:
    ``features(x)`` and ``input_gradient(x, dy, target, weight)`` = grad_x [<r(x), dy> + weight ||r(x) -
    target||^2] (a vector-Jacobian product; with weight > 0 the feature-collision gradient). InceptionV3 is
    large (tracing and optimizing its backward pass costs seconds), so extraction, the consistency check, the
    bilevel attack, the baseline and the PGD reference all share these two graphs.

    The functions are not inlined into their callers and take the network's weights as inputs
    (``stateless_call``), so a call whose result is unused is a stateless op that graph optimization drops:
    the solver's tapes emit several such dead gradient calls per upper iteration."""

    def __init__(self, network: keras.Model):
        if network.trainable_variables:
            raise ValueError("FeatureMap expects a frozen network (trainable=False)")
        self.network = network
        self.weights = list(network.non_trainable_variables)
        images = tf.TensorSpec((None, *network.input_shape[1:]), tf.float32)
        feats = tf.TensorSpec((None, network.output_shape[-1]), tf.float32)
        weights = [tf.TensorSpec(v.shape, v.dtype) for v in self.weights]
        # autograph=False: no Python control flow here, and converting Keras' layer code costs seconds.
        once = dict(experimental_attributes={"_noinline": True}, autograph=False)
        self._features = tf.function(self._forward, input_signature=[images, weights], **once)
        self._input_gradient = tf.function(self._gradient, input_signature=[
            images, feats, feats, tf.TensorSpec((), tf.float32), weights], **once)

    def _values(self) -> List[tf.Tensor]:
        return [tf.convert_to_tensor(v) for v in self.weights]

    def _forward(self, x, weights):
        return self.network.stateless_call([], weights, [x], training=False)[0]

    def _gradient(self, x, dy, target, weight, weights):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = self._forward(x, weights)
            loss = tf.reduce_sum(y * dy) + weight * tf.reduce_sum(tf.square(y - target))
        return tape.gradient(loss, x)

    def features(self, images) -> tf.Tensor:
        return self._features(images, self._values())

    def input_gradient(self, images, dy, target, weight) -> tf.Tensor:
        return self._input_gradient(images, dy, target, weight, self._values())

    def extract(self, images: np.ndarray, batch_size: int = 100) -> np.ndarray:
        return np.concatenate([self.features(tf.constant(images[i:i + batch_size], tf.float32)).numpy()
                               for i in range(0, len(images), batch_size)]).astype(np.float32)

    def _vjp(self, x, dy):
        # Nothing differentiates this gradient again; stop_gradient keeps enclosing tapes from recording the
        # call, which would make them build the network's second-order graph.
        x, dy = tf.stop_gradient(x), tf.stop_gradient(dy)
        return self.input_gradient(x, dy, tf.zeros_like(dy), tf.constant(0.0))

    def cached(self, images: tf.Tensor, value: tf.Tensor) -> tf.Tensor:
        """``r(images)`` as an op that returns ``value`` (r(images) computed beforehand, e.g. once per upper
        iteration by the problem's ``lower_init``) and runs the VJP only when a gradient with respect to the
        images is requested. The T lower steps of an upper iteration then never run the network."""
        @tf.custom_gradient
        def op(x, v):
            return tf.identity(v), lambda dy: (self._vjp(x, dy), None)
        return op(images, value)

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        """Differentiable r(images) built from the two compiled functions (for callers that trace their own
        gradients, e.g. cleverhans' PGD; costs one extra forward pass per gradient)."""
        @tf.custom_gradient
        def op(x):
            def grad(dy, variables=None):  # the network is frozen: no gradients for its weights
                return self._vjp(x, dy), [None] * len(variables or [])
            return self.features(x), grad
        return op(images)


def write_smoke_dogfish(folder: str, size: int = 75, n_train: int = 8, n_test: int = 4, seed: int = 0) -> str:
    """A tiny dog-fish npz in the real format (labels one-hot, images in [-1, 1]); the classes differ in
    brightness so that even random features separate them."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = np.arange(n) % 2
        x = np.clip(rng.normal(0.0, 0.3, (n, size, size, 3)) + np.where(y == 1, 0.4, -0.4)[:, None, None, None],
                    -1, 1)
        return x.astype(np.float32), np.eye(2, dtype=np.float32)[y]

    (x_tr, y_tr), (x_te, y_te) = split(n_train), split(n_test)
    os.makedirs(folder, exist_ok=True)
    np.savez(os.path.join(folder, datasets.dogfish.DOGFISH_FILE), X_train=x_tr, Y_train=y_tr, X_test=x_te, Y_test=y_te)
    return folder


def check_features_match(feature_map: FeatureMap, images: np.ndarray, features: np.ndarray, path: str) -> None:
    """The attack differentiates through the network: stored features must come from the same weights."""
    fresh = feature_map.extract(images)
    scale = float(np.abs(features).max()) + 1e-12
    err = float(np.abs(fresh - features).max())
    if err > 1e-2 * scale:
        raise datasets.DataFormatError(f"features differ from this network's by {err:.3g} (scale {scale:.3g})",
                                       "features extracted with the same --weights / --random-weights and --seed",
                                       path)


# ================================================================================ clean-label: attack
def poison_projection(center, radius, clip: Tuple[float, float] = (-1.0, 1.0)) -> Callable:
    """u -> the nearest point of the L2 ball of radius ``radius`` around ``center`` (per image, cleverhans'
    ``clip_eta``), then the valid pixel range; ``center`` and ``radius`` may be variables (read per call).
    Clipping after the ball keeps the point in the ball because ``center`` lies inside the pixel range."""
    from cleverhans.tf2.utils import clip_eta

    def project(values):
        return [tf.clip_by_value(center + clip_eta(v - center, 2, radius), clip[0], clip[1]) for v in values]
    return project


class CleanLabelAttack:
    """The paper's constrained bilevel clean-label attack on one (target, base) pair at a time. Targets,
    bases and radii live in variables, so one compiled solver serves every pair and radius."""

    def __init__(self, feature_map: FeatureMap, trainer: ClassifierTrainer, train_features: np.ndarray,
                 train_labels: np.ndarray, image_shape: Sequence[int], *, method: str, lr_u: float, lr_v: float,
                 lr_p: Optional[float], inner_steps: int, rho: float, lam: float, eps: float, nu: float,
                 sigma: float, beta: float, jit_compile: bool = False):
        self.trainer = trainer
        dim = train_features.shape[1]
        shape = (1, *image_shape)
        self.u = tf.Variable(tf.zeros(shape), name="poison")
        self.base = tf.Variable(tf.zeros(shape), trainable=False, name="base")
        self.radius = tf.Variable(1.0, trainable=False, name="radius")
        self.target_feature = tf.Variable(tf.zeros((1, dim)), trainable=False, name="target_feature")
        self.wrong_label = tf.Variable([0], dtype=tf.int64, trainable=False, name="wrong_label")
        self.poison_label = tf.Variable([0], dtype=tf.int64, trainable=False, name="poison_label")
        self._u_features = tf.Variable(tf.zeros((1, dim)), trainable=False, name="poison_features")
        self.train_features = tf.constant(train_features, tf.float32)
        self.train_labels = tf.constant(train_labels, tf.int64)
        self.num_classes = int(trainer.model.output_shape[-1])
        classifier = trainer.model

        def refresh_features():
            self._u_features.assign(feature_map.features(self.u))

        def poison_features():
            return feature_map.cached(tf.convert_to_tensor(self.u), tf.convert_to_tensor(self._u_features))

        def lower_loss(_):
            logits = classifier(tf.concat([poison_features(), self.train_features], axis=0), training=False)
            return cross_entropy(logits, tf.concat([self.poison_label, self.train_labels], axis=0))

        def upper_loss(_):
            collision = tf.reduce_sum(tf.square(poison_features() - self.target_feature))
            loss = cross_entropy(classifier(self.target_feature, training=False), self.wrong_label) + collision
            if beta:  # the original's soft proximity term (the paper uses the eps-ball instead)
                loss += beta * tf.reduce_sum(tf.square(self.u - self.base))
            return loss

        problem = bl.BilevelProblem(upper_loss, lower_loss, [self.u], trainer.variables,
                                    upper_constraint=poison_projection(self.base, self.radius),
                                    lower_init=refresh_features)
        self.solver = make_attack_solver(method, problem, lr_u=lr_u, lr_v=lr_v, lr_p=lr_p, inner_steps=inner_steps,
                                         rho=rho, lam=lam, eps=eps, nu=nu, sigma=sigma, jit_compile=jit_compile)
        self.seconds: List[float] = []   # per upper iteration, one entry per craft() call

    def set_pair(self, base_image: np.ndarray, base_label: int, target_feature: np.ndarray, target_label: int) -> None:
        self.base.assign(base_image[None])
        self.poison_label.assign([base_label])
        self.target_feature.assign(target_feature[None])
        self.wrong_label.assign([(target_label + 1) % self.num_classes])

    def craft(self, radius: float, steps: int, start_weights: Sequence[tf.Tensor]) -> np.ndarray:
        """Run ``steps`` upper iterations from the base image and the given classifier weights."""
        self.u.assign(self.base)
        self.radius.assign(radius)
        self.trainer.load(start_weights)
        self.solver.reset_state()
        t0 = time.perf_counter()
        for _ in range(steps):  # step(), not run(): run() would trace the (InceptionV3-sized) step twice
            logs = self.solver.step()
        self.seconds.append((time.perf_counter() - t0) / steps)
        bad = [k for k, v in logs.items() if not np.isfinite(float(v))]
        if bad:
            raise bl.NonFiniteError(f"clean-label attack diverged: {bad} not finite")
        return self.u.numpy()[0]


class FeatureCollision:
    """Shafahi et al. (2018) Algorithm 1 with the paper's L2 projection: forward step on ||r(x) - r(t)||^2,
    backward (proximal) step for beta ||x - b||^2, projection onto the eps-ball around b and the pixel range."""

    def __init__(self, feature_map: FeatureMap, beta: float, lr: float):
        self.feature_map, self.beta, self.lr = feature_map, float(beta), float(lr)
        self._run = tf.function(self._iterate, reduce_retracing=True)

    def _iterate(self, base, target_feature, radius, steps):
        project = poison_projection(base, radius)
        no_dy = tf.zeros_like(target_feature)
        x = base
        for _ in tf.range(steps):
            x = x - self.lr * self.feature_map.input_gradient(x, no_dy, target_feature, tf.constant(1.0))
            x = (x + self.lr * self.beta * base) / (1.0 + self.lr * self.beta)
            x = project([x])[0]
        return x

    def craft(self, base_image: np.ndarray, target_feature: np.ndarray, radius: float, steps: int) -> np.ndarray:
        return self._run(tf.constant(base_image[None]), tf.constant(target_feature[None]),
                         tf.constant(radius, tf.float32), tf.constant(steps)).numpy()[0]


def smallest_flipping_radius(craft: Callable[[float], np.ndarray], flips: Callable[[np.ndarray], bool],
                             base_image: np.ndarray, radii: Sequence[float]) -> Dict[str, Any]:
    """Try the radii in increasing order; stop at the first poison that flips the target. Returns the
    radius found (None if none), the L2 distortion of every poison tried and the last poison."""
    distortions: Dict[str, float] = {}
    poison = base_image
    for radius in sorted(radii):
        poison = craft(radius)
        distortions[str(radius)] = float(np.linalg.norm(poison - base_image))
        if flips(poison):
            return dict(radius=radius, distortions=distortions, poison=poison)
    return dict(radius=None, distortions=distortions, poison=poison)


def success_curve(records: Sequence[Mapping[str, Any]], radii: Sequence[float]) -> Dict[str, List[float]]:
    """Paper figure 3: for each budget R, the fraction of targets flipped with a radius <= R and the average
    L2 distortion of the poisons used (the first flipping one, or the one at the largest radius <= R)."""
    radii = sorted(radii)
    rates, distortions = [], []
    for budget in radii:
        flipped, used = [], []
        for rec in records:
            tried = sorted((float(r), d) for r, d in rec["distortions"].items() if float(r) <= budget)
            flipped.append(rec["radius"] is not None and rec["radius"] <= budget)
            used.append(tried[-1][1] if tried else 0.0)
        rates.append(float(np.mean(flipped)) if records else float("nan"))
        distortions.append(float(np.mean(used)) if records else float("nan"))
    return dict(radius=[float(r) for r in radii], success_rate=rates, average_distortion=distortions)


def pgd_evasion_radius(model_fn: Callable, image: np.ndarray, label: int, radii: Sequence[float],
                       steps: int) -> Optional[float]:
    """Test-time reference: the smallest radius at which cleverhans' L2 PGD on the target itself (through the
    clean classifier) changes its prediction. ``model_fn`` must be the same object on every call (cleverhans
    compiles its gradient per model function)."""
    from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

    x, y = tf.constant(image[None], tf.float32), tf.constant([label], tf.int64)
    for radius in sorted(radii):
        adv = projected_gradient_descent(model_fn, x, float(radius), min(float(radius), 2.5 * radius / steps), steps,
                                         2, clip_min=-1.0, clip_max=1.0, y=y, sanity_checks=False)
        if int(tf.argmax(model_fn(adv), axis=-1)[0]) != label:
            return float(radius)
    return None


def closest_other_class(features: np.ndarray, labels: np.ndarray, target_feature: np.ndarray,
                        target_label: int) -> int:
    """The base: the training point nearest to the target in feature space among the other classes."""
    dist = np.linalg.norm(features - target_feature[None], axis=1)
    dist[labels == target_label] = np.inf
    return int(np.argmin(dist))


def read_jsonl(path: str) -> List[Dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def append_jsonl(path: str, record: Mapping[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """[-1, 1] Inception pixels -> [0, 1] for figures (the original saved (x + 1) / 2)."""
    return np.clip((np.asarray(images) + 1.0) / 2.0, 0.0, 1.0)


def clean_label_paths(args, default_data_dir: str) -> Tuple[Path, Path]:
    """(folder of the dog-fish npz, feature file); --smoke without --data-dir writes tiny images first."""
    data_dir = Path(args.data_dir) if args.data_dir else Path(default_data_dir)
    if args.smoke and not args.data_dir:
        data_dir = Path(write_smoke_dogfish(os.path.join(args.out, "smoke_data"), seed=args.seed))
    features = Path(args.features) if getattr(args, "features", None) else data_dir / FEATURES_FILE
    return data_dir, features


@dataclass
class CleanLabelDefaults:
    """The constants block of the clean-label runner (paper supp. E.4 / the original)."""

    radii: Sequence[float]
    learning_rates: Mapping[str, float]   # lr_u, lr_v (, lr_p)
    rho: float
    lam: float
    eps: float
    nu: float
    sigma: float
    beta: float
    full_epochs: int
    retrain_lr: float
    baseline_steps: int
    baseline_beta: float
    baseline_lr: float
    pgd_steps: int
    num_targets: int
    smoke: Mapping[str, Any] = field(default_factory=lambda: dict(
        epochs=3, inner_steps=2, radii=(1.0, 2.0), num_targets=2, baseline_steps=3, full_epochs=50, pgd_steps=2))


def _floats(text: str) -> Tuple[float, ...]:
    return tuple(float(t) for t in str(text).split(",") if t.strip())


def add_clean_label_flags(p, d: CleanLabelDefaults) -> None:
    add_network_flags(p)
    p.add_argument("--features", default=None,
                   help=f"HDF5 features from extract_inception_features.py (default: <data-dir>/{FEATURES_FILE})")
    p.add_argument("--radii", type=_floats, default=tuple(d.radii),
                   help="comma-separated L2 radii eps searched in increasing order for each target")
    p.add_argument("--num-targets", type=experiment.int_range(0), default=d.num_targets,
                   help="attack the first N correctly classified test images (0: all of them)")
    for name, value in d.learning_rates.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=value,
                       help={"lr_u": "Adam learning rate of the poison image", "lr_v": "lower-level learning rate",
                             "lr_p": "ApproxGrad linear-system learning rate"}[name])
    add_solver_flags(p, d)
    p.add_argument("--beta", type=float, default=d.beta,
                   help="weight of ||u - base||^2 in the upper loss (paper 0: the eps-ball instead; original 0.01)")
    p.add_argument("--full-epochs", type=experiment.int_range(0), default=d.full_epochs,
                   help="full-batch RMSProp steps training the softmax layer (clean, and after each poisoning)")
    p.add_argument("--retrain-lr", type=float, default=d.retrain_lr, help="RMSProp learning rate of that training")
    p.add_argument("--baseline-steps", type=experiment.int_range(0), default=d.baseline_steps,
                   help="iterations of the Shafahi et al. feature-collision baseline (0: skip it)")
    p.add_argument("--baseline-beta", type=float, default=d.baseline_beta, help="baseline proximity weight beta")
    p.add_argument("--baseline-lr", type=float, default=d.baseline_lr, help="baseline step size lambda")
    p.add_argument("--pgd-steps", type=experiment.int_range(0), default=d.pgd_steps,
                   help="cleverhans L2 PGD steps of the test-time evasion reference on each target (0: skip it)")
    p.add_argument("--figure-targets", type=experiment.int_range(0), default=10, help="targets shown in the image rows")


def resolve_clean_label_args(args, d: CleanLabelDefaults) -> None:
    """Apply the --smoke sizes (in place) and check the radii."""
    if args.smoke:
        for name, value in d.smoke.items():
            current = getattr(args, name)
            if name == "radii":
                value = tuple(r for r in current if r <= max(value)) or tuple(value)
            elif not (name == "num_targets" and not current):  # 0 = all targets: take the smoke count
                value = min(current, value)
            setattr(args, name, value)
    if not args.radii or min(args.radii) <= 0:
        raise ValueError(f"--radii must list positive numbers, got {args.radii}")


def run_clean_label_attack(args, default_data_dir: str) -> Dict[str, Any]:
    """For each correctly classified test target: the base (closest training feature of the other class),
    the smallest radius at which the bilevel poison flips the retrained softmax layer, the same for the
    feature-collision baseline and for a test-time PGD reference. Per-target records go to targets.jsonl as
    they finish, so a rerun continues with the next target."""
    data_dir, features_path = clean_label_paths(args, default_data_dir)
    (x_tr, y_tr), (x_te, y_te) = datasets.load_dogfish(data_dir)
    x_tr, y_tr, x_te, y_te = smoke_subset(args, x_tr, y_tr, x_te, y_te)
    network = feature_network(args, x_tr.shape[1:])  # first: random weights depend on the seed only
    if args.smoke and not features_path.is_file():
        datasets.save_features_h5(features_path, X_train=network.extract(x_tr), Y_train=y_tr,
                                  X_test=network.extract(x_te), Y_test=y_te)
    feats = datasets.load_features_h5(features_path, required=("X_train", "X_test"))
    f_tr, f_te = smoke_subset(args, *(np.asarray(feats[k], np.float32) for k in ("X_train", "X_test")))
    if len(f_tr) != len(x_tr) or len(f_te) != len(x_te):
        raise datasets.DataFormatError(f"{len(f_tr)}/{len(f_te)} feature rows for {len(x_tr)}/{len(x_te)} images",
                                       "one feature row per dog-fish image", features_path)
    check_features_match(network, x_tr[:2], f_tr[:2], str(features_path))
    num_classes = int(max(y_tr.max(), y_te.max())) + 1
    trainer = ClassifierTrainer(softmax_layer(f_tr.shape[1], num_classes), keras.optimizers.RMSprop(args.retrain_lr),
                                0.0, args.jit)
    trainer.fit(f_tr, y_tr, args.full_epochs)
    clean_weights = trainer.snapshot()
    clean_accuracy = trainer.accuracy(f_te, y_te)
    correct = np.flatnonzero(trainer.predict(f_te) == y_te)
    targets = [int(t) for t in (correct[:args.num_targets] if args.num_targets else correct)]

    attack = CleanLabelAttack(network, trainer, f_tr, y_tr, x_tr.shape[1:], method=args.method, lr_u=args.lr_u,
                              lr_v=args.lr_v, lr_p=getattr(args, "lr_p", None), inner_steps=args.inner_steps,
                              rho=args.rho, lam=args.lam, eps=args.eps, nu=args.nu, sigma=args.sigma,
                              beta=args.beta, jit_compile=args.jit)
    baseline = FeatureCollision(network, args.baseline_beta, args.baseline_lr)
    classifier = trainer.model

    def model_fn(x):
        return classifier(network(x), training=False)

    records_path, image_dir = os.path.join(args.out, "targets.jsonl"), os.path.join(args.out, "images")
    if args.fresh and os.path.exists(records_path):
        os.remove(records_path)
    os.makedirs(image_dir, exist_ok=True)
    records = [r for r in read_jsonl(records_path) if r["target"] in set(targets)]
    done = {r["target"] for r in records}
    for t in targets:
        if t in done:
            continue
        b = closest_other_class(f_tr, y_tr, f_te[t], y_te[t])
        attack.set_pair(x_tr[b], int(y_tr[b]), f_te[t], int(y_te[t]))

        def flips(poison: np.ndarray) -> bool:
            feature = network.extract(poison[None])
            trainer.fit(np.concatenate([f_tr, feature]), np.concatenate([y_tr, y_tr[b:b + 1]]), args.full_epochs)
            return bool(trainer.predict(f_te[t:t + 1])[0] != y_te[t])

        bilevel = smallest_flipping_radius(lambda r: attack.craft(r, args.epochs, clean_weights), flips, x_tr[b],
                                           args.radii)
        shafahi = (smallest_flipping_radius(lambda r: baseline.craft(x_tr[b], f_te[t], r, args.baseline_steps),
                                            flips, x_tr[b], args.radii) if args.baseline_steps else None)
        trainer.load(clean_weights)
        record = dict(target=t, base=b, target_label=int(y_te[t]), base_label=int(y_tr[b]),
                      feature_distance=float(np.linalg.norm(f_tr[b] - f_te[t])),
                      bilevel={k: bilevel[k] for k in ("radius", "distortions")},
                      baseline=None if shafahi is None else {k: shafahi[k] for k in ("radius", "distortions")})
        if args.pgd_steps:
            record["pgd_radius"] = pgd_evasion_radius(model_fn, x_te[t], int(y_te[t]), args.radii, args.pgd_steps)
        if len(records) < args.figure_targets or bilevel["radius"] is not None:
            np.savez_compressed(os.path.join(image_dir, f"target_{t}.npz"), target=x_te[t], base=x_tr[b],
                                poison=bilevel["poison"],
                                baseline=x_tr[b] if shafahi is None else shafahi["poison"])
        append_jsonl(records_path, record)
        records.append(record)
        print(f"target {t}: bilevel radius {bilevel['radius']}, baseline radius "
              f"{None if shafahi is None else shafahi['radius']}, PGD radius {record.get('pgd_radius')}", flush=True)

    metrics = clean_label_metrics(records, args.radii, clean_accuracy, len(f_tr))
    plot_clean_label(args.out, records, metrics, image_dir, args.figure_targets, args.method)
    seconds = attack.seconds[1:] or attack.seconds
    experiment.write_results(args, metrics=metrics, history=records,
                             seconds_per_upper_iteration=float(np.median(seconds)) if seconds else None,
                             dataset="smoke" if args.smoke and not args.data_dir else "dogfish",
                             summary_keys=["clean_test_accuracy", "num_targets", "attack_success_rate",
                                           "baseline_attack_success_rate", "pgd_evasion_success_rate"])
    return metrics


def clean_label_metrics(records: Sequence[Mapping[str, Any]], radii: Sequence[float], clean_accuracy: float,
                        num_train: int) -> Dict[str, Any]:
    bilevel = success_curve([r["bilevel"] for r in records], radii)
    metrics: Dict[str, Any] = dict(clean_test_accuracy=clean_accuracy, num_targets=len(records), num_train=num_train,
                                   attack_success_rate=bilevel["success_rate"][-1] if records else float("nan"),
                                   success_curve=bilevel)
    found = [r["bilevel"]["radius"] for r in records if r["bilevel"]["radius"] is not None]
    metrics["mean_success_radius"] = float(np.mean(found)) if found else None
    with_baseline = [r["baseline"] for r in records if r["baseline"] is not None]
    if with_baseline:
        base_curve = success_curve(with_baseline, radii)
        metrics.update(baseline_attack_success_rate=base_curve["success_rate"][-1], baseline_success_curve=base_curve)
    with_pgd = [r["pgd_radius"] for r in records if "pgd_radius" in r]
    if with_pgd:
        rates = [float(np.mean([r is not None and r <= R for r in with_pgd])) for R in sorted(radii)]
        metrics.update(pgd_evasion_success_rate=rates[-1], pgd_success_curve=dict(radius=sorted(radii),
                                                                                    success_rate=rates))
    return metrics


def plot_clean_label(out: str, records: Sequence[Mapping[str, Any]], metrics: Mapping[str, Any], image_dir: str,
                     count: int, method: str) -> None:
    """Paper figure 3 (success rate vs average distortion) and figure 8 (target / base / poison rows)."""
    curves = {f"bilevel ({method})": metrics["success_curve"]}
    if "baseline_success_curve" in metrics:
        curves["Shafahi et al. feature collision"] = metrics["baseline_success_curve"]
    experiment.plot_curves(os.path.join(out, "success_vs_distortion.png"),
                           {k: (c["average_distortion"], c["success_rate"]) for k, c in curves.items()},
                           xlabel="average L2 distortion ||poison - base||", ylabel="attack success rate",
                           title="clean-label attack (paper figure 3)")
    saved = [r for r in records if os.path.exists(os.path.join(image_dir, f"target_{r['target']}.npz"))]
    saved.sort(key=lambda r: r["bilevel"]["radius"] is None)  # successful targets first
    saved = saved[:count]
    if not saved:
        return
    rows: Dict[str, list] = {"target": [], "base": [], "poison": [], "baseline poison": []}
    for r in saved:
        with np.load(os.path.join(image_dir, f"target_{r['target']}.npz")) as f:
            for row, key in zip(rows, ("target", "base", "poison", "baseline")):
                rows[row].append(to_unit_range(f[key]))
    experiment.plot_image_rows(os.path.join(out, "poison_images.png"), {k: np.stack(v) for k, v in rows.items()},
                               title="radius found per column: " + " ".join(str(r["bilevel"]["radius"]) for r in saved))

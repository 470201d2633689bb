"""The clean-label attack: the constrained bilevel poison, the feature-collision baseline, PGD, the driver."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf.runner import experiment, run_folder

from .features import FeatureMap, check_features_match, feature_network
from .clean_label_report import clean_label_metrics, write_clean_label_outputs
from .runs import CleanLabelInputs
from .solver import attack_solver_options
from bilevel_tf.models import softmax_layer

from ..classifier import ClassifierTrainer
from .trainer import cross_entropy


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

    def __init__(
        self,
        feature_map: FeatureMap,
        trainer: ClassifierTrainer,
        train_features: np.ndarray,
        train_labels: np.ndarray,
        image_shape: Sequence[int],
        *,
        method: str,
        lr_u: float,
        lr_v: float,
        lr_p: Optional[float],
        inner_steps: int,
        rho: float,
        lam: float,
        eps: float,
        nu: float,
        sigma: float,
        beta: float,
        jit_compile: bool = False,
    ):
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
        problem = self._problem(feature_map, beta)
        self.solver = bl.make_solver(
            method,
            problem,
            **attack_solver_options(
                method,
                lr_u=lr_u,
                lr_v=lr_v,
                lr_p=lr_p,
                inner_steps=inner_steps,
                rho=rho,
                lam=lam,
                eps=eps,
                nu=nu,
                sigma=sigma,
                jit_compile=jit_compile,
            ),
        )
        self.seconds: List[float] = []  # per upper iteration, one entry per craft() call

    def _problem(self, feature_map: FeatureMap, beta: float) -> bl.BilevelProblem:
        """g: the softmax layer's loss on the training set plus the poison (its features cached per upper
        iteration); f: the target's loss at a wrong label plus the feature collision ||r(u) - r(t)||^2."""
        classifier = self.trainer.model

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

        return bl.BilevelProblem(
            upper_loss,
            lower_loss,
            [self.u],
            self.trainer.variables,
            upper_constraint=poison_projection(self.base, self.radius),
            lower_init=refresh_features,
        )

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
        return self._run(
            tf.constant(base_image[None]),
            tf.constant(target_feature[None]),
            tf.constant(radius, tf.float32),
            tf.constant(steps),
        ).numpy()[0]


def smallest_flipping_radius(
    craft: Callable[[float], np.ndarray],
    flips: Callable[[np.ndarray], bool],
    base_image: np.ndarray,
    radii: Sequence[float],
) -> Dict[str, Any]:
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


def pgd_evasion_radius(
    model_fn: Callable, image: np.ndarray, label: int, radii: Sequence[float], steps: int
) -> Optional[float]:
    """Test-time reference: the smallest radius at which cleverhans' L2 PGD on the target itself (through the
    clean classifier) changes its prediction. ``model_fn`` must be the same object on every call (cleverhans
    compiles its gradient per model function)."""
    from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

    x, y = tf.constant(image[None], tf.float32), tf.constant([label], tf.int64)
    for radius in sorted(radii):
        adv = projected_gradient_descent(
            model_fn,
            x,
            float(radius),
            min(float(radius), 2.5 * radius / steps),
            steps,
            2,
            clip_min=-1.0,
            clip_max=1.0,
            y=y,
            sanity_checks=False,
        )
        if int(tf.argmax(model_fn(adv), axis=-1)[0]) != label:
            return float(radius)
    return None


def closest_other_class(features: np.ndarray, labels: np.ndarray, target_feature: np.ndarray, target_label: int) -> int:
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


def attack_in_folder(
    args, run: run_folder.Run, inputs: "CleanLabelInputs", network: Optional[FeatureMap] = None
) -> Dict[str, Any]:
    """For each correctly classified test target: the base (closest training feature of the other class),
    the smallest radius at which the bilevel poison flips the retrained softmax layer, the same for the
    feature-collision baseline and for a test-time PGD reference, in the open run folder
    (:func:`runs.run_clean_label_attack` loads the data and opens it). Per-target records go to targets.jsonl
    as they finish, so a rerun continues with the next target. ``network``: the feature map the smoke
    features were extracted with (else built here, first: random weights depend on the seed only)."""
    x_tr, y_tr, x_te, y_te, f_tr, f_te = inputs.arrays
    network = network or feature_network(args, x_tr.shape[1:])
    check_features_match(network, x_tr[:2], f_tr[:2], str(inputs.features_path))
    return _attack_all(args, network, *inputs.arrays)


def _attack_all(args, network: FeatureMap, x_tr, y_tr, x_te, y_te, f_tr, f_te) -> Dict[str, Any]:
    num_classes = int(max(y_tr.max(), y_te.max())) + 1
    trainer = ClassifierTrainer(
        softmax_layer(f_tr.shape[1], num_classes), keras.optimizers.RMSprop(args.retrain_lr), 0.0, args.jit
    )
    trainer.fit(f_tr, y_tr, args.full_epochs)
    clean_weights = trainer.snapshot()
    clean_accuracy = trainer.accuracy(f_te, y_te)
    correct = np.flatnonzero(trainer.predict(f_te) == y_te)
    targets = [int(t) for t in (correct[: args.num_targets] if args.num_targets else correct)]
    search = _TargetSearch(args, network, trainer, clean_weights, (x_tr, y_tr, x_te, y_te, f_tr, f_te))

    records_path, image_dir = experiment.output_path(args, "targets.jsonl"), experiment.output_path(args, "images")
    os.makedirs(image_dir, exist_ok=True)
    records = [r for r in read_jsonl(records_path) if r["target"] in set(targets)]
    done = {r["target"] for r in records}
    for t in targets:
        if t in done:
            continue
        record, images = search(t)
        if len(records) < args.figure_targets or record["bilevel"]["radius"] is not None:
            np.savez_compressed(os.path.join(image_dir, f"target_{t}.npz"), **images)
        append_jsonl(records_path, record)
        records.append(record)
        print(
            f"target {t}: bilevel radius {record['bilevel']['radius']}, baseline radius "
            f"{None if record['baseline'] is None else record['baseline']['radius']}, "
            f"PGD radius {record.get('pgd_radius')}",
            flush=True,
        )

    metrics = clean_label_metrics(records, args.radii, clean_accuracy, len(f_tr))
    write_clean_label_outputs(args, records, metrics, image_dir, search.attack)
    return metrics


class _TargetSearch:
    """One test target at a time: its base (the closest training feature of another class) and the smallest radius
    at which the bilevel poison, the feature-collision baseline (``--baseline-steps``) and test-time PGD
    (``--pgd-steps``) flip its prediction, each poison judged by retraining the softmax layer from the clean one."""

    def __init__(self, args, network: FeatureMap, trainer: ClassifierTrainer, clean_weights, arrays: Tuple) -> None:
        self.args, self.network, self.trainer, self.clean_weights = args, network, trainer, clean_weights
        self.arrays = arrays  # x_tr, y_tr, x_te, y_te, f_tr, f_te: images, labels and features of train and test
        x_tr, y_tr, _, _, f_tr, _ = arrays
        self.attack = CleanLabelAttack(
            network,
            trainer,
            f_tr,
            y_tr,
            x_tr.shape[1:],
            method=args.method,
            lr_u=args.lr_u,
            lr_v=args.lr_v,
            lr_p=getattr(args, "lr_p", None),
            inner_steps=args.inner_steps,
            rho=args.rho,
            lam=args.lam,
            eps=args.eps,
            nu=args.nu,
            sigma=args.sigma,
            beta=args.beta,
            jit_compile=args.jit,
        )
        self.baseline = FeatureCollision(network, args.baseline_beta, args.baseline_lr)
        classifier = trainer.model

        def model_fn(x):
            return classifier(network(x), training=False)

        self.model_fn = model_fn  # one object for every target: cleverhans compiles its gradient per model function

    def __call__(self, t: int) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
        """(the target's record, its images: target, base, bilevel poison, baseline poison)."""
        args, (x_tr, y_tr, x_te, y_te, f_tr, f_te) = self.args, self.arrays
        b = closest_other_class(f_tr, y_tr, f_te[t], y_te[t])
        self.attack.set_pair(x_tr[b], int(y_tr[b]), f_te[t], int(y_te[t]))

        def flips(poison: np.ndarray) -> bool:
            feature = self.network.extract(poison[None])
            self.trainer.fit(np.concatenate([f_tr, feature]), np.concatenate([y_tr, y_tr[b : b + 1]]), args.full_epochs)
            return bool(self.trainer.predict(f_te[t : t + 1])[0] != y_te[t])

        bilevel = smallest_flipping_radius(
            lambda r: self.attack.craft(r, args.epochs, self.clean_weights), flips, x_tr[b], args.radii
        )
        shafahi = (
            smallest_flipping_radius(
                lambda r: self.baseline.craft(x_tr[b], f_te[t], r, args.baseline_steps), flips, x_tr[b], args.radii
            )
            if args.baseline_steps
            else None
        )
        self.trainer.load(self.clean_weights)
        record = dict(
            target=t,
            base=b,
            target_label=int(y_te[t]),
            base_label=int(y_tr[b]),
            feature_distance=float(np.linalg.norm(f_tr[b] - f_te[t])),
            bilevel={k: bilevel[k] for k in ("radius", "distortions")},
            baseline=None if shafahi is None else {k: shafahi[k] for k in ("radius", "distortions")},
        )
        if args.pgd_steps:
            record["pgd_radius"] = pgd_evasion_radius(self.model_fn, x_te[t], int(y_te[t]), args.radii, args.pgd_steps)
        images = dict(
            target=x_te[t],
            base=x_tr[b],
            poison=bilevel["poison"],
            baseline=x_tr[b] if shafahi is None else shafahi["poison"],
        )
        return record, images

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
from bilevel_tf.runner import experiment, plots, results_file, run_folder, tensorboard_logs
from bilevel_tf.paper import cells

from .features import FeatureMap, check_features_match, feature_network
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

        problem = bl.BilevelProblem(
            upper_loss,
            lower_loss,
            [self.u],
            trainer.variables,
            upper_constraint=poison_projection(self.base, self.radius),
            lower_init=refresh_features,
        )
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


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """[-1, 1] Inception pixels -> [0, 1] for figures (the original saved (x + 1) / 2)."""
    return np.clip((np.asarray(images) + 1.0) / 2.0, 0.0, 1.0)


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

    attack = CleanLabelAttack(
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
    baseline = FeatureCollision(network, args.baseline_beta, args.baseline_lr)
    classifier = trainer.model

    def model_fn(x):
        return classifier(network(x), training=False)

    records_path, image_dir = experiment.output_path(args, "targets.jsonl"), experiment.output_path(args, "images")
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
            trainer.fit(np.concatenate([f_tr, feature]), np.concatenate([y_tr, y_tr[b : b + 1]]), args.full_epochs)
            return bool(trainer.predict(f_te[t : t + 1])[0] != y_te[t])

        bilevel = smallest_flipping_radius(
            lambda r: attack.craft(r, args.epochs, clean_weights), flips, x_tr[b], args.radii
        )
        shafahi = (
            smallest_flipping_radius(
                lambda r: baseline.craft(x_tr[b], f_te[t], r, args.baseline_steps), flips, x_tr[b], args.radii
            )
            if args.baseline_steps
            else None
        )
        trainer.load(clean_weights)
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
            record["pgd_radius"] = pgd_evasion_radius(model_fn, x_te[t], int(y_te[t]), args.radii, args.pgd_steps)
        if len(records) < args.figure_targets or bilevel["radius"] is not None:
            np.savez_compressed(
                os.path.join(image_dir, f"target_{t}.npz"),
                target=x_te[t],
                base=x_tr[b],
                poison=bilevel["poison"],
                baseline=x_tr[b] if shafahi is None else shafahi["poison"],
            )
        append_jsonl(records_path, record)
        records.append(record)
        print(
            f"target {t}: bilevel radius {bilevel['radius']}, baseline radius "
            f"{None if shafahi is None else shafahi['radius']}, PGD radius {record.get('pgd_radius')}",
            flush=True,
        )

    metrics = clean_label_metrics(records, args.radii, clean_accuracy, len(f_tr))
    _write_outputs(args, records, metrics, image_dir, attack)
    return metrics


def _write_outputs(
    args, records: List[Dict[str, Any]], metrics: Dict[str, Any], image_dir: str, attack: CleanLabelAttack
) -> None:
    """The figures, the TensorBoard records and results.json of the finished attack."""
    for figure in ("success_vs_distortion.png", "poison_images.png"):  # what plot_clean_label writes
        experiment.output_path(args, figure)
    plot_clean_label(args.out, records, metrics, image_dir, args.figure_targets, args.method)
    seconds = attack.seconds[1:] or attack.seconds
    tensorboard_logs.write_records(args, records)
    results_file.write_results(
        args,
        metrics=metrics,
        history=records,
        paper=cells.paper_entry(args, "dogfish"),
        seconds_per_upper_iteration=float(np.median(seconds)) if seconds else None,
        solver=attack.solver,
        dataset="smoke" if args.smoke and not args.data_dir else "dogfish",
        summary_keys=[
            "clean_test_accuracy",
            "num_targets",
            "attack_success_rate",
            "baseline_attack_success_rate",
            "pgd_evasion_success_rate",
        ],
    )


def clean_label_metrics(
    records: Sequence[Mapping[str, Any]], radii: Sequence[float], clean_accuracy: float, num_train: int
) -> Dict[str, Any]:
    bilevel = success_curve([r["bilevel"] for r in records], radii)
    metrics: Dict[str, Any] = dict(
        clean_test_accuracy=clean_accuracy,
        num_targets=len(records),
        num_train=num_train,
        attack_success_rate=bilevel["success_rate"][-1] if records else float("nan"),
        success_curve=bilevel,
    )
    found = [r["bilevel"]["radius"] for r in records if r["bilevel"]["radius"] is not None]
    metrics["mean_success_radius"] = float(np.mean(found)) if found else None
    with_baseline = [r["baseline"] for r in records if r["baseline"] is not None]
    if with_baseline:
        base_curve = success_curve(with_baseline, radii)
        metrics.update(baseline_attack_success_rate=base_curve["success_rate"][-1], baseline_success_curve=base_curve)
    with_pgd = [r["pgd_radius"] for r in records if "pgd_radius" in r]
    if with_pgd:
        rates = [float(np.mean([r is not None and r <= R for r in with_pgd])) for R in sorted(radii)]
        metrics.update(
            pgd_evasion_success_rate=rates[-1], pgd_success_curve=dict(radius=sorted(radii), success_rate=rates)
        )
    return metrics


def plot_clean_label(
    out: str, records: Sequence[Mapping[str, Any]], metrics: Mapping[str, Any], image_dir: str, count: int, method: str
) -> None:
    """Paper figure 3 (success rate vs average distortion) and figure 8 (target / base / poison rows)."""
    curves = {f"bilevel ({method})": metrics["success_curve"]}
    if "baseline_success_curve" in metrics:
        curves["Shafahi et al. feature collision"] = metrics["baseline_success_curve"]
    plots.plot_curves(
        os.path.join(out, "success_vs_distortion.png"),
        {k: (c["average_distortion"], c["success_rate"]) for k, c in curves.items()},
        xlabel="average L2 distortion ||poison - base||",
        ylabel="attack success rate",
        title="clean-label attack (paper figure 3)",
        markers=True,
    )
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
    plots.plot_image_rows(
        os.path.join(out, "poison_images.png"),
        {k: np.stack(v) for k, v in rows.items()},
        title="radius found per column: " + " ".join(str(r["bilevel"]["radius"]) for r in saved),
    )

"""Seconds per upper iteration of the poisoning problems at the paper's sizes (time panel of supp. figure 5c
/ the closing note of the poisoning experiments), on random data so that nothing needs downloading.

* MNIST data augmentation: 1000 training and 1000 validation points of 784 pixels, NUM_POISON poison
  points, logistic regression; Penalty, ApproxGrad (T linear-system steps too) and RMD for each T.
* Clean label: one 299x299 poison image through a full InceptionV3 (random weights), a softmax layer on
  1800 2048-d training features; Penalty with T = 10.

    python data_poisoning/time_upper_iterations.py                       # T = 20, both problems
    python data_poisoning/time_upper_iterations.py --inner-steps-list 1,10,20,50 --no-clean-label
"""

import importlib.util
import os

import numpy as np

from bilevel_tf.runner import experiment, plots, results_file, timing
from bilevel_tf.apps import poisoning  # its flag-time names (METHODS) load without TensorFlow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _runner(relative_path: str):
    """A runner script's module, for its constants (runners import no TensorFlow at the top)."""
    spec = importlib.util.spec_from_file_location(
        "runner_" + os.path.basename(relative_path)[:-3], os.path.join(ROOT, relative_path)
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: the settings timed are the runners' own: the untargeted MNIST attack and the clean-label attack
MNIST = _runner("data_poisoning/untargeted/test_bilevel_poisoning_untargeted.py")
CLEAN_LABEL = _runner("clean_label/test_bilevel_clean_label_attack.py")
TRAIN_POINTS = VAL_POINTS = 1000
PIXELS = 784
INNER_STEPS_LIST = (MNIST.INNER_STEPS,)
REPEATS = 10  # timed upper iterations (after two warm-up iterations)
CLEAN_LABEL_SIZE = 299  # InceptionV3 input side
CLEAN_LABEL_TRAIN = 1800  # 900 dog + 900 fish training features
CLEAN_LABEL_INNER_STEPS = CLEAN_LABEL.INNER_STEPS
CLEAN_LABEL_REPEATS = 2


def _median_seconds(step, repeats: int) -> float:
    step()  # two warm-up calls: the first traces and compiles, time_steps leaves out the second
    return timing.time_steps(step, repeats)["seconds"]


def time_data_augmentation(
    method: str,
    inner_steps: int,
    repeats: int,
    rng: np.random.Generator,
    sizes=(TRAIN_POINTS, VAL_POINTS, MNIST.NUM_POISON, PIXELS),
) -> float:
    import tensorflow as tf

    import bilevel_tf as bl
    from bilevel_tf import models

    n_train, n_val, n_poison, pixels = sizes
    x = rng.random((n_train + n_val + n_poison, pixels), dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    data = poisoning.PoisonData(
        x[:n_train],
        y[:n_train],
        x[n_train : n_train + n_val],
        y[n_train : n_train + n_val],
        x[-n_poison:],
        y[-n_poison:],
        {},
        (28, 28),
        targeted=False,
    )
    model = models.logistic_regression(pixels, 10, use_bias=False)
    poison = tf.Variable(data.poison_x0, name="poison")
    problem = poisoning.data_augmentation_problem(model, poison, data, MNIST.WEIGHT_DECAY)
    solver = bl.make_solver(
        method,
        problem,
        **poisoning.attack_solver_options(
            method,
            inner_steps=inner_steps,
            rho=MNIST.RHO,
            lam=MNIST.LAM,
            eps=MNIST.EPS,
            nu=MNIST.NU,
            sigma=MNIST.SIGMA,
            **MNIST.LEARNING_RATES[method],
        ),
    )
    return _median_seconds(lambda: float(solver.step()["upper_loss"]), repeats)


def time_clean_label(size: int, n_train: int, inner_steps: int, repeats: int, rng: np.random.Generator) -> float:
    import keras

    from bilevel_tf import models
    from bilevel_tf.apps.classifier import ClassifierTrainer

    c = CLEAN_LABEL
    feature_map = poisoning.FeatureMap(models.inception_v3_features(None, (size, size, 3)))
    features = rng.normal(0, 0.3, (n_train, feature_map.network.output_shape[-1])).astype(np.float32)
    labels = np.arange(n_train) % 2
    trainer = ClassifierTrainer(models.softmax_layer(features.shape[1], 2), keras.optimizers.RMSprop(c.RETRAIN_LR))
    attack = poisoning.CleanLabelAttack(
        feature_map,
        trainer,
        features,
        labels,
        (size, size, 3),
        method="penalty",
        lr_u=c.LR_U,
        lr_v=c.LR_V,
        lr_p=None,
        inner_steps=inner_steps,
        rho=c.RHO,
        lam=c.LAM,
        eps=c.EPS,
        nu=c.NU,
        sigma=c.SIGMA,
        beta=c.BETA,
    )
    image = rng.uniform(-1, 1, (size, size, 3)).astype(np.float32)
    attack.set_pair(image, 1, features[0], 0)
    attack.u.assign(image[None])
    return _median_seconds(lambda: float(attack.solver.step()["upper_loss"]), repeats)


def _ints(text: str):
    return tuple(int(t) for t in text.split(",") if t.strip())


def main(argv=None):
    p = experiment.parser(__doc__, method="all", methods=("all",) + poisoning.METHODS, inner_steps=None, data_dir=False)
    p.add_argument("--inner-steps-list", type=_ints, default=INNER_STEPS_LIST, help="comma-separated T values")
    p.add_argument("--repeats", type=int, default=REPEATS, help="timed upper iterations per setting")
    p.add_argument("--num-poison", type=int, default=MNIST.NUM_POISON, help="poison points of the MNIST problem")
    p.add_argument("--no-clean-label", action="store_true", help="skip the InceptionV3 clean-label timing")
    p.add_argument("--clean-label-size", type=int, default=CLEAN_LABEL_SIZE, help="clean-label image side (>= 75)")
    args = experiment.parse(p, argv, "data_poisoning/time_upper_iterations")
    experiment.start_tensorflow(args)
    sizes = (TRAIN_POINTS, VAL_POINTS, args.num_poison, PIXELS)
    cl_size, cl_train, cl_repeats = args.clean_label_size, CLEAN_LABEL_TRAIN, CLEAN_LABEL_REPEATS
    if args.smoke:
        args.inner_steps_list, args.repeats = (2,), 2
        sizes, cl_size, cl_train, cl_repeats = (50, 50, 5, 64), 75, 20, 1
    rng = np.random.default_rng(args.seed)
    methods = poisoning.METHODS if args.method == "all" else (args.method,)
    timings = {
        m: {str(t): time_data_augmentation(m, t, args.repeats, rng, sizes) for t in args.inner_steps_list}
        for m in methods
    }
    metrics = {"mnist_seconds_per_upper_iteration": timings}
    for m, per_t in timings.items():
        print(f"MNIST poisoning {m}: " + ", ".join(f"T={t}: {s:.4f} s" for t, s in per_t.items()), flush=True)
    if not args.no_clean_label and args.method in ("all", "penalty"):
        metrics["clean_label_penalty_seconds_per_upper_iteration"] = time_clean_label(
            cl_size, cl_train, CLEAN_LABEL_INNER_STEPS, cl_repeats, rng
        )
        print(
            f"clean label ({cl_size}x{cl_size}, T={CLEAN_LABEL_INNER_STEPS}): "
            f"{metrics['clean_label_penalty_seconds_per_upper_iteration']:.3f} s",
            flush=True,
        )
    plots.plot_curves(
        os.path.join(args.out, "seconds_per_upper_iteration.png"),
        {m: ([int(t) for t in per_t], list(per_t.values())) for m, per_t in timings.items()},
        xlabel="T (lower steps per upper iteration)",
        ylabel="seconds per upper iteration",
        title="MNIST poisoning, paper sizes",
    )
    reference = timings.get("penalty", next(iter(timings.values())))
    results_file.write_results(
        args,
        metrics=metrics,
        dataset="random",
        seconds_per_upper_iteration=reference.get("20", next(iter(reference.values()))),
        summary_keys=["clean_label_penalty_seconds_per_upper_iteration"],
    )


if __name__ == "__main__":
    experiment.run_main(main)

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

The package's modules, one concern each: ``config`` (the runners' constants blocks and flags, without
TensorFlow; also the attacks' table of solver options), ``data`` (MNIST/digits splits and poison start points),
``trainer`` (the losses; the classifier trainer is ``apps.classifier``'s), ``solver`` (the attacks' solver
options from the table), ``augmentation`` (the data-augmentation attacks), ``features`` (the InceptionV3 feature
map and feature files), ``clean_label`` (the clean-label attack and its baselines) and ``clean_label_report``
(its success curves, figures and results); ``runs`` checks the data and opens the run folder before either
attack loads TensorFlow.
"""

import importlib
from typing import Any

#: submodule -> the public names it defines; ``poisoning.X`` imports the submodule on first use, so a runner
#: that only parses its flags (``config``, ``data``) never loads TensorFlow
_EXPORTS = {
    "config": (
        "METHODS",
        "SOLVER_OPTIONS",
        "AttackDefaults",
        "CleanLabelDefaults",
        "FEATURES_FILE",
        "SMOKE_IMAGES",
        "add_attack_flags",
        "add_clean_label_flags",
        "add_network_flags",
        "add_solver_flags",
        "resolve_attack_args",
        "resolve_clean_label_args",
    ),
    "data": (
        "DATASETS",
        "PoisonData",
        "balanced_subset",
        "load_flat_images",
        "targeted_data",
        "untargeted_data",
        "wrong_labels",
    ),
    "augmentation": ("data_augmentation_problem", "plot_poison_rows"),
    "clean_label": (
        "CleanLabelAttack",
        "FeatureCollision",
        "append_jsonl",
        "closest_other_class",
        "pgd_evasion_radius",
        "poison_projection",
        "read_jsonl",
        "smallest_flipping_radius",
    ),
    "clean_label_report": (
        "clean_label_metrics",
        "plot_clean_label",
        "success_curve",
        "to_unit_range",
        "write_clean_label_outputs",
    ),
    "features": ("FeatureMap", "check_features_match", "feature_network"),
    "runs": (
        "run_data_augmentation_attack",
        "run_clean_label_attack",
        "clean_label_paths",
        "smoke_subset",
        "write_smoke_dogfish",
    ),
    "solver": ("attack_solver_options", "halve_learning_rates"),
    "trainer": ("cross_entropy", "regularized_loss"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))

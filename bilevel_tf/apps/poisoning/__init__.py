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

The package's modules, one concern each: ``data`` (MNIST/digits splits and poison start points), ``trainer``
(losses and the full-batch classifier trainer), ``solver`` (the attacks' solver options and flags), ``augmentation``
(the data-augmentation attacks), ``features`` (the InceptionV3 feature map and feature files) and
``clean_label`` (the clean-label attack, its baselines and reports).
"""
from .augmentation import (AttackDefaults, add_attack_flags, data_augmentation_problem, plot_poison_rows,
                           resolve_attack_args, run_data_augmentation_attack)
from .clean_label import (CleanLabelAttack, CleanLabelDefaults, FeatureCollision, add_clean_label_flags,
                          append_jsonl, clean_label_metrics, clean_label_paths, closest_other_class,
                          pgd_evasion_radius, plot_clean_label, poison_projection, read_jsonl,
                          resolve_clean_label_args, run_clean_label_attack, smallest_flipping_radius, success_curve,
                          to_unit_range)
from .data import (DATASETS, PoisonData, balanced_subset, load_flat_images, targeted_data, untargeted_data,
                   wrong_labels)
from .features import (FEATURES_FILE, SMOKE_IMAGES, FeatureMap, add_network_flags, check_features_match,
                       feature_network, smoke_subset, write_smoke_dogfish)
from .solver import METHODS, SOLVER_OPTIONS, add_solver_flags, attack_solver_options, halve_learning_rates
from .trainer import ClassifierTrainer, cross_entropy, regularized_loss, softmax_layer

__all__ = [name for name in dir() if not name.startswith("_")]

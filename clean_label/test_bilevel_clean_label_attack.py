"""Clean-label poisoning of the dog-vs-fish classifier (paper section 3.4, figure 3; supp. E.4, figure 8).

A softmax layer on frozen InceptionV3 features is the victim (lower level). For each correctly classified
test image (target), the base is the closest training image of the other class in feature space; one
poison image u, starting at the base and kept in the L2 ball of radius eps around it (and in [-1, 1]),
is optimized so that the layer retrained on train + (u, base label) misclassifies the target:

    min_u CE(W* r(target), wrong label) + ||r(u) - r(target)||^2   s.t. ||u - base||_2 <= eps

The smallest eps in RADII that flips the target is searched, for this bilevel attack and for the
Shafahi et al. (2018) feature-collision baseline with L2 projection; a cleverhans L2 PGD evasion attack on
the target itself gives a test-time reference. Needs the images (--data-dir) and their features from
extract_inception_features.py (--features) computed with the same --weights.

    python clean_label/test_bilevel_clean_label_attack.py --data-dir clean_label/dogfish_dataset
    python clean_label/test_bilevel_clean_label_attack.py --smoke --random-weights   # tiny generated images
"""

import os

from bilevel_tf.runner import experiment
from bilevel_tf.apps import poisoning

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dogfish_dataset")
RADII = tuple(float(r) for r in range(1, 17))  # eps searched, smallest first
NUM_TARGETS = 0  # 0: every correctly classified test image
EPOCHS = 200  # K upper iterations per (target, eps) (original nepochs_bl 201)
INNER_STEPS = 10  # T
LR_U, LR_V, LR_P = 1e-2, 1e-3, 1e-3
RHO, LAM, EPS, NU = 1.0, 1.0, 1.0, 0.0  # Penalty rho_0 (paper gamma_0), lambda_0, eps_0, nu_0
SIGMA = 1e-3  # ApproxGrad
BETA = 0.0  # soft ||u - base||^2 weight: paper 0 (eps-ball instead), original 0.01
FULL_EPOCHS = 2000  # RMSProp steps training the softmax layer (original 2001)
RETRAIN_LR = 1e-3
BASELINE_STEPS, BASELINE_BETA, BASELINE_LR = 2000, 0.1, 0.01  # Shafahi et al. with L2 projection
PGD_STEPS = 10  # cleverhans L2 PGD evasion reference

DEFAULTS = poisoning.CleanLabelDefaults(
    radii=RADII,
    learning_rates=dict(lr_u=LR_U, lr_v=LR_V, lr_p=LR_P),
    rho=RHO,
    lam=LAM,
    eps=EPS,
    nu=NU,
    sigma=SIGMA,
    beta=BETA,
    full_epochs=FULL_EPOCHS,
    retrain_lr=RETRAIN_LR,
    baseline_steps=BASELINE_STEPS,
    baseline_beta=BASELINE_BETA,
    baseline_lr=BASELINE_LR,
    pgd_steps=PGD_STEPS,
    num_targets=NUM_TARGETS,
)


def main(argv=None):
    p = experiment.parser(__doc__, methods=poisoning.METHODS, inner_steps=INNER_STEPS, upper_iterations=EPOCHS)
    poisoning.add_clean_label_flags(p, DEFAULTS)
    args = experiment.parse(p, argv, "clean_label")
    poisoning.resolve_clean_label_args(args, DEFAULTS)
    return poisoning.run_clean_label_attack(args, DATA_DIR)


if __name__ == "__main__":
    experiment.run_main(main)

"""Data hyper-cleaning on MNIST, the PBGD setup (Shen & Chen 2023, hanshen95/penalized-bilevel-gradient-descent).

5000 training images of which --pollute_rate get a random label, 5000 clean validation images, 10000 test
images (all from the MNIST training split, as PBGD); one weight sigmoid(x_i) per training image; a linear or
MLP network as the lower level. Methods: V-PBGD and G-PBGD (PBGD's), RHG / T-RHG (--K < --T; the net is
re-initialised every outer step, as PBGD's script), the Penalty method of Mehra & Hamm and the modern solvers
(SOBA, SABA, AmIGO, StocBiO, F2SA, BOME; plain SGD). Reports the test
accuracy of the network and the F1 score of the predicted-clean set {x_i >= 0}.

    python data_denoising/hyper_cleaning/data_hyper_clean.py --method vpbgd
    python data_denoising/hyper_cleaning/data_hyper_clean.py --method gpbgd --net MLP
    python data_denoising/hyper_cleaning/data_hyper_clean.py --method rhg --net MLP --lr_inner 0.4 --K 100
    python data_denoising/hyper_cleaning/data_hyper_clean.py --method penalty --dataset digits   # offline
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # run from anywhere

from bilevel_tf.runner import experiment  # noqa: E402
from bilevel_tf.apps.denoising import config as denoising, hyper_cleaning_config  # noqa: E402  (no TensorFlow before parsing)

POLLUTE_RATE = 0.5  # PBGD's default
#: noisy_baseline_test_accuracy: the same net, uniform weights, full-batch SGD (steps, lr): the same for every
#: method (PBGD's lower step size and a budget where the linear net has converged)
BASELINE = (5000, 0.1)

#: PBGD's defaults per (method, net): its scripts' argparse defaults (linear) and its README commands (MLP)
DEFAULTS = {
    ("vpbgd", "linear"): dict(
        lrx=0.1,
        lry=0.1,
        lr_inner=0.01,
        gamma_init=0.0,
        gamma_max=0.2,
        gamma_argmax_step=30000,
        outer_itr=40000,
        inner_itr=1,
        T=1,
        K=1,
    ),
    ("vpbgd", "MLP"): dict(lry=0.01, gamma_max=0.1, gamma_argmax_step=10000, outer_itr=80000),
    ("gpbgd", "linear"): dict(
        lrx=0.3,
        lry=0.5,
        lr_inner=0.0,
        gamma_init=0.0,
        gamma_max=37.0,
        gamma_argmax_step=5000,
        outer_itr=40000,
        inner_itr=1,
        T=1,
        K=1,
    ),
    ("gpbgd", "MLP"): dict(lrx=0.5, gamma_argmax_step=30000, outer_itr=50000),
    ("rhg", "linear"): dict(
        lrx=0.001,
        lry=0.0,
        lr_inner=0.1,
        gamma_init=0.0,
        gamma_max=0.0,
        gamma_argmax_step=1,
        outer_itr=100,
        inner_itr=1,
        T=500,
        K=500,
    ),
    ("rhg", "MLP"): dict(lr_inner=0.4),
    # not in PBGD: the Penalty method with Adam (lrx, lry; chosen on digits). Its default schedule solves the
    # lower level exactly, and without reg the weighted logistic regression has no minimizer once the kept
    # points are separable (|w| grows without bound, fitting every point with weight > 0): test accuracy then
    # drifts down after its peak. reg = 1e-3 makes the lower problem well posed (--reg 0 --schedule original
    # is the former row: the original schedule's lr decay stopped u early instead).
    ("penalty", "linear"): dict(
        lrx=0.03,
        lry=1e-3,
        lr_inner=0.0,
        gamma_init=0.0,
        gamma_max=0.0,
        gamma_argmax_step=1,
        outer_itr=2000,
        inner_itr=20,
        T=1,
        K=1,
        reg=1e-3,
    ),
}
# not in PBGD: the modern solvers, plain SGD as PBGD's rows (chosen on digits); full batch, so SABA's SAGA
# estimates are the exact gradients and it takes SOBA's steps
MODERN = dict(
    lrx=1.0,
    lry=0.1,
    lr_inner=0.0,
    gamma_init=0.0,
    gamma_max=0.0,
    gamma_argmax_step=1,
    outer_itr=2000,
    inner_itr=10,
    T=1,
    K=1,
    reg=1e-3,
)
DEFAULTS.update({(method, "linear"): MODERN for method in hyper_cleaning_config.MODERN_METHODS})
PENALTY = dict(denoising.PENALTY_SCHEDULE, nu=1e-4)  # the small-scale MNIST schedule

CONFIG = hyper_cleaning_config.HyperCleaningConfig(
    defaults=DEFAULTS, pollute_rate=POLLUTE_RATE, penalty=PENALTY, baseline=BASELINE
)


def main(argv=None):
    args = hyper_cleaning_config.parse(__doc__, argv, CONFIG)
    # TensorFlow loads after the checks
    return hyper_cleaning_config.run_hyper_cleaning(args, CONFIG.penalty, CONFIG.baseline)


if __name__ == "__main__":
    experiment.run_main(main)

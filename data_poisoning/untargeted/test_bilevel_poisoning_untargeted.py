"""Untargeted data-augmentation poisoning of MNIST (paper supp. Table 5, left half; figure 6).

NUM_POISON points, starting as training images with random wrong labels, are optimized (pixels kept in
[0, 1]) to MAXIMIZE the validation loss of L2-regularized logistic regression trained on clean + poison.
Reported: test accuracy of a fresh classifier retrained on clean + poison (lower = better attack), the clean
accuracy, and the label-flipping baseline (the same points, unoptimized).

    python data_poisoning/untargeted/test_bilevel_poisoning_untargeted.py --method penalty
    python data_poisoning/untargeted/test_bilevel_poisoning_untargeted.py --dataset digits --num-poison 30
"""

from bilevel_tf.runner import experiment
from bilevel_tf.apps import poisoning

NUM_POISON = 60  # 6% of the 1000 training points (paper: 1%..6%)
DIGITS_NUM_POISON = 18  # the same 6% of the 300 digits training points
SPLITS = {"mnist": (1000, 1000, 8000), "digits": (300, 300, 1197), "smoke": (100, 100, 200)}  # train/val/test
EPOCHS = 5000  # K upper iterations
INNER_STEPS = 20  # T
FULL_EPOCHS = 10000  # Adam steps of pre-training and of retraining on clean + poison (original 10001)
PRETRAIN_LR = 1e-3
WEIGHT_DECAY = 0.0025  # original 0.5 * 0.01 * l2_loss(W); the paper writes "0.05"
LEARNING_RATES = {
    "penalty": dict(lr_u=1e-1, lr_v=1e-3),
    "approxgrad": dict(lr_u=1e-2, lr_v=1e-3, lr_p=1e-2),
    "rmd": dict(lr_u=1e-2, lr_v=1e-2),
}  # RMD: not in the original (our choice)
RHO, LAM, EPS, NU = 10.0, 100.0, 1.0, 0.0  # Penalty rho_0 (paper gamma_0), lambda_0, eps_0, nu_0
SIGMA, HALVE_EVERY = 1e-3, 1000  # ApproxGrad

DEFAULTS = poisoning.AttackDefaults(  # the block above
    num_poison={"mnist": NUM_POISON, "digits": DIGITS_NUM_POISON},
    splits=SPLITS,
    learning_rates=LEARNING_RATES,
    rho=RHO,
    lam=LAM,
    eps=EPS,
    nu=NU,
    sigma=SIGMA,
    halve_every=HALVE_EVERY,
    full_epochs=FULL_EPOCHS,
    pretrain_lr=PRETRAIN_LR,
    weight_decay=WEIGHT_DECAY,
)


def main(argv=None):
    p = experiment.parser(__doc__, methods=poisoning.METHODS, inner_steps=INNER_STEPS, upper_iterations=EPOCHS)
    poisoning.add_attack_flags(p, DEFAULTS)
    args = experiment.parse(p, argv, "data_poisoning/untargeted", offline_dataset="digits")
    poisoning.resolve_attack_args(args, DEFAULTS)
    data = poisoning.untargeted_data(
        args.dataset, args.data_dir, args.train_points, args.val_points, args.test_points, args.num_poison, args.seed
    )
    return poisoning.run_data_augmentation_attack(args, data)


if __name__ == "__main__":
    experiment.run_main(main)

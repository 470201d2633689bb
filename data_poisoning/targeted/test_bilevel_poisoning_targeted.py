"""Targeted data-augmentation poisoning of MNIST: make 8s read as 3s (paper supp. Table 5, right half).

NUM_POISON points, starting as training 3s and 8s with the two labels swapped, are optimized (pixels kept
in [0, 1]) to MINIMIZE the loss of validation 8s labeled 3 under L2-regularized logistic regression trained
on clean + poison. Reported: attack_success_rate = fraction of test 8s a fresh classifier retrained on
clean + poison labels 3 (higher = better attack), the same for the clean model and the label-flipping
baseline (the same points, unoptimized), and test accuracies on the balanced test set.

    python data_poisoning/targeted/test_bilevel_poisoning_targeted.py --method penalty
    python data_poisoning/targeted/test_bilevel_poisoning_targeted.py --dataset digits
"""

from bilevel_tf.runner import experiment
from bilevel_tf.apps import poisoning

NUM_POISON = 60  # half 3s, half 8s (the original ApproxGrad runner used 50)
DIGITS_NUM_POISON = 18  # the same 6% of the 300 digits training points
SOURCE_CLASS, TARGET_CLASS = 8, 3
SPLITS = {"mnist": (1000, 4000, 5000), "digits": (300, 500, 500), "smoke": (100, 200, 200)}  # balanced train/val/test
EPOCHS = 5000  # K upper iterations (original 5001)
INNER_STEPS = 20  # T
FULL_EPOCHS = 10000  # Adam steps of pre-training and of retraining on clean + poison (original 10001)
PRETRAIN_LR = 1e-3
WEIGHT_DECAY = 0.0025  # original 0.5 * 0.01 * l2_loss(W); the paper writes "0.05"
LEARNING_RATES = {
    "penalty": dict(lr_u=1e-1, lr_v=1e-4),  # original lr_v 1e-4 (paper rho_0 = 1e-3)
    "approxgrad": dict(lr_u=1e-3, lr_v=1e-4, lr_p=1e-3),
    "rmd": dict(lr_u=1e-2, lr_v=1e-2),
}  # RMD: not in the original code (our choice)
RHO, LAM, EPS, NU = 10.0, 1.0, 1.0, 0.0  # lambda_0 = 1 for the targeted attack
SIGMA, HALVE_EVERY = 1e-3, 1000

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
    p.add_argument("--source-class", type=int, default=SOURCE_CLASS, help="class whose test images should be misread")
    p.add_argument("--target-class", type=int, default=TARGET_CLASS, help="the label the attacker wants them to get")
    args = experiment.parse(p, argv, "data_poisoning/targeted", offline_dataset="digits")
    poisoning.resolve_attack_args(args, DEFAULTS)
    data = poisoning.targeted_data(
        args.dataset,
        args.data_dir,
        args.train_points,
        args.val_points,
        args.test_points,
        args.num_poison,
        args.source_class,
        args.target_class,
        args.seed,
    )
    return poisoning.run_data_augmentation_attack(args, data)


if __name__ == "__main__":
    experiment.run_main(main)

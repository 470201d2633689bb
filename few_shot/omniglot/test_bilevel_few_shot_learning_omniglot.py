"""Few-shot learning on Omniglot (Mehra & Hamm, Table 3): a shared 4-conv representation (upper level) and
per-task cosine softmax heads (lower level), meta-trained with Penalty or ApproxGrad.

    python few_shot/omniglot/test_bilevel_few_shot_learning_omniglot.py --n-way 20 --k-shot 5
    python few_shot/omniglot/test_bilevel_few_shot_learning_omniglot.py --dataset digits --n-way 5 --k-shot 1

Data: --data-dir (default: this folder, as the original) holds x_omniglot_1.npy / y_omniglot_1.npy, or an
omniglot_resized/<alphabet>/<character>/*.png tree they are built from; characters 0..1199 (x 4 rotations)
are meta-train, the other 423 meta-test.
"""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from bilevel_tf.runner import experiment  # noqa: E402
from bilevel_tf.apps.few_shot import config as few_shot_config  # noqa: E402  (no TensorFlow before the flags are parsed)
from bilevel_tf.datasets import load_omniglot  # noqa: E402

# ---- the paper's / original runner's settings --------------------------------------------------------
N_WAY = 20  # N: 5 or 20 in Table 3
K_SHOT = 5  # K: 1 or 5
N_QUERY = 15  # query images per class
TRAIN_CHARACTERS = 1200  # meta-train characters (x 4 rotations); the remaining 423 are meta-test
INNER_STEPS = 20  # T (ApproxGrad: also 20 linear-system steps)
LR_U = 1e-2  # Adam, representation (paper text says 1e-3; the code uses 1e-2)
LR_V = 1e-2  # Adam, task heads
LR_P = 1e-2  # ApproxGrad: Adam of the linear solve
SIGMA = 1e-3  # ApproxGrad: Hessian regularizer
RHO, LAM, EPS, NU = 1e-2, 1e-2, 1e-2, 1e-4  # Penalty: rho_0, lamb_0, eps_0, nu_0
LR_DECAY = 0.99  # Penalty: learning-rate factor when the schedule fires (few-shot optimizer)
TEST_TASKS = 600  # meta-test tasks (original: test_times x meta_batch_size = 600)
TEST_STEPS = 100  # Adam steps on each meta-test task's support set
TEST_LR = 1e-3
EVAL_EVERY = 1000
DATA_HELP = (
    "folder of x_omniglot_1.npy / y_omniglot_1.npy, or of an omniglot_resized/ tree to build them from "
    "(default: this script's folder, as the original)"
)


def meta_batch(n_way, k_shot, method):
    return 30 if n_way == 5 else 15  # original: 30 tasks for 5-way, 15 for 20-way


def meta_iterations(n_way, k_shot, method):
    return 5000 if n_way == 5 else 10000


DEFAULTS = few_shot_config.FewShotDefaults(
    n_way=N_WAY,
    k_shot=K_SHOT,
    query=N_QUERY,
    inner_steps=INNER_STEPS,
    lr_u=LR_U,
    lr_v=LR_V,
    lr_p=LR_P,
    sigma=SIGMA,
    rho=RHO,
    lam=LAM,
    eps=EPS,
    nu=NU,
    lr_decay=LR_DECAY,
    test_tasks=TEST_TASKS,
    test_steps=TEST_STEPS,
    test_lr=TEST_LR,
    eval_every=EVAL_EVERY,
    meta_batch=meta_batch,
    meta_iterations=meta_iterations,
    meta_batch_help="30 for 5-way, 15 otherwise",
    meta_iterations_help="5000 for 5-way, 10000 otherwise",
)


def load_data(args):
    if args.dataset == "digits":
        return few_shot_config.rotated_digits()
    data_dir = args.data_dir or os.path.dirname(os.path.abspath(__file__))
    x, y, train_classes, test_classes = load_omniglot(data_dir, n_train_characters=args.train_characters)
    train, test = few_shot_config.Split(x, y, train_classes), few_shot_config.Split(x, y, test_classes)
    return few_shot_config.FewShotData(train, test, "omniglot")


def make_encoder(image_shape):
    from bilevel_tf import models

    return models.omniglot_encoder(image_shape)


def main(argv=None):
    parser = few_shot_config.build_parser(__doc__, DEFAULTS, datasets=("omniglot", "digits"), data_help=DATA_HELP)
    parser.add_argument(
        "--train-characters",
        type=int,
        default=TRAIN_CHARACTERS,
        help="characters (before rotation) in meta-train; the rest are meta-test",
    )
    args = few_shot_config.parse(parser, argv, "few_shot/omniglot", DEFAULTS)
    return few_shot_config.run(args, load_data(args), make_encoder)  # TensorFlow loads after the checks


if __name__ == "__main__":
    experiment.run_main(main)

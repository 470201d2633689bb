"""Few-shot learning on Mini-ImageNet (Mehra & Hamm, Table 3 and figure 4b): a shared ResNet representation
(upper level) and per-task cosine softmax heads (lower level), meta-trained with Penalty or ApproxGrad.

    python few_shot/miniimagenet/test_bilevel_few_shot_learning_miniimagenet.py --k-shot 5
    python few_shot/miniimagenet/test_bilevel_few_shot_learning_miniimagenet.py --dataset digits --smoke

Data: --data-dir (default: dataset_miniimagenet/ next to this file, as the original) holds Ren et al.'s
mini-imagenet-cache-train.pkl (64 meta-train classes) and mini-imagenet-cache-test.pkl (20 meta-test classes);
the validation pickle is not used (nor was it by the original).
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from bilevel_tf.runner import experiment  # noqa: E402
from bilevel_tf.apps.few_shot import config as few_shot_config  # noqa: E402  (no TensorFlow before the flags are parsed)
from bilevel_tf.datasets import load_miniimagenet_split  # noqa: E402

# ---- the paper's / original runner's settings --------------------------------------------------------
N_WAY = 5  # N
K_SHOT = 5  # K: 1 or 5 in Table 3
N_QUERY = 15  # query images per class
META_BATCH = 2  # tasks per meta-iteration
INNER_STEPS = 20  # T (ApproxGrad: also 20 linear-system steps)
LR_U = 1e-3  # Adam, representation
LR_V = 1e-3  # Adam, task heads
LR_P = 1e-3  # ApproxGrad: Adam of the linear solve
SIGMA = 1e-3  # ApproxGrad: Hessian regularizer
RHO, LAM, EPS, NU = 1e-2, 1e-2, 1e-2, 1e-4  # Penalty: rho_0, lamb_0, eps_0, nu_0
LR_DECAY = 0.99  # Penalty: learning-rate factor when the schedule fires (few-shot optimizer)
TEST_TASKS = 600  # meta-test tasks (original: 300 x meta-batch 2)
TEST_STEPS = 100  # Adam steps on each meta-test task's support set
TEST_LR = 1e-3
EVAL_EVERY = 1000
SPLIT_FILES = ("mini-imagenet-cache-train.pkl", "mini-imagenet-cache-test.pkl")
DATA_HELP = (
    "folder of mini-imagenet-cache-train.pkl and mini-imagenet-cache-test.pkl (default: "
    "dataset_miniimagenet/ next to this script, as the original)"
)
# --smoke: a one-block ResNet (the four-block one takes tens of seconds to trace on a CPU)
SMOKE_RESNET = dict(filters=(16,), hidden_dim=32, embedding_dim=32)


def meta_batch(n_way, k_shot, method):
    return META_BATCH


def meta_iterations(n_way, k_shot, method):
    # Penalty runner: 20001 meta-iterations; ApproxGrad runner: 10000 for 5-shot, 20000 for 1-shot.
    if method == "approxgrad":
        return 10000 if k_shot == 5 else 20000
    return 20001


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
    meta_batch_help=str(META_BATCH),
    meta_iterations_help="Penalty 20001; ApproxGrad 10000 for 5-shot, 20000 for 1-shot",
)


def load_data(args):
    if args.dataset == "digits":
        return few_shot_config.rotated_digits()
    data_dir = args.data_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "dataset_miniimagenet")
    splits = [load_miniimagenet_split(os.path.join(data_dir, name)) for name in SPLIT_FILES]
    train, test = (few_shot_config.Split(images, labels, np.unique(labels)) for images, labels in splits)
    return few_shot_config.FewShotData(train, test, "miniimagenet")


def main(argv=None):
    parser = few_shot_config.build_parser(__doc__, DEFAULTS, datasets=("miniimagenet", "digits"), data_help=DATA_HELP)
    args = few_shot_config.parse(parser, argv, "few_shot/miniimagenet", DEFAULTS)
    resnet = SMOKE_RESNET if args.smoke else {}

    def make_encoder(image_shape):
        from bilevel_tf import models

        return models.miniimagenet_resnet(image_shape, **resnet)

    return few_shot_config.run(args, load_data(args), make_encoder)  # TensorFlow loads after the checks


if __name__ == "__main__":
    experiment.run_main(main)

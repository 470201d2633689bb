"""InceptionV3 features of the dog-fish images for the clean-label attack (paper section 3.4, supp. E.4).

Reads dataset_dog-fish_train-900_test-300.npz (Koh & Liang; 299x299x3 images in [-1, 1], 900 train / 300
test per class) from --data-dir, runs the frozen ImageNet InceptionV3 with global average pooling and writes
the 2048-d features with h5py (datasets X_train, X_test, Y_train, Y_test) to --output. ImageNet weights come
only from the Keras cache (~/.keras/models/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5) or a
--weights file; nothing is downloaded.

    python clean_label/extract_inception_features.py --data-dir clean_label/dogfish_dataset
    python clean_label/extract_inception_features.py --smoke --random-weights   # tiny generated images
"""

import os

import numpy as np

from bilevel_tf import datasets
from bilevel_tf.published import cells
from bilevel_tf.runner import experiment, results_file, timing
from bilevel_tf.apps import poisoning

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dogfish_dataset")  # the original's folder
BATCH_SIZE = 100


def main(argv=None):
    p = experiment.parser(__doc__, method="inception_v3", methods=("inception_v3",), inner_steps=None)
    poisoning.add_network_flags(p)
    p.add_argument(
        "--output", default=None, help=f"feature file to write (default: <data-dir>/{poisoning.FEATURES_FILE})"
    )
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="images per forward pass")
    args = experiment.parse(p, argv, "clean_label/extract_inception_features")
    data_dir, default_output = poisoning.clean_label_paths(args, DATA_DIR)
    (x_tr, y_tr), (x_te, y_te) = datasets.load_dogfish(data_dir)
    x_tr, y_tr, x_te, y_te = poisoning.smoke_subset(args, x_tr, y_tr, x_te, y_te)
    experiment.start_tensorflow(args)
    network = poisoning.feature_network(args, x_tr.shape[1:])  # first: random weights depend on the seed only
    watch = timing.Stopwatch()
    f_tr = network.extract(x_tr, args.batch_size)
    f_te = network.extract(x_te, args.batch_size)
    seconds = watch()
    output = datasets.save_features_h5(
        args.output or default_output, X_train=f_tr, X_test=f_te, Y_train=y_tr, Y_test=y_te
    )
    back = datasets.load_features_h5(output, required=("X_train", "X_test", "Y_train", "Y_test"))
    round_trip = all(
        np.array_equal(back[k], v) for k, v in dict(X_train=f_tr, X_test=f_te, Y_train=y_tr, Y_test=y_te).items()
    )
    results_file.write_results(
        args,
        dataset="smoke" if args.smoke and not args.data_dir else "dogfish",
        paper=cells.paper_entry(args, "dogfish"),
        metrics=dict(
            output=str(output),
            num_train=len(f_tr),
            num_test=len(f_te),
            feature_dim=int(f_tr.shape[1]),
            image_shape=list(x_tr.shape[1:]),
            seconds_per_image=seconds / max(1, len(f_tr) + len(f_te)),
            feature_mean=float(f_tr.mean()),
            feature_std=float(f_tr.std()),
            h5_round_trip=round_trip,
        ),
        summary_keys=["num_train", "num_test", "feature_dim", "h5_round_trip"],
    )
    if not round_trip:
        raise RuntimeError(f"{output}: the features read back differ from those written")


if __name__ == "__main__":
    experiment.run_main(main)

"""Build the SVHN cache the SVHN denoising runner reads (the original's pre_process_svhn_data.py).

Reads the official train_32x32.mat and test_32x32.mat (http://ufldl.stanford.edu/housenumbers/, format 2),
takes 100 random training digits per class out as the validation set (1000), converts to grey
(RGB . [0.2989, 0.5870, 0.1140], values kept in 0..255 as the original) and writes
SVHN_single_grey_without_extra.h5 with 72257 training, 1000 validation and 26032 test digits.

    python data_denoising/svhn/pre_process_svhn_data.py --data-dir /path/to/mat/files
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))  # run from anywhere

from bilevel_tf import datasets
from bilevel_tf.runner import console, experiment
from bilevel_tf.runner.flag_types import int_range


def main(argv=None):
    p = console.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=HERE, help="folder holding train_32x32.mat and test_32x32.mat")
    p.add_argument("--out-dir", default=HERE, help="where to write the .h5 (the runner's default --data-dir)")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation draw (100 per class)")
    p.add_argument("--rgb", action="store_true", help="write SVHN_single_without_extra.h5 (RGB) instead of grey")
    p.add_argument(
        "--val-per-class",
        type=int_range(0),
        default=100,
        help="training digits per class moved to the validation set (the paper's 1000 = 100 x 10)",
    )
    args = p.parse_args(argv)
    path = datasets.preprocess_svhn(
        os.path.join(args.data_dir, "train_32x32.mat"),
        os.path.join(args.data_dir, "test_32x32.mat"),
        args.out_dir,
        seed=args.seed,
        grey=not args.rgb,
        val_per_class=args.val_per_class,
    )
    d = datasets.load_svhn_h5(path) if not args.rgb else None
    sizes = (
        "" if d is None else " ({} train, {} val, {} test)".format(len(d["X_train"]), len(d["X_val"]), len(d["X_test"]))
    )
    print(f"wrote {path}{sizes}")
    return path


if __name__ == "__main__":
    experiment.run_main(main)

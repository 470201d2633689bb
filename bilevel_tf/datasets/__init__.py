"""Offline data loaders for the bilevel experiments (numpy only; nothing is ever downloaded).

Missing files raise :class:`DataFileMissingError` (says what to fetch, where to put it and, for the data sets
whose runners have one, the offline alternative). Damaged, truncated or foreign files, and images or labels
outside the data set's format (a label 12 of a 10-class set, a NaN label or pixel), raise :class:`DataFormatError`
naming the file and the first offending value.
"""

from .digits import load_digits, train_val_test_split
from .dogfish import load_dogfish, load_dogfish_features_npy, load_features_h5, save_features_h5
from .errors import DataFileMissingError, DataFormatError
from .few_shot import (
    Episode,
    EpisodeSampler,
    as_tf_dataset,
    build_omniglot_arrays,
    list_omniglot_characters,
    load_miniimagenet_split,
    load_omniglot,
    load_omniglot_folders,
    rotate_classes,
    split_classes,
)
from .keras_datasets import keras_cache_dirs, load_cifar10, load_fashion_mnist, load_mnist, read_idx
from .noise import flip_first, flip_labels
from .svhn import load_svhn_h5, load_svhn_mat, preprocess_svhn, svhn_split_indices, to_grey

__all__ = [
    "DataFileMissingError",
    "DataFormatError",
    "load_mnist",
    "load_fashion_mnist",
    "load_cifar10",
    "keras_cache_dirs",
    "read_idx",
    "load_digits",
    "train_val_test_split",
    "flip_labels",
    "flip_first",
    "load_svhn_mat",
    "svhn_split_indices",
    "to_grey",
    "preprocess_svhn",
    "load_svhn_h5",
    "load_omniglot_folders",
    "list_omniglot_characters",
    "rotate_classes",
    "build_omniglot_arrays",
    "load_omniglot",
    "load_miniimagenet_split",
    "Episode",
    "EpisodeSampler",
    "as_tf_dataset",
    "split_classes",
    "load_dogfish",
    "load_dogfish_features_npy",
    "save_features_h5",
    "load_features_h5",
]

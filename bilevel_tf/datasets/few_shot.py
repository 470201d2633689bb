"""Few-shot learning data: Omniglot and Mini-ImageNet loaders and the N-way K-shot episode sampler.

The implementations live in :mod:`.omniglot`, :mod:`.miniimagenet` and :mod:`.episodes`; this module gathers them.
"""

from .episodes import Episode, EpisodeSampler, as_tf_dataset, split_classes
from .miniimagenet import load_miniimagenet_split
from .omniglot import (
    build_omniglot_arrays,
    list_omniglot_characters,
    load_omniglot,
    load_omniglot_folders,
    rotate_classes,
)

__all__ = [
    "Episode",
    "EpisodeSampler",
    "as_tf_dataset",
    "split_classes",
    "load_miniimagenet_split",
    "build_omniglot_arrays",
    "list_omniglot_characters",
    "load_omniglot",
    "load_omniglot_folders",
    "rotate_classes",
]

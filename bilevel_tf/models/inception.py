"""Clean-label poisoning's feature extractor: InceptionV3 without its top, weights read only from disk."""

from __future__ import annotations

import os
from typing import Sequence, Union

import keras


INCEPTION_V3_NOTOP_WEIGHTS = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"


def keras_weights_cache_path(filename: str = INCEPTION_V3_NOTOP_WEIGHTS) -> str:
    """Where ``keras.utils.get_file`` caches ``filename``: ``$KERAS_HOME/models`` (default
    ``~/.keras/models``)."""
    cache_dir = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(cache_dir, "models", filename)


def inception_v3_features(
    weights: Union[None, str, os.PathLike] = None,
    input_shape: Sequence[int] = (299, 299, 3),
    *,
    trainable: bool = False,
    name: str = "inception_v3_features",
) -> keras.Model:
    """InceptionV3 without its top, global-average pooled: images -> **2048-d** features.

    The clean-label (dog-vs-fish) attack's representation (original
    ``extract_inception_features.py``: ``InceptionV3(weights='imagenet', include_top=False)`` +
    ``GlobalAveragePooling2D``); inputs are Inception-preprocessed images in [-1, 1]
    (``keras.applications.inception_v3.preprocess_input``). 21,802,784 parameters in total
    (21,768,352 of them in conv kernels and BN betas; the rest BN moving statistics).

    ``weights``:

    * ``None``: random initialisation (tests, offline demos).
    * ``'imagenet'``: loaded **only** from the Keras cache
      (``$KERAS_HOME/models/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5``, default
      ``~/.keras/models``); nothing is ever downloaded. A missing file raises
      ``FileNotFoundError`` naming it.
    * a path to a local weights file (legacy ``.h5`` such as the Keras notop file, or a Keras 3
      ``.weights.h5``).

    ``trainable=False`` (default) freezes the network, which also runs its BatchNorm layers in
    inference mode, as the original's frozen feature extractor; gradients with respect to the
    *input image* (needed by the attack) still flow. ``input_shape`` must be at least 75x75.
    """
    shape = tuple(input_shape)
    if weights is None:
        weights_path = None
    elif isinstance(weights, str) and weights == "imagenet":
        weights_path = keras_weights_cache_path(INCEPTION_V3_NOTOP_WEIGHTS)
        if not os.path.isfile(weights_path):
            raise FileNotFoundError(
                f"ImageNet weights for InceptionV3 not found at {weights_path!r}. This library never "
                f"downloads weights at run time. Put the file {INCEPTION_V3_NOTOP_WEIGHTS} there (e.g. "
                f"by running keras.applications.InceptionV3(weights='imagenet', include_top=False) "
                f"once on a machine with internet access, which caches it in ~/.keras/models/, and "
                f"copying it; set KERAS_HOME to use another cache directory), or pass the path of a "
                f"local weights file as weights=..."
            )
    elif isinstance(weights, (str, os.PathLike)):
        weights_path = os.fspath(weights)
        if not os.path.isfile(weights_path):
            raise FileNotFoundError(f"InceptionV3 weights file not found: {weights_path!r}")
        if not weights_path.endswith((".h5", ".hdf5")):
            raise ValueError(
                f"weights must be None, 'imagenet' or a path to a .h5 / .weights.h5 file, got {weights_path!r}"
            )
    else:
        raise ValueError(f"weights must be None, 'imagenet' or a file path, got {weights!r}")

    base = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=shape, pooling="avg")
    if weights_path is not None:
        base.load_weights(weights_path)
    model = keras.Model(base.inputs, base.outputs, name=name)
    model.trainable = trainable
    return model

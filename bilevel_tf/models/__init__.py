"""Keras 3 model factories for the experiments of Mehra & Hamm (ACML 2021).

Every architecture follows the original TF1 code (``hammlab/bilevel-penalty``) layer for layer,
with the paper's reported parameter counts checked in ``tests/test_models.py``:

===========================  ==========================================  ====================
factory                      used for                                    parameters (default)
===========================  ==========================================  ====================
``mnist_cnn``                MNIST denoising (lower level)               1,389,578
``cifar10_cnn``              CIFAR-10 denoising (lower level)            1,172,410
``svhn_cnn``                 SVHN denoising (lower level, grey 32x32)    1,340,650
``logistic_regression``      small-scale denoising, poisoning            7,850 / 7,840 no bias
``mlp``                      PBGD hyper-cleaning 784-300-10, benchmarks  238,510 (784-300-10)
``omniglot_encoder``         few-shot Omniglot representation (upper)    111,424 trainable
``miniimagenet_resnet``      few-shot Mini-ImageNet representation       3,543,424 trainable
``CosineClassifier``         few-shot lower level, one head per task     (d + 1) * n_way / task
``inception_v3_features``    clean-label poisoning feature extractor     21,802,784 (total)
``softmax_layer``            clean-label lower level (on 2048-d features) 4,098 (2 classes)
===========================  ==========================================  ====================

Differences from the original, on purpose:

* **Logits, not probabilities.** The original Keras models end with ``Activation('softmax')``
  (cleverhans' ``KerasModelWrapper.get_logits`` then recovered the pre-softmax tensor). Here
  every classifier ends with a linear ``Dense(num_classes)``: the library computes
  cross-entropies from logits (``from_logits=True``), which is numerically safer and is the
  same math. Apply ``keras.activations.softmax`` yourself for probabilities.
* **Tiny inputs.** The real-data defaults reproduce the original exactly. So that the same
  factories run on the offline 8x8 ``load_digits`` demo data, the CNN factories take
  ``adapt_to_small_inputs=True``: any layer whose original ``'valid'`` padding would leave a
  spatial side smaller than 1 (a 5x5 valid conv on a 2x2 map, a 2x2 valid max-pool on a 1x1
  map) switches to ``'same'`` padding instead. Layers whose original padding fits are never
  changed, so for the real input sizes (28x28, 32x32, 84x84) nothing differs from the original.
  With ``adapt_to_small_inputs=False`` a too-small input raises ``ValueError``.

All factories use channels-last images and return uncompiled Keras models; Dropout and
BatchNormalization follow Keras' ``training`` argument (pass ``training=True`` in the lower-level
loss to reproduce the original, which always ran its losses in training mode).

The package's modules: ``convnets`` (the denoising CNNs), ``vector`` (logistic regression, MLP, softmax
layer), ``few_shot`` (the few-shot representations, the cosine heads and the per-task batch-norm wrapper
``taskwise_encoder``), ``inception`` (InceptionV3 features and the Keras weights cache) and ``_shapes``
(input checks and the padding bookkeeping of the small-input adaptation). Every name is importable from
``bilevel_tf.models`` directly; :func:`get_model` builds any factory by its name.
"""

from __future__ import annotations

from typing import Callable, Dict

import keras

from .convnets import cifar10_cnn, mnist_cnn, svhn_cnn
from .few_shot import (
    CosineClassifier,
    TaskBatchNorm,
    cosine_logits,
    miniimagenet_resnet,
    omniglot_encoder,
    taskwise_encoder,
)
from .inception import INCEPTION_V3_NOTOP_WEIGHTS, inception_v3_features, keras_weights_cache_path
from .vector import logistic_regression, mlp, softmax_layer

__all__ = [
    "mnist_cnn",
    "cifar10_cnn",
    "svhn_cnn",
    "logistic_regression",
    "mlp",
    "softmax_layer",
    "omniglot_encoder",
    "miniimagenet_resnet",
    "cosine_logits",
    "CosineClassifier",
    "TaskBatchNorm",
    "taskwise_encoder",
    "inception_v3_features",
    "INCEPTION_V3_NOTOP_WEIGHTS",
    "keras_weights_cache_path",
    "MODEL_FACTORIES",
    "get_model",
]

# Every function that builds a keras.Model from scratch (CosineClassifier is a layer, taskwise_encoder wraps
# an existing encoder: neither is a factory).
MODEL_FACTORIES: Dict[str, Callable[..., keras.Model]] = {
    "mnist_cnn": mnist_cnn,
    "cifar10_cnn": cifar10_cnn,
    "svhn_cnn": svhn_cnn,
    "logistic_regression": logistic_regression,
    "mlp": mlp,
    "softmax_layer": softmax_layer,
    "omniglot_encoder": omniglot_encoder,
    "miniimagenet_resnet": miniimagenet_resnet,
    "inception_v3_features": inception_v3_features,
}


def get_model(name: str, *args, **kwargs) -> keras.Model:
    """Build the model registered under ``name`` (a key of :data:`MODEL_FACTORIES`): ``args`` and ``kwargs``
    go to its factory unchanged, so ``get_model("mnist_cnn", shape, 10)`` is ``mnist_cnn(shape, 10)``.

    >>> get_model("mnist_cnn", input_shape=(8, 8, 1)).output_shape
    (None, 10)

    Raises ``ValueError`` listing the valid names for an unknown ``name``.
    """
    try:
        factory = MODEL_FACTORIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model name {name!r}; valid names: {', '.join(sorted(MODEL_FACTORIES))}") from None
    return factory(*args, **kwargs)

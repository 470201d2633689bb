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
"""
from __future__ import annotations

import os
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import keras
import tensorflow as tf

__all__ = [
    "mnist_cnn",
    "cifar10_cnn",
    "svhn_cnn",
    "logistic_regression",
    "mlp",
    "omniglot_encoder",
    "miniimagenet_resnet",
    "cosine_logits",
    "CosineClassifier",
    "inception_v3_features",
    "INCEPTION_V3_NOTOP_WEIGHTS",
    "keras_weights_cache_path",
    "MODEL_FACTORIES",
    "get_model",
]

Shape = Tuple[Optional[int], ...]
_HW = Tuple[Optional[int], Optional[int]]


# ---------------------------------------------------------------------------------------------
# helpers: static spatial-size bookkeeping for the small-input adaptation
# ---------------------------------------------------------------------------------------------
def _image_shape(input_shape: Sequence[Optional[int]], name: str = "input_shape") -> Shape:
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(
            f"{name} must be (height, width, channels) (channels-last), got {input_shape!r}")
    for s in shape:
        if s is not None and (not isinstance(s, int) or s < 1):
            raise ValueError(f"{name} must contain positive integers or None, got {input_shape!r}")
    if shape[2] is None:
        raise ValueError(f"{name}: the number of channels must be known, got {input_shape!r}")
    return shape


def _check_num_classes(num_classes: int) -> None:
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")


def _conv_padding(hw: _HW, kernel: int, padding: str, adapt: bool, where: str) -> Tuple[str, _HW]:
    """Padding to use for a stride-1 ``kernel x kernel`` conv on a map of size ``hw``."""
    if padding == "valid" and any(s is not None and s < kernel for s in hw):
        if not adapt:
            raise ValueError(
                f"input too small for the original architecture: {where} ({kernel}x{kernel} "
                f"'valid' conv) sees a {hw} map; pass adapt_to_small_inputs=True to use 'same' "
                f"padding there")
        padding = "same"
    if padding == "same":
        return padding, hw
    return padding, tuple(None if s is None else s - kernel + 1 for s in hw)  # type: ignore[return-value]


def _pool_padding(hw: _HW, padding: str, adapt: bool, where: str, pool: int = 2) -> Tuple[str, _HW]:
    """Padding to use for a ``pool x pool`` / stride ``pool`` max-pool on a map of size ``hw``."""
    if padding == "valid" and any(s is not None and s < pool for s in hw):
        if not adapt:
            raise ValueError(
                f"input too small for the original architecture: {where} ({pool}x{pool} 'valid' "
                f"max-pool) sees a {hw} map; pass adapt_to_small_inputs=True to use 'same' "
                f"padding there")
        padding = "same"
    if padding == "same":
        return padding, tuple(None if s is None else -(-s // pool) for s in hw)  # type: ignore[return-value]
    return padding, tuple(None if s is None else s // pool for s in hw)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# denoising CNNs
# ---------------------------------------------------------------------------------------------
def mnist_cnn(input_shape: Sequence[Optional[int]] = (28, 28, 1), num_classes: int = 10, *,
              adapt_to_small_inputs: bool = True, name: str = "mnist_cnn") -> keras.Model:
    """MNIST denoising CNN (original ``MNIST_keras_model.mnist_model``; paper Table 2 / supp E.2).

    Conv(64, 5x5, relu, valid) - MaxPool 2 - Dropout .25 - Conv(128, 5x5, relu, valid) -
    MaxPool 2 - Dropout .25 - Flatten - Dense 512 relu - Dropout .5 - Dense 256 relu -
    Dropout .5 - Dense(num_classes) **logits** (the original ends with a softmax).

    Shapes for 28x28x1: 28 -> conv 24 -> pool 12 -> conv 8 -> pool 4; Flatten 4*4*128 = 2048.
    Parameters: 1,664 + 204,928 + 1,049,088 + 131,328 + 2,570 = **1,389,578** (the paper's
    "1.4M lower-level variables" for MNIST, supp Table 7).

    On an 8x8 input (``adapt_to_small_inputs=True``): 8 -> conv 4 -> pool 2 -> conv 'same' 2 ->
    pool 1, Flatten 128.
    """
    shape = _image_shape(input_shape)
    _check_num_classes(num_classes)
    hw: _HW = (shape[0], shape[1])
    inputs = keras.Input(shape=shape, name="image")
    x = inputs
    for i, filters in enumerate((64, 128), start=1):
        pad, hw = _conv_padding(hw, 5, "valid", adapt_to_small_inputs, f"conv{i}")
        x = keras.layers.Conv2D(filters, 5, padding=pad, activation="relu", name=f"conv{i}")(x)
        pad, hw = _pool_padding(hw, "valid", adapt_to_small_inputs, f"pool{i}")
        x = keras.layers.MaxPooling2D(2, padding=pad, name=f"pool{i}")(x)
        x = keras.layers.Dropout(0.25, name=f"dropout{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(512, activation="relu", name="dense1")(x)
    x = keras.layers.Dropout(0.5, name="dropout3")(x)
    x = keras.layers.Dense(256, activation="relu", name="dense2")(x)
    x = keras.layers.Dropout(0.5, name="dropout4")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)


def cifar10_cnn(input_shape: Sequence[Optional[int]] = (32, 32, 3), num_classes: int = 10, *,
                adapt_to_small_inputs: bool = True, name: str = "cifar10_cnn") -> keras.Model:
    """CIFAR-10 denoising CNN (original ``cifar10_keras_model.CIFAR``; the paper's "Alexnet").

    Three blocks [Conv(f, 3x3, relu, same), Conv(f, 3x3, relu, valid)] - MaxPool 2 - Dropout .25
    with f = 48, 96, 192, then Flatten - Dense 512 relu - Dropout .5 - Dense 256 relu -
    Dropout .5 - Dense(num_classes) **logits** (the original ends with a softmax).

    Shapes for 32x32x3: 32 -> 30 -> 15 -> 13 -> 6 -> 4 -> 2; Flatten 2*2*192 = 768.
    Parameters: 1,344 + 20,784 + 41,568 + 83,040 + 166,080 + 331,968 (convs)
    + 393,728 + 131,328 + 2,570 (dense) = **1,172,410** (paper supp Table 7: 1.2M).

    On an 8x8 input the 'valid' convs/pools that would collapse the map use 'same':
    8 -> 8 -> 6 -> 3 -> 3 -> 1 -> pool 'same' 1 -> 1 -> conv 'same' 1 -> pool 'same' 1.
    """
    shape = _image_shape(input_shape)
    _check_num_classes(num_classes)
    hw: _HW = (shape[0], shape[1])
    inputs = keras.Input(shape=shape, name="image")
    x = inputs
    for i, filters in enumerate((48, 96, 192), start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                name=f"block{i}_conv1")(x)
        pad, hw = _conv_padding(hw, 3, "valid", adapt_to_small_inputs, f"block{i}_conv2")
        x = keras.layers.Conv2D(filters, 3, padding=pad, activation="relu",
                                name=f"block{i}_conv2")(x)
        pad, hw = _pool_padding(hw, "valid", adapt_to_small_inputs, f"block{i}_pool")
        x = keras.layers.MaxPooling2D(2, padding=pad, name=f"block{i}_pool")(x)
        x = keras.layers.Dropout(0.25, name=f"block{i}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(512, activation="relu", name="dense1")(x)
    x = keras.layers.Dropout(0.5, name="dropout1")(x)
    x = keras.layers.Dense(256, activation="relu", name="dense2")(x)
    x = keras.layers.Dropout(0.5, name="dropout2")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)


def svhn_cnn(input_shape: Sequence[Optional[int]] = (32, 32, 1), num_classes: int = 10, *,
             adapt_to_small_inputs: bool = True, name: str = "svhn_cnn") -> keras.Model:
    """SVHN denoising CNN (original ``svhn_keras_model.svhn_model``, on grey 32x32x1 images).

    Three blocks [Conv(f, 3x3, relu, same), Conv(f, 3x3, relu, same)] - MaxPool 2 - Dropout .3
    with f = 32, 64, 128, then Flatten - Dense 512 relu - Dropout .3 - Dense(num_classes)
    **logits** (the original ends with a softmax).

    Shapes for 32x32x1: 32 -> 16 -> 8 -> 4; Flatten 4*4*128 = 2048.
    Parameters: 320 + 9,248 + 18,496 + 36,928 + 73,856 + 147,584 (convs) + 1,049,088 + 5,130
    (dense) = **1,340,650** (paper supp Table 7: 1.3M). For RGB input (32x32x3): 1,341,226.

    All convs are 'same', so 8x8 inputs work unchanged (8 -> 4 -> 2 -> 1, Flatten 128); only the
    pools of maps smaller than 2 would switch to 'same'.
    """
    shape = _image_shape(input_shape)
    _check_num_classes(num_classes)
    hw: _HW = (shape[0], shape[1])
    inputs = keras.Input(shape=shape, name="image")
    x = inputs
    for i, filters in enumerate((32, 64, 128), start=1):
        for j in (1, 2):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                    name=f"block{i}_conv{j}")(x)
        pad, hw = _pool_padding(hw, "valid", adapt_to_small_inputs, f"block{i}_pool")
        x = keras.layers.MaxPooling2D(2, padding=pad, name=f"block{i}_pool")(x)
        x = keras.layers.Dropout(0.3, name=f"block{i}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(512, activation="relu", name="dense1")(x)
    x = keras.layers.Dropout(0.3, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)


# ---------------------------------------------------------------------------------------------
# linear / MLP models
# ---------------------------------------------------------------------------------------------
def _vector_input(input_dim: Union[int, Sequence[int]]) -> Tuple[keras.KerasTensor, keras.KerasTensor]:
    if isinstance(input_dim, int):
        if input_dim < 1:
            raise ValueError(f"input_dim must be a positive integer, got {input_dim!r}")
        inputs = keras.Input(shape=(input_dim,), name="x")
        return inputs, inputs
    shape = tuple(input_dim)
    if not shape or any(not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"input_dim must be an int or a shape tuple of positive ints, got {input_dim!r}")
    inputs = keras.Input(shape=shape, name="x")
    return inputs, keras.layers.Flatten(name="flatten")(inputs)


def logistic_regression(input_dim: Union[int, Sequence[int]] = 784, num_classes: int = 10,
                        use_bias: bool = True, *, name: str = "logistic_regression") -> keras.Model:
    """Multinomial logistic (softmax) regression: Flatten + Dense(num_classes) **logits**.

    * ``use_bias=True``: the small-scale MNIST denoising model (original
      ``mnist_model_logistic_reg`` = ``Dense(10, softmax)``): 784*10 + 10 = **7,850** parameters.
    * ``use_bias=False``: the poisoning runners' lower level ``W = tf.get_variable('W', (784, 10))``
      (glorot-uniform, no bias, logits ``x W``): **7,840** parameters (the paper's "8K" lower-level
      variables for MNIST poisoning, supp Table 7). The kernel is ``model.layers[-1].kernel``.

    ``input_dim`` is an int (flat inputs) or an input shape such as ``(28, 28, 1)`` or ``(8, 8)``
    (flattened first).
    """
    _check_num_classes(num_classes)
    inputs, x = _vector_input(input_dim)
    logits = keras.layers.Dense(num_classes, use_bias=use_bias,
                                kernel_initializer="glorot_uniform", name="logits")(x)
    return keras.Model(inputs, logits, name=name)


def mlp(input_dim: Union[int, Sequence[int]] = 784, hidden: Union[int, Sequence[int]] = (300,),
        activation: Union[str, Callable] = "sigmoid", num_classes: int = 10, *,
        dropout: float = 0.0, name: str = "mlp") -> keras.Model:
    """Fully connected network: [Dense(h, activation) (+ Dropout)] per hidden size, Dense logits.

    Defaults give the PBGD hyper-cleaning MLP 784-300(sigmoid)-10: 235,500 + 3,010 =
    **238,510** parameters. ``mlp(784, (1024, 1024), 'relu')`` is the 784-1024-1024-10 benchmark
    MLP: 803,840 + 1,049,600 + 10,250 = **1,863,690** parameters. ``dropout`` (rate, default 0)
    is applied after every hidden layer when positive.
    """
    _check_num_classes(num_classes)
    sizes = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    if any(not isinstance(h, int) or h < 1 for h in sizes):
        raise ValueError(f"hidden must be a positive int or a sequence of them, got {hidden!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    inputs, x = _vector_input(input_dim)
    for i, units in enumerate(sizes, start=1):
        x = keras.layers.Dense(units, activation=activation, name=f"hidden{i}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"dropout{i}")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)


# ---------------------------------------------------------------------------------------------
# few-shot representations (upper level)
# ---------------------------------------------------------------------------------------------
def _tcl_batch_norm(name: str) -> keras.layers.BatchNormalization:
    """``tf.contrib.layers.batch_norm`` defaults: beta only (scale=False), decay .999, eps 1e-3."""
    return keras.layers.BatchNormalization(momentum=0.999, epsilon=1e-3, center=True, scale=False,
                                           name=name)


def omniglot_encoder(input_shape: Sequence[Optional[int]] = (28, 28, 1), filters: int = 64, *,
                     adapt_to_small_inputs: bool = True, name: str = "omniglot_encoder") -> keras.Model:
    """Omniglot few-shot representation (original ``encoder`` / ``conv_block_new``; paper Sec. 3.3).

    4 x [Conv(filters, 3x3, SAME, glorot-uniform, no bias) - BatchNorm (beta only) - ReLU (not
    after the 4th conv) - MaxPool 2x2 stride 2 VALID] - Flatten. ``tcl.conv2d`` with a
    ``normalizer_fn`` has no bias and ``tcl.batch_norm`` has ``scale=False`` by default, so neither
    does this model. 28 -> 14 -> 7 -> 3 -> 1: a **64-d** feature for 28x28 images.

    Parameters (filters=64): 576 + 3 * 36,864 (kernels) + 4 * 64 (BN beta) = **111,424**
    trainable (the paper's "111K" Omniglot upper-level variables), plus 512 non-trainable BN
    moving statistics. The original always ran BatchNorm in training mode (``is_training``
    default True, moving averages never updated): call the model with ``training=True`` to match.

    On 8x8 inputs the last pool (on a 1x1 map) uses 'same': 8 -> 4 -> 2 -> 1 -> 1, still
    ``filters``-d.
    """
    shape = _image_shape(input_shape)
    if not isinstance(filters, int) or filters < 1:
        raise ValueError(f"filters must be a positive integer, got {filters!r}")
    hw: _HW = (shape[0], shape[1])
    inputs = keras.Input(shape=shape, name="image")
    x = inputs
    for i in range(1, 5):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                kernel_initializer="glorot_uniform", name=f"conv_{i}")(x)
        x = _tcl_batch_norm(f"conv_{i}_bn")(x)
        if i != 4:
            x = keras.layers.ReLU(name=f"conv_{i}_relu")(x)
        pad, hw = _pool_padding(hw, "valid", adapt_to_small_inputs, f"conv_{i}_pool")
        x = keras.layers.MaxPooling2D(2, strides=2, padding=pad, name=f"conv_{i}_pool")(x)
    features = keras.layers.Flatten(name="features")(x)
    return keras.Model(inputs, features, name=name)


def miniimagenet_resnet(input_shape: Sequence[Optional[int]] = (84, 84, 3), *,
                        filters: Sequence[int] = (64, 96, 128, 256), embedding_dim: int = 384,
                        hidden_dim: int = 2048, dropout: float = 0.0,
                        name: str = "miniimagenet_resnet") -> keras.Model:
    """Mini-ImageNet few-shot representation (original ``make_resnet_filter``; paper Sec. 3.3).

    4 residual blocks with (64, 96, 128, 256) filters, each:
    skip = Conv 1x1 (bias, no activation); body = 3 x [Conv 3x3 SAME (no bias) - BatchNorm
    (beta only, ``tcl.batch_norm`` defaults) - LeakyReLU(0.1)]; ``skip + body``; MaxPool 2x2
    SAME (84 -> 42 -> 21 -> 11 -> 6). Then Conv 1x1 ``hidden_dim`` (=2048) ReLU, average pooling
    over the whole map (the original's 6x6 VALID avg-pool, written as global average pooling so
    other input sizes work too), and a linear ``embedding_dim`` (=384) projection (the original's
    1x1 conv on the 1x1 map, i.e. a Dense layer) -> **384-d** features.

    Parameters (defaults): 75,904 + 227,712 + 418,304 + 1,508,352 (blocks) + 526,336 (1x1 2048)
    + 786,816 (384 projection) = **3,543,424** trainable, plus 3,264 non-trainable BN moving
    statistics. The paper's supp Table 7 says "3.8M" upper-level variables; the original code
    gives 3.54M (BN layers have no gamma, body convs no bias).

    Glorot-uniform kernels and zero biases, as ``tcl.conv2d``. ``dropout`` (a Keras drop *rate*)
    is applied after each residual block's pooling when positive; the original code has no
    dropout (the paper text mentions "dropout 0.9", presumably a TF1 keep probability, i.e. rate
    0.1), so the default 0.0 reproduces the code. The original ran BatchNorm in training mode
    always; call with ``training=True`` to match. All pools are SAME, so any input size >= 1
    works (8x8: 8 -> 4 -> 2 -> 1 -> 1).
    """
    shape = _image_shape(input_shape)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    filters = tuple(filters)
    if not filters or any(not isinstance(f, int) or f < 1 for f in filters):
        raise ValueError(f"filters must be a non-empty sequence of positive ints, got {filters!r}")
    inputs = keras.Input(shape=shape, name="image")
    x = inputs
    for i, n_filters in enumerate(filters, start=1):
        block = f"res_{i}"
        skip = keras.layers.Conv2D(n_filters, 1, padding="same", name=f"{block}_skip")(x)
        out = x
        for j in range(3):
            out = keras.layers.Conv2D(n_filters, 3, padding="same", use_bias=False,
                                      name=f"{block}_conv_{j}")(out)
            out = _tcl_batch_norm(f"{block}_conv_{j}_bn")(out)
            out = keras.layers.LeakyReLU(negative_slope=0.1, name=f"{block}_conv_{j}_lrelu")(out)
        x = keras.layers.Add(name=f"{block}_add")([skip, out])
        x = keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"{block}_pool")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"{block}_dropout")(x)
    x = keras.layers.Conv2D(hidden_dim, 1, activation="relu", name="conv_hidden")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    features = keras.layers.Dense(embedding_dim, name="features")(x)
    return keras.Model(inputs, features, name=name)


# ---------------------------------------------------------------------------------------------
# few-shot lower level: cosine-normalised softmax regression, one head per task
# ---------------------------------------------------------------------------------------------
def cosine_logits(features: tf.Tensor, W: tf.Tensor, b: tf.Tensor, scale: float = 10.0,
                  eps: float = 1e-3) -> tf.Tensor:
    """The original ``top_layer`` logits, batched over any leading task dimensions.

    ``logits = scale * (x W + eps * b) / (sqrt(||x||^2 + eps^2) * sqrt(||W_col||^2 + b^2))``,
    i.e. the cosine between the augmented vectors ``[x, eps]`` and ``[W_col, b]`` times ``scale``
    (original: ``scale = 10``, ``wat = eps = 0.001``).

    Shapes: ``features`` (..., n, d), ``W`` (..., d, K), ``b`` (..., K) -> (..., n, K).
    """
    x = tf.convert_to_tensor(features)
    W = tf.convert_to_tensor(W, dtype=x.dtype)
    b = tf.convert_to_tensor(b, dtype=x.dtype)
    x_norm = tf.sqrt(tf.reduce_sum(tf.square(x), axis=-1, keepdims=True) + eps ** 2)  # (..., n, 1)
    w_norm = tf.sqrt(tf.reduce_sum(tf.square(W), axis=-2) + tf.square(b))  # (..., K)
    numerator = tf.matmul(x, W) + eps * tf.expand_dims(b, -2)  # (..., n, K)
    return scale * numerator / (x_norm * tf.expand_dims(w_norm, -2))


class CosineClassifier(keras.layers.Layer):
    """Per-task cosine-normalised linear heads: the few-shot lower level (original ``top_layer``).

    Holds one head per task of a meta-batch as batched weights ``W`` (num_tasks, feature_dim,
    n_way), initialised N(0, 0.01), and ``b`` (num_tasks, n_way), initialised 0.001, exactly the
    original's ``W_top`` / ``b_top`` per task. ``call(features)`` maps (num_tasks, n, d) features
    to (num_tasks, n, n_way) logits with :func:`cosine_logits`; with ``num_tasks == 1`` a 2-D
    (n, d) input gives (n, n_way).

    ``reset()`` re-draws ``W`` and refills ``b`` in place with TF ops only (a Keras
    ``SeedGenerator`` supplies fresh seeds), so it can run inside a ``tf.function`` at the start
    of every meta-iteration, as the original's ``reset_v_func``. Resetting the optimizer slots
    of the lower-level optimizer is the caller's business.

    Parameters per task: (feature_dim + 1) * n_way, e.g. 64*20 + 20 = 1,300 for Omniglot 20-way
    (x 30 tasks = the paper's "39K" lower-level variables) and 384*5 + 5 = 1,925 for Mini-ImageNet.
    """

    def __init__(self, n_way: int, num_tasks: int = 1, feature_dim: Optional[int] = None, *,
                 scale: float = 10.0, eps: float = 1e-3, w_stddev: float = 0.01,
                 b_init: float = 1e-3, seed: Optional[int] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        for arg, value in (("n_way", n_way), ("num_tasks", num_tasks)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} must be a positive integer, got {value!r}")
        if feature_dim is not None and (not isinstance(feature_dim, int) or feature_dim < 1):
            raise ValueError(f"feature_dim must be a positive integer or None, got {feature_dim!r}")
        self.n_way = n_way
        self.num_tasks = num_tasks
        self.feature_dim = feature_dim
        self.scale = float(scale)
        self.eps = float(eps)
        self.w_stddev = float(w_stddev)
        self.b_init = float(b_init)
        self.seed = seed
        self._seed_generator = keras.random.SeedGenerator(seed, name="reset_seed")
        if feature_dim is not None:
            self.build((num_tasks, None, feature_dim))

    def build(self, input_shape) -> None:
        d = input_shape[-1]
        if d is None:
            raise ValueError("CosineClassifier needs a known feature dimension (last axis)")
        if self.feature_dim is not None and d != self.feature_dim:
            raise ValueError(f"features have dimension {d}, expected feature_dim={self.feature_dim}")
        self.feature_dim = int(d)
        w_seed = None if self.seed is None else self.seed + 1
        self.W = self.add_weight(
            name="W", shape=(self.num_tasks, self.feature_dim, self.n_way),
            initializer=keras.initializers.RandomNormal(stddev=self.w_stddev, seed=w_seed))
        self.b = self.add_weight(name="b", shape=(self.num_tasks, self.n_way),
                                 initializer=keras.initializers.Constant(self.b_init))
        self.built = True

    def call(self, features):
        rank = len(features.shape)
        if rank == 2:
            if self.num_tasks != 1:
                raise ValueError(
                    f"2-D features need num_tasks == 1 (got num_tasks={self.num_tasks}); pass "
                    f"(num_tasks, n, d) features")
            return cosine_logits(features, self.W[0], self.b[0], self.scale, self.eps)
        if rank != 3:
            raise ValueError(f"features must have shape (num_tasks, n, d), got {features.shape}")
        return cosine_logits(features, self.W, self.b, self.scale, self.eps)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.n_way,)

    def reset(self) -> None:
        """Re-initialise every task's head in place (``W`` ~ N(0, w_stddev), ``b`` = b_init)."""
        if not self.built:
            return
        self.W.assign(keras.random.normal(tuple(self.W.shape), stddev=self.w_stddev,
                                          dtype=self.W.dtype, seed=self._seed_generator))
        self.b.assign(tf.fill(tuple(self.b.shape), tf.constant(self.b_init, dtype=self.b.dtype)))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(n_way=self.n_way, num_tasks=self.num_tasks, feature_dim=self.feature_dim,
                      scale=self.scale, eps=self.eps, w_stddev=self.w_stddev, b_init=self.b_init,
                      seed=self.seed)
        return config


# ---------------------------------------------------------------------------------------------
# clean-label poisoning: frozen InceptionV3 features
# ---------------------------------------------------------------------------------------------
INCEPTION_V3_NOTOP_WEIGHTS = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"


def keras_weights_cache_path(filename: str = INCEPTION_V3_NOTOP_WEIGHTS) -> str:
    """Where ``keras.utils.get_file`` caches ``filename``: ``$KERAS_HOME/models`` (default
    ``~/.keras/models``)."""
    cache_dir = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(cache_dir, "models", filename)


def inception_v3_features(weights: Union[None, str, os.PathLike] = None,
                          input_shape: Sequence[int] = (299, 299, 3), *, trainable: bool = False,
                          name: str = "inception_v3_features") -> keras.Model:
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
                f"local weights file as weights=...")
    elif isinstance(weights, (str, os.PathLike)):
        weights_path = os.fspath(weights)
        if not os.path.isfile(weights_path):
            raise FileNotFoundError(f"InceptionV3 weights file not found: {weights_path!r}")
        if not weights_path.endswith((".h5", ".hdf5")):
            raise ValueError(
                f"weights must be None, 'imagenet' or a path to a .h5 / .weights.h5 file, got "
                f"{weights_path!r}")
    else:
        raise ValueError(f"weights must be None, 'imagenet' or a file path, got {weights!r}")

    base = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=shape,
                                          pooling="avg")
    if weights_path is not None:
        base.load_weights(weights_path)
    model = keras.Model(base.inputs, base.outputs, name=name)
    model.trainable = trainable
    return model


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------
MODEL_FACTORIES: Dict[str, Callable[..., keras.Model]] = {
    "mnist_cnn": mnist_cnn,
    "cifar10_cnn": cifar10_cnn,
    "svhn_cnn": svhn_cnn,
    "logistic_regression": logistic_regression,
    "mlp": mlp,
    "omniglot_encoder": omniglot_encoder,
    "miniimagenet_resnet": miniimagenet_resnet,
    "inception_v3_features": inception_v3_features,
}


def get_model(name: str, **kwargs) -> keras.Model:
    """Build the model registered under ``name`` with ``kwargs`` passed to its factory.

    >>> get_model("mnist_cnn", input_shape=(8, 8, 1)).output_shape
    (None, 10)

    Raises ``ValueError`` listing the valid names for an unknown ``name``.
    """
    try:
        factory = MODEL_FACTORIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown model name {name!r}; valid names: {', '.join(sorted(MODEL_FACTORIES))}"
        ) from None
    return factory(**kwargs)

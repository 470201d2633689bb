"""The denoising CNNs (lower level of importance learning): MNIST, CIFAR-10 and SVHN.

Layer for layer the original TF1 Keras models, ending in logits; see :mod:`bilevel_tf.models` for the
small-input adaptation (``adapt_to_small_inputs``).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import keras

from ._shapes import _HW, _check_num_classes, _conv_padding, _image_shape, _pool_padding


def _image_input(input_shape: Sequence[Optional[int]], num_classes: int) -> Tuple[keras.KerasTensor, _HW]:
    """The checked image input and its spatial size."""
    shape = _image_shape(input_shape)
    _check_num_classes(num_classes)
    return keras.Input(shape=shape, name="image"), (shape[0], shape[1])


def _pool_and_dropout(x, hw: _HW, adapt: bool, pool_name: str, rate: float, dropout_name: str):
    """MaxPool 2 ('valid', or 'same' on a map too small for it) then Dropout: every block's end."""
    pad, hw = _pool_padding(hw, "valid", adapt, pool_name)
    x = keras.layers.MaxPooling2D(2, padding=pad, name=pool_name)(x)
    return keras.layers.Dropout(rate, name=dropout_name)(x), hw


def _dense_head(x, num_classes: int, dropout_names: Tuple[str, str]):
    """Flatten - Dense 512 relu - Dropout .5 - Dense 256 relu - Dropout .5 - Dense(num_classes) logits: the MNIST
    and CIFAR-10 CNNs' classifier (their dropout layers are named differently, as in the original models)."""
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(512, activation="relu", name="dense1")(x)
    x = keras.layers.Dropout(0.5, name=dropout_names[0])(x)
    x = keras.layers.Dense(256, activation="relu", name="dense2")(x)
    x = keras.layers.Dropout(0.5, name=dropout_names[1])(x)
    return keras.layers.Dense(num_classes, name="logits")(x)


def mnist_cnn(
    input_shape: Sequence[Optional[int]] = (28, 28, 1),
    num_classes: int = 10,
    *,
    adapt_to_small_inputs: bool = True,
    name: str = "mnist_cnn",
) -> keras.Model:
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
    inputs, hw = _image_input(input_shape, num_classes)
    x = inputs
    for i, filters in enumerate((64, 128), start=1):
        pad, hw = _conv_padding(hw, 5, "valid", adapt_to_small_inputs, f"conv{i}")
        x = keras.layers.Conv2D(filters, 5, padding=pad, activation="relu", name=f"conv{i}")(x)
        x, hw = _pool_and_dropout(x, hw, adapt_to_small_inputs, f"pool{i}", 0.25, f"dropout{i}")
    return keras.Model(inputs, _dense_head(x, num_classes, ("dropout3", "dropout4")), name=name)


def cifar10_cnn(
    input_shape: Sequence[Optional[int]] = (32, 32, 3),
    num_classes: int = 10,
    *,
    adapt_to_small_inputs: bool = True,
    name: str = "cifar10_cnn",
) -> keras.Model:
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
    inputs, hw = _image_input(input_shape, num_classes)
    x = inputs
    for i, filters in enumerate((48, 96, 192), start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{i}_conv1")(x)
        pad, hw = _conv_padding(hw, 3, "valid", adapt_to_small_inputs, f"block{i}_conv2")
        x = keras.layers.Conv2D(filters, 3, padding=pad, activation="relu", name=f"block{i}_conv2")(x)
        x, hw = _pool_and_dropout(x, hw, adapt_to_small_inputs, f"block{i}_pool", 0.25, f"block{i}_dropout")
    return keras.Model(inputs, _dense_head(x, num_classes, ("dropout1", "dropout2")), name=name)


def svhn_cnn(
    input_shape: Sequence[Optional[int]] = (32, 32, 1),
    num_classes: int = 10,
    *,
    adapt_to_small_inputs: bool = True,
    name: str = "svhn_cnn",
) -> keras.Model:
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
    inputs, hw = _image_input(input_shape, num_classes)
    x = inputs
    for i, filters in enumerate((32, 64, 128), start=1):
        for j in (1, 2):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{i}_conv{j}")(x)
        x, hw = _pool_and_dropout(x, hw, adapt_to_small_inputs, f"block{i}_pool", 0.3, f"block{i}_dropout")
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(512, activation="relu", name="dense1")(x)
    x = keras.layers.Dropout(0.3, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)

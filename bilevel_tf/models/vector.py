"""Models on flat (or flattened) inputs: logistic regression, MLPs, the softmax layer on fixed features."""

from __future__ import annotations

from typing import Callable, Sequence, Tuple, Union

import keras

from ._shapes import _check_num_classes


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


def logistic_regression(
    input_dim: Union[int, Sequence[int]] = 784,
    num_classes: int = 10,
    use_bias: bool = True,
    *,
    name: str = "logistic_regression",
) -> keras.Model:
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
    logits = keras.layers.Dense(num_classes, use_bias=use_bias, kernel_initializer="glorot_uniform", name="logits")(x)
    return keras.Model(inputs, logits, name=name)


def mlp(
    input_dim: Union[int, Sequence[int]] = 784,
    hidden: Union[int, Sequence[int]] = (300,),
    activation: Union[str, Callable] = "sigmoid",
    num_classes: int = 10,
    *,
    dropout: float = 0.0,
    name: str = "mlp",
) -> keras.Model:
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


def softmax_layer(feature_dim: int = 2048, num_classes: int = 2) -> keras.Model:
    """The clean-label lower level: one dense layer on the features, W ~ N(0, 0.01), b = 0 (original)."""
    inputs = keras.Input((feature_dim,))
    logits = keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
        bias_initializer="zeros",
        name="logits",
    )(inputs)
    return keras.Model(inputs, logits, name="softmax_layer")

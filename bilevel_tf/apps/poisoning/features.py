"""The clean-label attack's feature map: frozen InceptionV3 features with gradients."""

from __future__ import annotations

from typing import List, Sequence

import keras
import numpy as np
import tensorflow as tf

from bilevel_tf import datasets, models


def feature_network(args, input_shape: Sequence[int]) -> "FeatureMap":
    """The frozen InceptionV3 + global average pooling. With --random-weights the weights depend on the seed
    only, so two scripts run with the same --seed build the same network."""
    weights = None if args.random_weights else (args.weights or "imagenet")
    return FeatureMap(models.inception_v3_features(weights=weights, input_shape=tuple(input_shape)))


class FeatureMap:
    """The frozen feature extractor r(.) as two compiled functions, each traced ONCE for any batch size:
    ``features(x)`` and ``input_gradient(x, dy, target, weight)`` = grad_x [<r(x), dy> + weight ||r(x) -
    target||^2] (a vector-Jacobian product; with weight > 0 the feature-collision gradient). InceptionV3 is
    large (tracing and optimizing its backward pass costs seconds), so extraction, the consistency check, the
    bilevel attack, the baseline and the PGD reference all share these two graphs.

    The functions are not inlined into their callers and take the network's weights as inputs
    (``stateless_call``), so a call whose result is unused is a stateless op that graph optimization drops:
    the solver's tapes emit several such dead gradient calls per upper iteration."""

    def __init__(self, network: keras.Model):
        if network.trainable_variables:
            raise ValueError("FeatureMap expects a frozen network (trainable=False)")
        self.network = network
        self.weights = list(network.non_trainable_variables)
        images = tf.TensorSpec((None, *network.input_shape[1:]), tf.float32)
        feats = tf.TensorSpec((None, network.output_shape[-1]), tf.float32)
        weights = [tf.TensorSpec(v.shape, v.dtype) for v in self.weights]
        # autograph=False: no Python control flow here, and converting Keras' layer code costs seconds.
        once = dict(experimental_attributes={"_noinline": True}, autograph=False)
        self._features = tf.function(self._forward, input_signature=[images, weights], **once)
        self._input_gradient = tf.function(
            self._gradient, input_signature=[images, feats, feats, tf.TensorSpec((), tf.float32), weights], **once
        )

    def _values(self) -> List[tf.Tensor]:
        return [tf.convert_to_tensor(v) for v in self.weights]

    def _forward(self, x, weights):
        return self.network.stateless_call([], weights, [x], training=False)[0]

    def _gradient(self, x, dy, target, weight, weights):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = self._forward(x, weights)
            loss = tf.reduce_sum(y * dy) + weight * tf.reduce_sum(tf.square(y - target))
        return tape.gradient(loss, x)

    def features(self, images) -> tf.Tensor:
        return self._features(images, self._values())

    def input_gradient(self, images, dy, target, weight) -> tf.Tensor:
        return self._input_gradient(images, dy, target, weight, self._values())

    def extract(self, images: np.ndarray, batch_size: int = 100) -> np.ndarray:
        return np.concatenate(
            [
                self.features(tf.constant(images[i : i + batch_size], tf.float32)).numpy()
                for i in range(0, len(images), batch_size)
            ]
        ).astype(np.float32)

    def _vjp(self, x, dy):
        # Nothing differentiates this gradient again; stop_gradient keeps enclosing tapes from recording the
        # call, which would make them build the network's second-order graph.
        x, dy = tf.stop_gradient(x), tf.stop_gradient(dy)
        return self.input_gradient(x, dy, tf.zeros_like(dy), tf.constant(0.0))

    def cached(self, images: tf.Tensor, value: tf.Tensor) -> tf.Tensor:
        """``r(images)`` as an op that returns ``value`` (r(images) computed beforehand, e.g. once per upper
        iteration by the problem's ``lower_init``) and runs the VJP only when a gradient with respect to the
        images is requested. The T lower steps of an upper iteration then never run the network."""

        @tf.custom_gradient
        def op(x, v):
            return tf.identity(v), lambda dy: (self._vjp(x, dy), None)

        return op(images, value)

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        """Differentiable r(images) built from the two compiled functions (for callers that trace their own
        gradients, e.g. cleverhans' PGD; costs one extra forward pass per gradient)."""

        @tf.custom_gradient
        def op(x):
            def grad(dy, variables=None):  # the network is frozen: no gradients for its weights
                return self._vjp(x, dy), [None] * len(variables or [])

            return self.features(x), grad

        return op(images)


def check_features_match(feature_map: FeatureMap, images: np.ndarray, features: np.ndarray, path: str) -> None:
    """The attack differentiates through the network: stored features must come from the same weights."""
    fresh = feature_map.extract(images)
    scale = float(np.abs(features).max()) + 1e-12
    err = float(np.abs(fresh - features).max())
    if err > 1e-2 * scale:
        raise datasets.DataFormatError(
            f"features differ from this network's by {err:.3g} (scale {scale:.3g})",
            "features extracted with the same --weights / --random-weights and --seed",
            path,
        )

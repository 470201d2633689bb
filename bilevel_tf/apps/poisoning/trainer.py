"""The losses the poisoning attacks train and judge with. The full-batch trainer (``ClassifierTrainer``) is
``apps.classifier``'s and the clean-label softmax layer ``models.softmax_layer``; both are re-exported here."""

from __future__ import annotations

import keras
import tensorflow as tf

from ..classifier import classifier_loss, weighted_ce


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Mean cross-entropy of integer labels."""
    return weighted_ce(logits, labels)


def regularized_loss(model: keras.Model, x: tf.Tensor, y: tf.Tensor, weight_decay: float) -> tf.Tensor:
    """weight_decay * ||weights||^2 + mean CE: the original's 0.5 * 0.01 * tf.nn.l2_loss(W) + CE for 0.0025."""
    return classifier_loss(model, x, y, None, weight_decay, training=False)

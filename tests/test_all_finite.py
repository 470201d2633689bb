"""tensor_ops.all_finite: the NaN/inf check the multi-step call and the checkpoint callback share."""

import numpy as np
import tensorflow as tf

from bilevel_tf.core import tensor_ops


def test_all_finite_per_dtype_and_for_none():
    assert bool(tensor_ops.all_finite([tf.ones(3), tf.Variable(np.ones(2))]))
    assert not bool(tensor_ops.all_finite([tf.ones(3), tf.constant([1.0, np.nan], tf.float64)]))
    assert not bool(tensor_ops.all_finite([tf.constant([np.inf], tf.float16)]))
    assert bool(tensor_ops.all_finite([]))  # nothing to check (logs without a float entry)

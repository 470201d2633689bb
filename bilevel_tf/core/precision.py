"""Mixed precision: models compute in bfloat16, variables, losses and every solver quantity stay float32.

    bl.precision.set_policy("mixed_bfloat16")   # before building the models
    model = ...                                 # Keras layers now compute in bfloat16
    solver = bl.Penalty(problem, ...)           # unchanged: gradients, HVPs, rho, nu ... are float32

What stays in float32 and why:

- the variables (Keras' mixed policies keep them in float32), so every update, optimizer slot and
  checkpoint is full precision;
- the losses: :class:`~bilevel_tf.BilevelProblem` casts a half-precision f or g to float32 and
  :func:`cross_entropy` takes the softmax of float32 logits, so the penalty ``||grad_v g||^2``, the
  tolerance test and the logged values are not rounded to bfloat16's 8 significant bits;
- the gradients and Hessian-vector products come out in the variables' dtype (TensorFlow casts a gradient
  back through every ``Cast``), so the solvers' schedule scalars and multipliers need no change.

Only bfloat16 is offered: it has float32's exponent range, so gradients and second-order products need no
loss scaling. float16 would underflow in the double backward unless the loss scale were carried through
both differentiations, which Keras' ``LossScaleOptimizer`` does not do.

Mixed precision pays off on hardware with bfloat16 matrix units (recent GPUs, TPUs, CPUs with AMX or
AVX512-BF16); on other CPUs TensorFlow emulates it and it is slower (``benchmarks/run.py --sections
precision`` measures it), so it is off by default.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from .options import PRECISIONS

#: dtypes that losses are promoted from (to float32)
HALF = (tf.bfloat16, tf.float16)


def set_policy(name: str) -> None:
    """Set Keras' global dtype policy for the models built afterwards: ``"float32"`` or ``"mixed_bfloat16"``."""
    if name == "mixed_float16":
        raise ValueError(
            "mixed_float16 is not supported: second-order products underflow in float16 without a "
            "loss scale carried through both differentiations; use 'mixed_bfloat16' (float32's "
            "exponent range, no loss scaling needed)"
        )
    if name not in PRECISIONS:
        raise ValueError(f"precision policy must be one of {list(PRECISIONS)}, got {name!r}")
    keras.mixed_precision.set_dtype_policy(name)


def policy() -> str:
    """The name of Keras' current global dtype policy."""
    return keras.mixed_precision.dtype_policy().name


def to_float32(x: tf.Tensor) -> tf.Tensor:
    """``x`` in float32 if it is a half-precision float, else unchanged (float64 stays float64)."""
    return tf.cast(x, tf.float32) if x.dtype in HALF else x


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Per-example softmax cross-entropy of integer labels, computed from float32 logits."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32), logits=to_float32(logits))

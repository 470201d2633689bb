"""Algebra on lists of gradient tensors, where any entry may be a ``tf.IndexedSlices``.

Per-example upper variables (one importance value per training point, read with ``tf.gather``) give
sparse gradients. These helpers compute inner products and norms on the slices themselves and only
densify when the result must live in a dense variable anyway.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Union

import tensorflow as tf

Grad = Union[tf.Tensor, tf.IndexedSlices]


def deduplicate(g: tf.IndexedSlices) -> tf.IndexedSlices:
    """Sum the slices that share an index, so norms of the slices are norms of the dense tensor."""
    unique, position = tf.unique(g.indices)
    values = tf.math.unsorted_segment_sum(g.values, position, tf.shape(unique)[0])
    return tf.IndexedSlices(values, unique, g.dense_shape)


def dense(g: Grad) -> tf.Tensor:
    return tf.convert_to_tensor(g)


def sq_norm(grads: Sequence[Optional[Grad]]) -> tf.Tensor:
    """Squared Euclidean norm of a list of gradients (None entries count as zero)."""
    terms = []
    for g in grads:
        if g is None:
            continue
        values = deduplicate(g).values if isinstance(g, tf.IndexedSlices) else g
        terms.append(tf.reduce_sum(tf.square(values)))
    return _sum(terms)


def inner(a: Sequence[Optional[Grad]], b: Sequence[Optional[Grad]]) -> tf.Tensor:
    """Sum over the list of <a_i, b_i>; an IndexedSlices entry needs a dense partner (it is linear, so
    duplicate indices are handled without deduplication)."""
    terms = []
    for x, y in zip(a, b):
        if x is None or y is None:
            continue
        if isinstance(x, tf.IndexedSlices) and isinstance(y, tf.IndexedSlices):
            x = dense(x)
        if isinstance(y, tf.IndexedSlices):
            x, y = y, x
        if isinstance(x, tf.IndexedSlices):
            prod = tf.reduce_sum(x.values * tf.gather(tf.convert_to_tensor(y), x.indices))
        else:
            prod = tf.reduce_sum(x * tf.convert_to_tensor(y))
        terms.append(prod)
    return _sum(terms)


def _sum(terms: List[tf.Tensor]) -> tf.Tensor:
    """Sum scalars in the dtype of the first one (float32 when there are none)."""
    if not terms:
        return tf.constant(0.0)
    total = terms[0]
    for t in terms[1:]:
        total += tf.cast(t, total.dtype)
    return total


def scale(grads: Sequence[Optional[Grad]], c: Union[float, tf.Tensor]) -> List[Optional[Grad]]:
    out: List[Optional[Grad]] = []
    for g in grads:
        if g is None:
            out.append(None)
        elif isinstance(g, tf.IndexedSlices):
            out.append(tf.IndexedSlices(g.values * tf.cast(c, g.values.dtype), g.indices, g.dense_shape))
        else:
            out.append(g * tf.cast(c, g.dtype))
    return out


def add(a: Sequence[Optional[Grad]], b: Sequence[Optional[Grad]]) -> List[Optional[Grad]]:
    """a + b elementwise; two IndexedSlices stay sparse (concatenated), a mix densifies."""
    out = []
    for x, y in zip(a, b):
        if x is None:
            out.append(y)
        elif y is None:
            out.append(x)
        elif isinstance(x, tf.IndexedSlices) and isinstance(y, tf.IndexedSlices):
            out.append(
                tf.IndexedSlices(
                    tf.concat([x.values, y.values], 0), tf.concat([x.indices, y.indices], 0), x.dense_shape
                )
            )
        else:
            out.append(dense(x) + dense(y))
    return out


def fill_none(grads: Sequence[Optional[Grad]], variables: Sequence) -> List[Grad]:
    return [tf.zeros(v.shape, v.dtype) if g is None else g for g, v in zip(grads, variables)]


def all_finite(values: Sequence[tf.Tensor]) -> tf.Tensor:
    """True when no entry of any tensor (or variable) is NaN or +-inf, in each tensor's own dtype (True for none)."""
    checks = [tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(v))) for v in values]
    return tf.reduce_all(checks) if checks else tf.constant(True)

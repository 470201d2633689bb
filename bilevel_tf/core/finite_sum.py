"""Losses that are means over a finite, indexed sample set: what variance-reduced solvers (``bl.SABA``) need.

A :class:`FiniteSum` is still a loss of the library's contract (a callable of one batch returning a scalar: the
batch mean), so every solver accepts it; SABA additionally reads the batch's sample indices and the
per-sample losses, to keep one memory row per sample.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Mapping, Optional, Tuple

import tensorflow as tf

#: the key of a dict batch that holds the sample indices
INDEX_KEY = "index"
_FORMS = (
    f"a tuple/list batch whose first element is the index vector, a dict batch with an {INDEX_KEY!r} "
    "entry, or pass indices=callable(batch) -> index vector"
)


class FiniteSum:
    r"""A loss that is the mean of ``size`` per-sample losses, with batches that say which samples they hold::

        full objective  = (1/n) sum_{i < n} loss_i(u, v)
        loss(batch)     = mean_{i in batch} loss_i(u, v)          (what calling the object returns)

    Args:
        per_sample_loss: ``batch -> vector``: one loss per sample of the batch, in the order of its indices
            (e.g. a Keras loss with ``reduction=None``). Batch None means the whole set: it must then return
            all ``size`` values, for indices 0..n-1.
        size: n, the number of samples; indices lie in [0, n).
        indices: where a batch keeps its sample indices: None (default) reads the first element of a tuple or
            list batch ``(indices, x, y)`` (the layout ``bl.fit`` users already give per-example importance
            weights) or the ``"index"`` entry of a dict batch; or a callable ``batch -> int vector``.

    A sample's loss must depend only on its index and the variables (no random augmentation): a solver's
    per-sample memory stores it under that index. Example (the lower loss of importance learning)::

        ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
        def per_example(batch):
            idx, x, y = batch
            return tf.sigmoid(tf.gather(importance, idx)) * ce(y, model(x))
        lower_loss = bl.FiniteSum(per_example, size=n_train)
    """

    def __init__(
        self,
        per_sample_loss: Callable[[Any], tf.Tensor],
        size: int,
        indices: Optional[Callable[[Any], tf.Tensor]] = None,
    ):
        if not callable(per_sample_loss):
            raise ValueError(f"per_sample_loss must be callable(batch) -> vector, got {type(per_sample_loss).__name__}")
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"size must be a positive integer (the number of samples), got {size!r}")
        if indices is not None and not callable(indices):
            raise ValueError(f"indices must be None or callable(batch) -> index vector, got {type(indices).__name__}")
        self.per_sample_loss: Callable[[Any], tf.Tensor] = per_sample_loss
        self.size: int = int(size)
        self._indices: Optional[Callable[[Any], tf.Tensor]] = indices

    def __call__(self, batch: Any) -> tf.Tensor:
        # the batch's form is checked first, so a batch without indices fails here with a clear message
        return tf.reduce_mean(self.indexed_losses(batch)[1])

    def indices(self, batch: Any) -> tf.Tensor:
        """The batch's sample indices as an int64 vector (0..n-1 for batch None); ValueError if it has none."""
        if batch is None:
            return tf.range(self.size, dtype=tf.int64)
        if self._indices is not None:
            idx = self._indices(batch)
        elif isinstance(batch, Mapping):
            if INDEX_KEY not in batch:
                raise ValueError(f"bl.FiniteSum: the dict batch has no {INDEX_KEY!r} entry; give {_FORMS}")
            idx = batch[INDEX_KEY]
        elif isinstance(batch, (tuple, list)) and batch:
            idx = batch[0]
        else:
            kind = "tensor" if tf.is_tensor(batch) else type(batch).__name__
            raise ValueError(f"bl.FiniteSum: a {kind} batch carries no sample indices; give {_FORMS}")
        idx = tf.convert_to_tensor(idx)
        if not idx.dtype.is_integer or idx.shape.rank != 1:
            raise ValueError(
                f"bl.FiniteSum: the sample indices must be an integer vector, got dtype "
                f"{idx.dtype.name} and shape {idx.shape}; give {_FORMS}"
            )
        return tf.cast(idx, tf.int64)

    def per_sample(self, batch: Any) -> tf.Tensor:
        """The per-sample losses of the batch (a vector); ValueError if ``per_sample_loss`` returns another rank."""
        losses = tf.convert_to_tensor(self.per_sample_loss(batch))
        if losses.shape.rank != 1 or not losses.dtype.is_floating:
            raise ValueError(
                f"bl.FiniteSum: per_sample_loss must return a floating vector (one loss per sample), "
                f"got dtype {losses.dtype.name} and shape {losses.shape}"
            )
        return losses

    def indexed_losses(self, batch: Any) -> Tuple[tf.Tensor, tf.Tensor]:
        """(indices, per-sample losses) of the batch, checked to have one loss per index."""
        idx, losses = self.indices(batch), self.per_sample(batch)
        n_idx, n_loss = idx.shape[0], losses.shape[0]
        if n_idx is not None and n_loss is not None and n_idx != n_loss:
            raise ValueError(
                f"bl.FiniteSum: the batch holds {n_idx} indices but per_sample_loss returned {n_loss} losses"
            )
        return idx, losses

"""N-way K-shot episode sampling for few-shot learning (numpy, seeded), plus a tf.data wrapper."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence, Tuple

import numpy as np


class Episode(NamedTuple):
    """A meta-batch of tasks. Labels are 0..N-1 by class position within each task."""

    support_x: np.ndarray  # (B, N*K, ...) float32
    support_y: np.ndarray  # (B, N*K) int64
    query_x: np.ndarray  # (B, N*Q, ...) float32
    query_y: np.ndarray  # (B, N*Q) int64


def split_classes(labels: np.ndarray, n_train_classes: int) -> Tuple[np.ndarray, np.ndarray]:
    """Sorted unique labels split into disjoint ``(train_classes, test_classes)``: the first
    ``n_train_classes`` and the rest."""
    classes = np.unique(np.asarray(labels))
    if not 0 < n_train_classes < len(classes):
        raise ValueError(
            f"n_train_classes={n_train_classes} must be in [1, {len(classes) - 1}] ({len(classes)} classes)"
        )
    return classes[:n_train_classes], classes[n_train_classes:]


class EpisodeSampler:
    """Draw meta-batches of N-way, K-shot tasks with Q queries per class from ``classes`` of a labelled set.

    Within a meta-batch, classes are drawn without replacement from a shuffled pool that is refilled when
    fewer than N remain (as in the original code); each class's K + Q images are drawn without replacement;
    support and query are each shuffled. Only the sampled images are converted to float32 (uint8 -> /255).
    Two samplers with the same seed produce identical episodes.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        classes: Optional[Sequence[int]],
        n_way: int,
        k_shot: int,
        n_query: int,
        seed: Optional[int] = 0,
    ) -> None:
        labels = np.asarray(labels).reshape(-1)
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if n_way < 1 or k_shot < 1 or n_query < 0:
            raise ValueError(f"need n_way >= 1, k_shot >= 1, n_query >= 0; got {n_way}, {k_shot}, {n_query}")
        self.images, self.n_way, self.k_shot, self.n_query = images, int(n_way), int(k_shot), int(n_query)
        self.classes = np.unique(labels) if classes is None else np.asarray(classes).reshape(-1)
        if len(np.unique(self.classes)) != len(self.classes):
            raise ValueError("classes contains duplicates")
        if self.n_way > len(self.classes):
            raise ValueError(f"n_way={self.n_way} is larger than the number of classes ({len(self.classes)})")
        order = np.argsort(labels, kind="stable")
        present, starts = np.unique(labels[order], return_index=True)
        ends = np.append(starts[1:], len(order))
        by_class = {c: order[s:e] for c, s, e in zip(present.tolist(), starts, ends)}
        self._members = []
        for c in self.classes.tolist():
            members = by_class.get(c, order[:0])
            if len(members) < self.k_shot + self.n_query:
                raise ValueError(
                    f"class {c} has {len(members)} images, fewer than k_shot + n_query = "
                    f"{self.k_shot} + {self.n_query} = {self.k_shot + self.n_query}"
                )
            self._members.append(members)
        self.rng = np.random.default_rng(seed)

    @property
    def image_shape(self) -> Tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def _convert(self, x: np.ndarray) -> np.ndarray:
        if x.dtype == np.uint8:
            return x.astype(np.float32) / np.float32(255.0)
        return x.astype(np.float32, copy=False)

    def sample(self, meta_batch_size: int) -> Episode:
        """One meta-batch of ``meta_batch_size`` tasks (see :class:`Episode` for shapes)."""
        n, k, q, rng = self.n_way, self.k_shot, self.n_query, self.rng
        sup_idx = np.empty((meta_batch_size, n * k), dtype=np.int64)
        qry_idx = np.empty((meta_batch_size, n * q), dtype=np.int64)
        sup_y = np.empty((meta_batch_size, n * k), dtype=np.int64)
        qry_y = np.empty((meta_batch_size, n * q), dtype=np.int64)
        pool = rng.permutation(len(self.classes))
        pos = 0
        for b in range(meta_batch_size):
            if pos + n > len(pool):
                pool, pos = rng.permutation(len(self.classes)), 0
            chosen = pool[pos : pos + n]
            pos += n
            s_list, q_list = [], []
            for members in (self._members[c] for c in chosen):
                picked = members[rng.choice(len(members), size=k + q, replace=False)]
                s_list.append(picked[:k])
                q_list.append(picked[k:])
            s_perm, q_perm = rng.permutation(n * k), rng.permutation(n * q)
            sup_idx[b] = np.concatenate(s_list)[s_perm]
            sup_y[b] = np.repeat(np.arange(n), k)[s_perm]
            qry_idx[b] = np.concatenate(q_list)[q_perm]
            qry_y[b] = np.repeat(np.arange(n), q)[q_perm]
        return Episode(self._convert(self.images[sup_idx]), sup_y, self._convert(self.images[qry_idx]), qry_y)


def as_tf_dataset(sampler: EpisodeSampler, meta_batch_size: int, prefetch: int = 2) -> Any:
    """Infinite ``tf.data.Dataset`` of ``(support_x, support_y, query_x, query_y)`` meta-batches from
    ``sampler`` (fixed shapes; float32 images, int64 labels)."""
    import tensorflow as tf  # lazy: importing TF is slow

    b, nk, nq = meta_batch_size, sampler.n_way * sampler.k_shot, sampler.n_way * sampler.n_query
    shape = sampler.image_shape
    signature = (
        tf.TensorSpec((b, nk) + shape, tf.float32),
        tf.TensorSpec((b, nk), tf.int64),
        tf.TensorSpec((b, nq) + shape, tf.float32),
        tf.TensorSpec((b, nq), tf.int64),
    )

    def gen():
        while True:
            yield tuple(sampler.sample(meta_batch_size))

    return tf.data.Dataset.from_generator(gen, output_signature=signature).prefetch(prefetch)

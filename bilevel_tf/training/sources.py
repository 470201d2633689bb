"""Where ``bl.fit`` takes its batches from: one batch per upper iteration from None, a ``tf.data.Dataset``, a
callable ``step -> batch`` or a Python iterable (:class:`Source`), and where the batches after the first of a
multi-step call come from (:class:`Feed`, read inside the compiled call by
:func:`bilevel_tf.training.execution.run_steps`)."""

from __future__ import annotations

from typing import Any, Iterable, List, Tuple

import tensorflow as tf

from ..solvers.checks import check_choice


class Source:
    """One batch per upper iteration from None, a ``tf.data.Dataset``, a callable ``step -> batch`` or a
    Python iterable (restarted when exhausted if it can be)."""

    def __init__(self, data: Any, name: str, strategy: Any = None):
        self.name, self.data = name, data
        self.iterator = None
        if data is None:
            self.kind = "none"
        elif isinstance(data, tf.data.Dataset):
            self.kind = "dataset"
            # repeat() so finite datasets cycle through epochs; the iterator is checkpointed for resume.
            self._dataset, self._strategy = data.repeat(), strategy
            if strategy is None:
                self.iterator = iter(self._dataset)
            # else: the strategy's iterators cannot be checkpointed (a DistributedIterator is not trackable;
            # with several workers each would hold its own shard's position while every worker restores the
            # chief's checkpoint), so the stream is fast-forwarded instead (skip)
        elif callable(data):
            self.kind = "callable"
        elif isinstance(data, Iterable):
            self.kind = "iterable"
            self._it = iter(data)
        else:
            raise ValueError(
                f"{name} must be None, a tf.data.Dataset, a callable(step) -> batch or an iterable, "
                f"got {type(data).__name__}"
            )

    def next(self, step: int) -> Any:
        if self.kind == "none":
            return None
        if self.kind == "dataset":
            return next(self.iterator)
        if self.kind == "callable":
            return self.data(step)
        try:
            return next(self._it)
        except StopIteration:
            if iter(self.data) is self.data:
                raise ValueError(
                    f"{self.name} ran out of batches at step {step}; pass a repeating source "
                    "(a tf.data.Dataset, a list, or a callable(step) -> batch)"
                ) from None
            self._it = iter(self.data)
            return next(self._it)

    def _iterate(self, data: tf.data.Dataset) -> Any:
        if self._strategy is not None:  # split each global batch across the replicas
            data = self._strategy.experimental_distribute_dataset(data)
        return iter(data)

    def skip(self, steps: int) -> None:
        """Fast-forward after a resume: a Python iterable, or a dataset whose position is not checkpointed
        (under a strategy); datasets otherwise restore their iterator position."""
        if self.kind == "iterable":
            for step in range(steps):
                self.next(step)
        if self.kind == "dataset" and self.iterator is None:
            self.iterator = self._iterate(self._dataset.skip(steps))

    def feed(self, step: int, count: int) -> Tuple[Any, Feed]:
        """The batch of ``step`` and a :class:`Feed` of the next ``count - 1`` for one multi-step call."""
        if self.kind == "none":
            return None, Feed.none()
        if self.kind == "dataset":  # the first batch goes through the host so that ``_prepare`` can see it
            return next(self.iterator), Feed.iterator(self.iterator)
        batches = [self.next(step + i) for i in range(count)]
        return batches[0], Feed.stacked(_stack(batches[1:], self.name))


def _stack(batches: List[Any], name: str) -> Any:
    """k batches of a Python source as one structure with a leading axis of length k."""
    try:
        return tf.nest.map_structure(lambda *xs: tf.stack([tf.convert_to_tensor(x) for x in xs]), *batches)
    except (ValueError, TypeError, tf.errors.InvalidArgumentError) as e:
        raise ValueError(
            f"{name}: steps_per_execution > 1 stacks the batches of a callable or iterable source, "
            f"so they must have one structure and shape ({e}); pass steps_per_execution=1 or a "
            "tf.data.Dataset"
        ) from None


class Feed:
    """Where the batches after the first of a :func:`~bilevel_tf.training.execution.run_steps` call come from.

    ``Feed.iterator(it)``: a ``tf.data`` iterator (or a distributed one), drawn inside the graph;
    ``Feed.stacked(batch)``: a batch structure whose tensors hold one batch per iteration along axis 0
    (built on the host from Python sources); ``Feed.none()``: every batch is None.
    """

    NONE, ITERATOR, STACKED = "none", "iterator", "stacked"

    def __init__(self, kind: str, value: Any = None):
        self.kind, self.value = check_choice("feed kind", kind, (self.NONE, self.ITERATOR, self.STACKED)), value

    @classmethod
    def none(cls) -> "Feed":
        return cls(cls.NONE)

    @classmethod
    def iterator(cls, iterator: Any) -> "Feed":
        return cls(cls.ITERATOR, iterator)

    @classmethod
    def stacked(cls, batches: Any) -> "Feed":
        return cls(cls.STACKED, batches)

    @classmethod
    def wrap(cls, feed: Any) -> "Feed":
        if feed is None:
            return cls.none()
        if not isinstance(feed, cls):
            raise ValueError(f"expected a bilevel_tf.training.sources.Feed or None, got {type(feed).__name__}")
        return feed

    @classmethod
    def take(cls, value: Any, kind: str, n: tf.Tensor) -> Tuple[Any, str]:
        """Inside a graph: an iterator's next ``n`` batches stacked (``(value, kind)`` of a stacked feed);
        other feeds unchanged."""
        if kind != cls.ITERATOR:
            return value, kind
        arrays = tf.nest.map_structure(
            lambda spec: tf.TensorArray(spec.dtype, size=n, element_shape=spec.shape), value.element_spec
        )
        for i in tf.range(n):
            arrays = tf.nest.map_structure(lambda a, x: a.write(i, x), arrays, next(value))
        return tf.nest.map_structure(lambda a: a.stack(), arrays), cls.STACKED

    @classmethod
    def draw(cls, value: Any, kind: str, index: tf.Tensor) -> Any:
        """The batch of iteration ``index`` (0 = the first after the call's first batch), inside the graph."""
        if kind == cls.ITERATOR:
            return next(value)
        if kind == cls.STACKED:
            return tf.nest.map_structure(lambda t: tf.gather(t, index), value)
        return None

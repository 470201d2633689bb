"""Running solvers under a ``tf.distribute`` strategy (data parallel, one replica per device).

Create the model, the variables and the solver inside ``strategy.scope()``; the solver notices the strategy
and runs each upper iteration with ``strategy.run`` on per-replica batches (``bl.fit`` distributes datasets
itself). Inside a replica every gradient, Hessian-vector product and loss value is averaged across
replicas before it is used (norms, inner products, the Penalty schedule test), so all replicas take the
same decisions and the result equals the single-device step on the global batch when the losses are means
over equally sized per-replica batches. Keras optimizers sum gradients across replicas, so the solvers
hand them the averaged gradient divided by the replica count.

TensorFlow's strategies cannot synchronize inside a graph loop, so under a strategy the inner loops are
unrolled in the graph (its size grows with T; single-device runs keep the ``tf.while_loop``).
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Union

import tensorflow as tf

ONLY_FIRST_REPLICA = tf.VariableAggregation.ONLY_FIRST_REPLICA


def replica_context() -> Optional[tf.distribute.ReplicaContext]:
    """The replica context when running inside ``strategy.run`` with more than one replica, else None."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1 or not tf.distribute.has_strategy():
        return None
    return ctx


def num_replicas() -> int:
    ctx = replica_context()
    return 1 if ctx is None else ctx.num_replicas_in_sync


def loop_range(n: Union[int, tf.Tensor], *args: int) -> Any:
    """``tf.range`` (a graph loop) on one device; a Python ``range`` (unrolled) inside a multi-replica step."""
    if replica_context() is None:
        return tf.range(n, *args)
    return range(int(n), *args)


def mean_across_replicas(values: Sequence[Any]) -> List[Any]:
    """All-reduce (mean) a list of tensors / IndexedSlices / None; identity on one device."""
    ctx = replica_context()
    values = list(values)
    if ctx is None:
        return values
    present = [i for i, v in enumerate(values) if v is not None]
    # Sparse gradients are densified first: mixing all-gathers of IndexedSlices with packed dense
    # reductions lets replicas issue collectives in different orders (a shape-mismatch abort).
    dense = [tf.convert_to_tensor(values[i]) for i in present]
    reduced = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, dense) if present else []
    out = list(values)
    for i, r in zip(present, reduced):
        value = values[i]
        if isinstance(value, tf.IndexedSlices):
            # ... and made sparse again on the rows of the global batch (every replica's indices, gathered
            # after the reduction; each row once, since the reduced row already holds every occurrence's sum),
            # so that sparse-aware optimizers (per-row state, e.g. a lazy Adam) update the same rows as on one
            # device.
            rows, _ = tf.unique(ctx.all_gather(value.indices, axis=0))
            r = tf.IndexedSlices(tf.gather(r, rows), rows, value.dense_shape)
        out[i] = r
    return out


def mean_scalar(x: tf.Tensor) -> tf.Tensor:
    return mean_across_replicas([x])[0]


def _tf_variable(var: Any) -> Any:
    """The underlying tf.Variable of a Keras 3 variable (what a strategy mirrors)."""
    return getattr(var, "value", var) if not isinstance(var, tf.Variable) else var


def assign(var: Any, value: tf.Tensor) -> None:
    """``var.assign(value)`` that also works on mirrored variables inside a replica (values must agree
    across replicas, as they do after :func:`mean_across_replicas`)."""
    ctx = replica_context()
    if ctx is None:
        var.assign(value)
        return
    target = _tf_variable(var)

    def update(strategy: tf.distribute.Strategy, v: Any) -> None:
        strategy.extended.update(target, lambda t, x: t.assign(x), args=(v,), group=False)

    ctx.merge_call(update, args=(value,))

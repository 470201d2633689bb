"""Choosing a ``tf.distribute`` strategy for a run, and TensorFlow's multi-worker rules for files.

``make_strategy("none" | "mirrored" | "multi_worker")`` is the runners' ``--strategy``: no strategy (one device),
``MirroredStrategy`` (every local GPU, one replica each) or ``MultiWorkerMirroredStrategy`` (every worker of
the cluster in the ``TF_CONFIG`` environment variable, each running the same program). Build the model, the
variables and the solver inside ``strategy.scope()``; ``bl.fit`` splits each global batch across all replicas.

With several workers, TensorFlow's documented rules for a custom training loop apply:

- only the chief (worker 0 when the cluster has no "chief" task) writes results, figures and the real
  checkpoints; every other worker writes its checkpoints to a temporary folder that it deletes
  (:func:`writable_dir`, :func:`remove_temporary`), because saving is part of the synchronized program;
- every worker restores from the same (shared) checkpoint folder, so all of them resume from the chief's
  checkpoint;
- all workers create their variables in the same order (MultiWorkerMirroredStrategy broadcasts the chief's
  initial values); work a worker does on its own before training (e.g. a warm start) is replaced by the
  chief's values when ``bl.fit`` starts (:func:`sync_from_chief`).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Dict, Optional, Sequence

import tensorflow as tf

from . import distribute
from .options import STRATEGIES

# One object per kind and process: TensorFlow allows a single MultiWorkerMirroredStrategy per process, and
# several MirroredStrategy objects in one process reuse collective keys.
_CREATED: Dict[str, tf.distribute.Strategy] = {}


def make_strategy(name: str) -> Optional[tf.distribute.Strategy]:
    """The strategy of ``--strategy name`` (None for "none"). Call it before TensorFlow runs any op when
    ``name`` is "multi_worker" (TensorFlow configures the collective ops at program startup)."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {name!r}")
    if name == "none":
        return None
    if name not in _CREATED:
        if name == "multi_worker":
            if not os.environ.get("TF_CONFIG"):
                raise ValueError("--strategy multi_worker reads the cluster from the TF_CONFIG environment variable, "
                                 'which is not set; e.g. TF_CONFIG=\'{"cluster": {"worker": ["localhost:12345", '
                                 '"localhost:23456"]}, "task": {"type": "worker", "index": 0}}\'')
            _CREATED[name] = tf.distribute.MultiWorkerMirroredStrategy()
        else:
            _CREATED[name] = tf.distribute.MirroredStrategy()
    return _CREATED[name]


def is_chief(strategy: Optional[tf.distribute.Strategy]) -> bool:
    """True on the worker that writes outputs (always, without a multi-worker strategy)."""
    return strategy is None or bool(strategy.extended.should_checkpoint)


def worker_count(strategy: Optional[tf.distribute.Strategy]) -> int:
    """Number of worker processes in the strategy's cluster (1 without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec()
    return max(1, sum(spec.num_tasks(job) for job in spec.jobs if job in ("chief", "worker")))


def task_index(strategy: Optional[tf.distribute.Strategy]) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(resolver.task_id or 0) if resolver is not None and resolver.task_id is not None else 0


def writable_dir(path: str, strategy: Optional[tf.distribute.Strategy]) -> str:
    """``path`` on the chief; a new temporary folder on every other worker (delete it with
    :func:`remove_temporary`)."""
    if is_chief(strategy):
        return path
    return tempfile.mkdtemp(prefix=f"bilevel_tf_worker{task_index(strategy)}_")


def remove_temporary(path: str, strategy: Optional[tf.distribute.Strategy]) -> None:
    """Delete a folder from :func:`writable_dir` on a non-chief worker (no-op on the chief)."""
    if not is_chief(strategy):
        shutil.rmtree(path, ignore_errors=True)


def sync_from_chief(strategy: Optional[tf.distribute.Strategy], variables: Sequence) -> None:
    """Give every replica of every worker the chief's value of each floating-point variable (one all-reduce
    of the chief's values and zeros elsewhere). A no-op with one worker, where replicas cannot drift."""
    if worker_count(strategy) <= 1:
        return
    variables = [v for v in variables if tf.as_dtype(v.dtype).is_floating]

    def broadcast():
        ctx = tf.distribute.get_replica_context()
        first = tf.equal(ctx.replica_id_in_sync_group, 0)
        values = [tf.convert_to_tensor(v) for v in variables]
        reduced = ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                                 [tf.where(first, x, tf.zeros_like(x)) for x in values])
        for var, value in zip(variables, reduced):
            distribute.assign(var, value)

    tf.function(lambda: strategy.run(broadcast))()

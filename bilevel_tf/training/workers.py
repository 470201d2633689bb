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

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from typing import Dict, Optional, Sequence

import tensorflow as tf

from ..core import distribute
from ..core.options import STRATEGIES
from .terminal import stderr_silenced

#: how long the chief waits for every worker of TF_CONFIG to join (seconds; 0 waits forever)
TIMEOUT_VARIABLE = "BILEVEL_TF_WORKER_TIMEOUT"
DEFAULT_TIMEOUT = 600.0


class WorkerLostError(RuntimeError):
    """A worker of a multi-worker run stopped answering during training (killed, crashed, unreachable); every
    worker stops, and starting all of them again with the same command resumes from the last checkpoint."""


# One object per kind and process: TensorFlow allows a single MultiWorkerMirroredStrategy per process, and
# several MirroredStrategy objects in one process reuse collective keys.
_CREATED: Dict[str, tf.distribute.Strategy] = {}


def make_strategy(name: str, timeout: Optional[float] = None, verbose: int = 1) -> Optional[tf.distribute.Strategy]:
    """The strategy of ``--strategy name`` (None for "none"). Call it before TensorFlow runs any op when
    ``name`` is "multi_worker" (TensorFlow configures the collective ops at program startup); it then waits
    until every worker of ``TF_CONFIG`` has joined, saying so first, and raises ``TimeoutError`` after
    ``timeout`` seconds (default: the ``BILEVEL_TF_WORKER_TIMEOUT`` environment variable, else 600; 0 waits
    forever)."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {name!r}")
    if name == "none":
        return None
    if name not in _CREATED:
        if name == "multi_worker":
            if not os.environ.get("TF_CONFIG"):
                raise ValueError(
                    "--strategy multi_worker reads the cluster from the TF_CONFIG environment variable, "
                    'which is not set; e.g. TF_CONFIG=\'{"cluster": {"worker": ["localhost:12345", '
                    '"localhost:23456"]}, "task": {"type": "worker", "index": 0}}\''
                )
            _CREATED[name] = _join_cluster(_timeout(timeout), verbose)
        else:
            _CREATED[name] = tf.distribute.MirroredStrategy()
    return _CREATED[name]


def _timeout(timeout: Optional[float]) -> float:
    if timeout is None:
        text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
        try:
            timeout = float(text) if text else DEFAULT_TIMEOUT
        except ValueError:
            timeout = -1.0
        if not timeout >= 0:
            raise ValueError(f"{TIMEOUT_VARIABLE} must be a number of seconds >= 0 (0: wait forever), got {text!r}")
    return float(timeout)


def _join_cluster(timeout: float, verbose: int) -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy() once every worker of TF_CONFIG has joined. Its constructor waits inside
    TensorFlow's C++ code (deaf to Ctrl-C); with a ``timeout`` the coordination service's registration becomes a
    barrier with that timeout, so a worker that never starts ends the wait with a one-line TimeoutError."""
    try:
        addresses = [a for tasks in json.loads(os.environ["TF_CONFIG"])["cluster"].values() for a in tasks]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError(f"TF_CONFIG is not a cluster description: {os.environ.get('TF_CONFIG')!r}") from None
    limited = bool(timeout) and _limit_registration(timeout)
    limit = f"gives up after {timeout:g} s" if limited else "waits until they do"
    if verbose:
        print(
            f"waiting for the {len(addresses)} workers of TF_CONFIG ({', '.join(addresses)}) to join; {limit} "
            f"({TIMEOUT_VARIABLE})",
            flush=True,
        )
    t0 = time.perf_counter()
    try:
        with contextlib.nullcontext() if verbose >= 2 else stderr_silenced():  # its C++ retry logs
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except tf.errors.DeadlineExceededError:
        raise TimeoutError(
            f"not every worker of TF_CONFIG ({', '.join(addresses)}) joined within {timeout:g} s; "
            f"start each one with the same command (or raise {TIMEOUT_VARIABLE}, in seconds)"
        ) from None
    if verbose:
        print(f"all {len(addresses)} workers joined ({time.perf_counter() - t0:.0f} s)", flush=True)
    return strategy


def _limit_registration(timeout: float) -> bool:
    """Configure TensorFlow's coordination service as MultiWorkerMirroredStrategy would, with registration as a
    barrier that times out after ``timeout`` seconds. TensorFlow has no public switch for it: False (wait as
    TensorFlow does) when its internals differ from those of the tested versions."""
    try:
        from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
        from tensorflow.python.distribute import multi_worker_util
        from tensorflow.python.eager import context

        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        spec = resolver.cluster_spec()
        if resolver.task_type not in ("chief", "worker") or context.context().coordination_service is not None:
            return False
        jobs = [
            coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
            for job in ("chief", "worker")
            if job in spec.jobs
        ]
        context.context().configure_coordination_service(
            service_type="standalone",
            service_leader=multi_worker_util.coordination_leader(spec),
            coordinated_jobs=jobs,
            cluster_register_timeout_in_ms=int(timeout * 1000),
        )
        context.context().coordination_service.cluster_register_with_barrier = True
        return True
    except (ImportError, AttributeError, ValueError):
        return False


def peer_failure(
    error: BaseException, strategy: Optional[tf.distribute.Strategy], step: int, checkpoint: Optional[str]
) -> Optional[WorkerLostError]:
    """The one-line :class:`WorkerLostError` for TensorFlow's error when a peer of a multi-worker run went away
    (None for any other error, or without several workers)."""
    peer_errors = (
        tf.errors.UnavailableError,
        tf.errors.DeadlineExceededError,
        tf.errors.CancelledError,
        tf.errors.FailedPreconditionError,
        tf.errors.AbortedError,
    )
    if not isinstance(error, peer_errors) or worker_count(strategy) <= 1:
        return None
    lines = [line.strip() for line in str(getattr(error, "message", error)).splitlines() if line.strip()]
    telling = [line for line in lines if _PEER_WORDS.search(line)] or lines or ["?"]  # not "Graph execution error:"
    kept = f"from {checkpoint}" if checkpoint else "from the start (no checkpoint was written)"
    return WorkerLostError(
        f"step {step}: a worker of the cluster stopped answering ({telling[0][:200]}); "
        f"start every worker again with the same command to resume {kept}"
    )


_PEER_WORDS = re.compile(r"abort|unavailable|is down|connect|deadline|heartbeat|socket|peer", re.IGNORECASE)


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
        reduced = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [tf.where(first, x, tf.zeros_like(x)) for x in values])
        for var, value in zip(variables, reduced):
            distribute.assign(var, value)

    tf.function(lambda: strategy.run(broadcast))()

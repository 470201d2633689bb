"""SABA: SOBA with SAGA variance reduction over finite sample sets (Dagréou, Ablin, Vaiter & Moreau, NeurIPS 2022)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import tensorflow as tf

from ..core import autodiff, distribute
from ..core import tensor_ops as ops
from ..core.finite_sum import FiniteSum
from ..core.problem import BilevelProblem
from .variables import state_variable
from .soba import SOBA

ZERO = autodiff.ZERO
_HOW = (
    "wrap it in bl.FiniteSum(per_sample_loss, size=n) and give batches that carry their sample indices, "
    "or pass batch None for a deterministic loss"
)


class SABA(SOBA):
    r"""SABA (Stochastic Average Bilevel Algorithm): SOBA's joint (v, z, u) step with SAGA estimates.

    M. Dagréou, P. Ablin, S. Vaiter and T. Moreau, "A framework for bilevel optimization that enables
    stochastic and global variance reduction algorithms", NeurIPS 2022.

    For finite sums g = (1/n) sum_i g_i and f = (1/m) sum_j f_j, SABA keeps the last value of every per-sample
    oracle: for each lower sample i, grad_v g_i, H_vv g_i z and H_uv g_i z; for each upper sample j, grad_v f_j
    and grad_u f_j. Each oracle o with memory M (one row per sample, mean Mbar) is replaced by the SAGA estimate
    on the batch B::

        o_hat = mean_{i in B} (o_i - M[i]) + Mbar,      then  M[i] <- o_i  (i in B),  Mbar updated alike

    and SOBA's step runs on the estimates (see :class:`SOBA`)::

        D_v = grad_v g_hat,   D_z = (H_vv g z)_hat + grad_v f_hat,   D_u = grad_u f_hat + (H_uv g z)_hat
        v <- lower_optimizer step along D_v,  z <- linear_optimizer step along D_z,  u <- upper_optimizer along D_u

    The estimates' variance vanishes as the iterates converge, so constant steps converge to the solution
    (the paper proves an O(1/T) rate on smooth problems, as for full-batch descent, and a linear one under a
    Polyak-Lojasiewicz condition), where SOBA needs decreasing steps. Defaults as SOBA's (constant plain SGD:
    1 / L_g measured on the problem for v and z, 0.02 for u). The memory starts at zero; Mbar is exact once every
    sample has been drawn.

    **Per-sample losses.** A loss with a memory is a :class:`bl.FiniteSum`: ``per_sample_loss(batch)`` returns
    one loss per sample and the batch carries the samples' indices (by default the first element of a tuple
    batch ``(indices, x, y)``, or the ``"index"`` entry of a dict batch), e.g. a ``tf.data`` pipeline
    ``Dataset.from_tensor_slices((np.arange(n), x, y)).shuffle(n).batch(b)`` given to ``bl.fit`` (every tensor
    of a batch holds its samples along the first axis). The per-sample oracles are vectorized with
    ``tf.vectorized_map`` over the batch (``pfor``, no Python loop): each sample's loss is ``per_sample_loss`` of
    a batch holding that sample alone, differentiated twice (double backward; ``hvp`` applies to batch None
    only). Indices within a batch may repeat (each memory row and the mean move
    once). Batch None means the whole set: the oracles are then the exact full-batch ones (what the SAGA
    estimates equal there) and the memory is left as it is; a plain loss (not a FiniteSum) is accepted only
    that way and raises ValueError when given batches. A SAGA estimate is unbiased whatever the memory holds,
    so steps on batch None and on mini-batches can be mixed.

    The memory holds n (2 dim v + dim u) + m (dim v + dim u) numbers in solver state (checkpointed, reset by
    ``reset_state``): meant for finite sums of moderate size (the benchmark's quadratics, logistic regression),
    not for one weight per training example of a large data set. Under a ``tf.distribute`` strategy the
    per-sample values of all replicas are gathered, so every replica makes the same memory update.
    """

    method = "saba"

    def __init__(
        self,
        problem: BilevelProblem,
        upper_optimizer: Any = None,
        lower_optimizer: Any = None,
        *,
        inner_steps: Optional[int] = None,
        linear_optimizer: Any = None,
        jit_compile: bool = False,
        **unknown: Any,
    ):
        super().__init__(
            problem,
            upper_optimizer,
            lower_optimizer,
            inner_steps=inner_steps,
            linear_optimizer=linear_optimizer,
            jit_compile=jit_compile,
            **unknown,
        )
        lower, upper = list(problem.lower_vars), list(problem.upper_vars)
        self.lower_sum = problem.lower_loss if isinstance(problem.lower_loss, FiniteSum) else None
        self.upper_sum = problem.upper_loss if isinstance(problem.upper_loss, FiniteSum) else None
        #: oracle name -> (one memory table per variable, their running means)
        self.memory: Dict[str, Tuple[List[tf.Variable], List[tf.Variable]]] = {}
        if self.lower_sum is not None:
            for name, variables in (("lower_grad", lower), ("lower_hvp", lower), ("lower_cross", upper)):
                self._add_memory(name, variables, self.lower_sum.size)
        if self.upper_sum is not None:
            for name, variables in (("upper_grad_v", lower), ("upper_grad_u", upper)):
                self._add_memory(name, variables, self.upper_sum.size)

    def _add_memory(self, name: str, variables: Sequence, rows: int) -> None:
        tables = [state_variable(tf.zeros([rows] + v.shape.as_list(), v.dtype), f"memory_{name}") for v in variables]
        means = [state_variable(tf.zeros(v.shape, v.dtype), f"memory_{name}_mean") for v in variables]
        self.memory[name] = (self.add_state(f"memory_{name}", tables), self.add_state(f"memory_{name}_mean", means))

    # ------------------------------------------------------------------ oracles
    def _oracles(self, upper_batch, lower_batch, with_upper: bool):
        z = [tf.convert_to_tensor(x) for x in self.z]
        g, d_v, hvp, cross = self._lower_oracles(lower_batch, z)
        f, f_v, f_u = self._upper_oracles(upper_batch)
        return g, f, d_v, ops.add(hvp, f_v), ops.add(cross, f_u)

    def _lower_oracles(self, batch, z):
        """(g, grad_v g, H_vv g z, H_uv g z): SAGA estimates on a batch, the exact values for batch None."""
        problem = self.problem
        lower, upper = list(problem.lower_vars), list(problem.upper_vars)
        if batch is None:
            g, gv, _, grads = autodiff.second_order(problem, None, z, upper + lower, mode=self.hvp)
            return g, gv, grads[len(upper) :], grads[: len(upper)]
        idx = self._indices("lower", batch)

        def one_sample(sample):
            with tf.GradientTape() as outer:
                with tf.GradientTape() as inner:
                    loss = _sample_loss(self.lower_sum, sample)
                grads = inner.gradient(loss, lower, unconnected_gradients=ZERO)
                weighted = ops.inner(grads, z)
            return loss, grads, outer.gradient(weighted, lower + upper, unconnected_gradients=ZERO)

        losses, grads, second = tf.vectorized_map(one_sample, batch)
        idx, grads, second = _gather_replicas(idx, grads, second)
        return (
            distribute.mean_scalar(tf.reduce_mean(losses)),
            self._saga("lower_grad", idx, grads),
            self._saga("lower_hvp", idx, second[: len(lower)]),
            self._saga("lower_cross", idx, second[len(lower) :]),
        )

    def _upper_oracles(self, batch):
        """(f, grad_v f, grad_u f): SAGA estimates on a batch, the exact values for batch None."""
        problem = self.problem
        lower, upper = list(problem.lower_vars), list(problem.upper_vars)
        if batch is None:
            f, grads = autodiff.upper_value_and_grad(problem, None, lower + upper)
            return f, grads[: len(lower)], grads[len(lower) :]
        idx = self._indices("upper", batch)

        def one_sample(sample):
            with tf.GradientTape() as tape:
                loss = _sample_loss(self.upper_sum, sample)
            return loss, tape.gradient(loss, lower + upper, unconnected_gradients=ZERO)

        losses, grads = tf.vectorized_map(one_sample, batch)
        idx, grads = _gather_replicas(idx, grads)
        return (
            distribute.mean_scalar(tf.reduce_mean(losses)),
            self._saga("upper_grad_v", idx, grads[: len(lower)]),
            self._saga("upper_grad_u", idx, grads[len(lower) :]),
        )

    def _indices(self, level: str, batch) -> tf.Tensor:
        finite_sum = self.lower_sum if level == "lower" else self.upper_sum
        if finite_sum is None:
            raise ValueError(
                f"SABA: {level}_loss is not a bl.FiniteSum but got {level} batches; its variance "
                f"reduction needs per-sample losses and indices: {_HOW}"
            )
        return finite_sum.indices(batch)

    def _saga(self, name: str, idx: tf.Tensor, values: Sequence[tf.Tensor]) -> List[tf.Tensor]:
        """mean_B(o_i - M[i]) + Mbar per variable; then M[i] <- o_i and Mbar moves by the change, each row once."""
        tables, means = self.memory[name]
        first = tf.cast(_first_occurrence(idx), values[0].dtype)
        estimates = []
        for table, mean, value in zip(tables, means, values):
            old = tf.gather(table, idx)
            diff = value - old
            estimates.append(tf.reduce_mean(diff, axis=0) + mean)
            new_mean = tf.convert_to_tensor(mean) + tf.tensordot(first, diff, axes=1) / float(table.shape[0])
            _scatter_rows(table, idx, _after_reading(value, old))
            distribute.assign(mean, new_mean)
        return estimates


def _sample_loss(finite_sum: FiniteSum, sample: Any) -> tf.Tensor:
    """One sample's loss: ``per_sample_loss`` on a batch of that one sample (inside ``tf.vectorized_map``)."""
    losses = finite_sum.per_sample(tf.nest.map_structure(lambda t: t[None], sample))
    if losses.shape[0] not in (None, 1):
        raise ValueError(f"bl.FiniteSum: per_sample_loss returned {losses.shape[0]} losses for a batch of one sample")
    return tf.reshape(losses, [])


def _after_reading(value: tf.Tensor, old: tf.Tensor) -> tf.Tensor:
    """``value`` (unchanged while ``old`` is finite), made to depend on the rows ``old`` read from a table: then
    XLA reads them before it overwrites the table in place; without it XLA copied each whole table every step
    (SABA on the benchmark's quadratic, 5 tables of 1024 x 100: 0.35 -> 0.04 ms per iteration)."""
    return value + tf.zeros([], value.dtype) * tf.reduce_sum(old[:1])


def _first_occurrence(idx: tf.Tensor) -> tf.Tensor:
    """True where an index appears for the first time in the batch (XLA-friendly: no tf.unique)."""
    positions = tf.range(tf.shape(idx)[0])
    earlier = positions[None, :] < positions[:, None]
    return ~tf.reduce_any(tf.equal(idx[:, None], idx[None, :]) & earlier, axis=1)


def _gather_replicas(idx: tf.Tensor, *groups: Sequence[tf.Tensor]):
    """Every replica's indices and per-sample values, concatenated (identity on one device)."""
    ctx = distribute.replica_context()
    if ctx is None:
        return (idx,) + tuple(list(g) for g in groups)
    return (ctx.all_gather(idx, axis=0),) + tuple([ctx.all_gather(x, axis=0) for x in g] for g in groups)


def _scatter_rows(table: tf.Variable, idx: tf.Tensor, rows: tf.Tensor) -> None:
    if distribute.replica_context() is None:
        table.scatter_nd_update(idx[:, None], rows)
    else:  # replicas hold the same gathered rows: assign the updated table through the first replica
        distribute.assign(table, tf.tensor_scatter_nd_update(tf.convert_to_tensor(table), idx[:, None], rows))

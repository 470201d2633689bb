"""A quadratic bilevel problem written as finite sums over indexed samples (for bl.SABA), with the closed form
of ``bl.toy.QuadraticBilevel``:

    g_i(u, v) = 1/2 (a_i'v - b_i'u - c_i)^2 + mu/2 ||v||^2         (n lower samples)
    f_j(u, v) = 1/2 ||v - d_j||^2 + alpha/2 ||u - e||^2              (m upper samples)

so mean_i g_i = 1/2 v'Hv - v'(Mu + m) + (terms without v) with H = A'A/n + mu I, M = A'B/n, m = A'c/n, and
mean_j f_j = f with d = mean_j d_j (plus a constant): v*(u), u* and the hypergradient are the toy's.
Batches are 1-tuples ``(indices,)``; batch None is the whole set.
"""

import numpy as np
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf.toy import QuadraticBilevel


class FiniteSumQuadratic(QuadraticBilevel):
    def __init__(self, n_lower=24, n_upper=12, n_u=3, n_v=5, mu=0.5, alpha=0.1, seed=0, dtype=np.float64):
        rng = np.random.default_rng(seed)
        A, B = rng.normal(size=(n_lower, n_v)), rng.normal(size=(n_lower, n_u))
        c, D, e = rng.normal(size=n_lower), rng.normal(size=(n_upper, n_v)), rng.normal(size=n_u)
        super().__init__(
            A.T @ A / n_lower + mu * np.eye(n_v), A.T @ B / n_lower, A.T @ c / n_lower, D.mean(0), e, alpha, dtype=dtype
        )
        self.samples = {k: tf.constant(x, dtype) for k, x in dict(A=A, B=B, c=c, D=D, e=e).items()}
        self.mu, self.n_lower, self.n_upper = mu, n_lower, n_upper

    def lower_per_sample(self, batch):
        (idx,) = (tf.range(self.n_lower),) if batch is None else batch  # None: the whole set
        s = self.samples
        r = (
            tf.linalg.matvec(tf.gather(s["A"], idx), self.v)
            - tf.linalg.matvec(tf.gather(s["B"], idx), self.u)
            - tf.gather(s["c"], idx)
        )
        return 0.5 * tf.square(r) + 0.5 * self.mu * tf.reduce_sum(tf.square(self.v))

    def upper_per_sample(self, batch):
        (idx,) = (tf.range(self.n_upper),) if batch is None else batch
        s = self.samples
        return 0.5 * tf.reduce_sum(
            tf.square(self.v[None] - tf.gather(s["D"], idx)), axis=1
        ) + 0.5 * self.alpha * tf.reduce_sum(tf.square(self.u - s["e"]))

    def finite_sum_problem(self) -> bl.BilevelProblem:
        return bl.BilevelProblem(
            bl.FiniteSum(self.upper_per_sample, self.n_upper),
            bl.FiniteSum(self.lower_per_sample, self.n_lower),
            [self.u],
            [self.v],
        )

    def datasets(self, batch=(4, 6), seed=0):
        """(upper, lower) tf.data pipelines of shuffled index batches (reshuffled each pass)."""

        def indices(n, b, s):
            return tf.data.Dataset.from_tensor_slices((np.arange(n),)).shuffle(n, seed=s).batch(b, drop_remainder=True)

        return indices(self.n_upper, batch[0], seed + 1), indices(self.n_lower, batch[1], seed + 2)

"""A strongly convex quadratic bilevel problem with a closed-form solution, shared by the tests.

g(u, v) = 1/2 v'Av - v'Bu            ->  v*(u) = A^-1 B u
f(u, v) = 1/2 ||v - c||^2 + a/2 ||u||^2
F(u)    = f(u, v*(u))                ->  u* = (J'J + aI)^-1 J'c,   J = A^-1 B
exact hypergradient:  grad F(u) = a u + J'(v*(u) - c)
"""

import numpy as np
import tensorflow as tf

import bilevel_tf as bl


class Quadratic:
    def __init__(self, n=5, m=3, a=1.0, cond=(1.0, 2.0), seed=0):
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.normal(size=(n, n)))
        self.A = q @ np.diag(np.linspace(cond[0], cond[1], n)) @ q.T
        self.B = rng.normal(size=(n, m)) / np.sqrt(m)
        self.c = rng.normal(size=n)
        self.a = a
        self.J = np.linalg.solve(self.A, self.B)
        self.u_star = np.linalg.solve(self.J.T @ self.J + a * np.eye(m), self.J.T @ self.c)
        self.v_star = self.J @ self.u_star
        self.n, self.m = n, m

    def problem(self, u0=None, v0=None, dtype=np.float32, **kwargs):
        self.u = tf.Variable(np.zeros(self.m, dtype) if u0 is None else np.asarray(u0, dtype), name="u")
        self.v = tf.Variable(np.zeros(self.n, dtype) if v0 is None else np.asarray(v0, dtype), name="v")
        A, B, c = (tf.constant(x, dtype) for x in (self.A, self.B, self.c))
        u, v, a = self.u, self.v, self.a

        def g(batch):
            return 0.5 * tf.tensordot(v, tf.linalg.matvec(A, v), 1) - tf.tensordot(v, tf.linalg.matvec(B, u), 1)

        def f(batch):
            return 0.5 * tf.reduce_sum(tf.square(v - c)) + 0.5 * a * tf.reduce_sum(tf.square(u))

        return bl.BilevelProblem(f, g, [u], [v], **kwargs)

    def v_of(self, u):
        return self.J @ u

    def hypergradient(self, u):
        return self.a * u + self.J.T @ (self.v_of(u) - self.c)

    def u_error(self):
        return np.linalg.norm(self.u.numpy() - self.u_star) / np.linalg.norm(self.u_star)

    def v_error(self):
        return np.linalg.norm(self.v.numpy() - self.v_star) / np.linalg.norm(self.v_star)

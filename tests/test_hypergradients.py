"""Hypergradients checked against the exact implicit-function hypergradient and finite differences."""

import keras
import numpy as np
import tensorflow as tf

import bilevel_tf as bl
from quadratic import Quadratic

SGD = keras.optimizers.SGD
U0 = np.array([0.3, -0.5, 0.8])


def test_approxgrad_matches_implicit_hypergradient():
    q = Quadratic()
    solver = bl.ApproxGrad(
        q.problem(u0=U0),
        upper_optimizer=SGD(0.1),
        lower_optimizer=SGD(0.3),
        inner_steps=200,
        linear_steps=400,
        linear_optimizer=SGD(0.2),
        sigma=0.0,
    )
    got = solver.hypergradient()[0].numpy()
    np.testing.assert_allclose(got, q.hypergradient(U0), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(q.u.numpy(), U0, rtol=1e-6)  # hypergradient() leaves u alone


def test_approxgrad_sigma_regularizes_the_system():
    # With sigma > 0 the solver solves (H + sigma I) p = grad_v f: compare with that closed form.
    q = Quadratic()
    sigma = 0.5
    solver = bl.ApproxGrad(
        q.problem(u0=U0),
        upper_optimizer=SGD(0.1),
        lower_optimizer=SGD(0.3),
        inner_steps=200,
        linear_steps=600,
        linear_optimizer=SGD(0.1),
        sigma=sigma,
    )
    got = solver.hypergradient()[0].numpy()
    v = q.v_of(U0)
    p = np.linalg.solve(q.A + sigma * np.eye(q.n), v - q.c)
    np.testing.assert_allclose(got, q.a * U0 + q.B.T @ p, rtol=1e-3, atol=1e-4)


def _unrolled_objective(q, u, v0, eta, T):
    """f(u, v_T(u)) for T plain SGD steps on g from v0 (numpy, float64)."""
    v = v0.copy()
    for _ in range(T):
        v = v - eta * (q.A @ v - q.B @ u)
    return 0.5 * np.sum((v - q.c) ** 2) + 0.5 * q.a * np.sum(u**2)


def test_rmd_matches_finite_differences_of_the_unrolled_map():
    q = Quadratic()
    v0 = np.array([0.1, -0.2, 0.3, 0.0, 0.5])
    eta, T = 0.2, 7
    solver = bl.RMD(q.problem(u0=U0, v0=v0), upper_optimizer=SGD(0.1), lower_optimizer=eta, inner_steps=T)
    got = solver.hypergradient()[0].numpy()
    h = 1e-6
    fd = np.array(
        [
            (_unrolled_objective(q, U0 + h * e, v0, eta, T) - _unrolled_objective(q, U0 - h * e, v0, eta, T)) / (2 * h)
            for e in np.eye(q.m)
        ]
    )
    np.testing.assert_allclose(got, fd, rtol=1e-4, atol=1e-5)
    # The forward pass leaves v at v_T.
    v_T = v0.copy()
    for _ in range(T):
        v_T = v_T - eta * (q.A @ v_T - q.B @ U0)
    np.testing.assert_allclose(q.v.numpy(), v_T, rtol=1e-5, atol=1e-6)


def test_truncated_rmd_matches_finite_differences_of_the_last_steps():
    # Back-propagating through the last K steps = differentiating f(u, v_T) with v_{T-K} held fixed.
    q = Quadratic()
    v0 = np.array([0.1, -0.2, 0.3, 0.0, 0.5])
    eta, T, K = 0.2, 9, 3
    solver = bl.RMD(q.problem(u0=U0, v0=v0), upper_optimizer=SGD(0.1), lower_optimizer=eta, inner_steps=T, truncation=K)
    got = solver.hypergradient()[0].numpy()
    v_mid = v0.copy()
    for _ in range(T - K):
        v_mid = v_mid - eta * (q.A @ v_mid - q.B @ U0)
    h = 1e-6
    fd = np.array(
        [
            (_unrolled_objective(q, U0 + h * e, v_mid, eta, K) - _unrolled_objective(q, U0 - h * e, v_mid, eta, K))
            / (2 * h)
            for e in np.eye(q.m)
        ]
    )
    np.testing.assert_allclose(got, fd, rtol=1e-4, atol=1e-5)


def test_rmd_with_many_steps_approaches_implicit_hypergradient():
    q = Quadratic()
    solver = bl.RMD(q.problem(u0=U0), upper_optimizer=SGD(0.1), lower_optimizer=0.3, inner_steps=60)
    got = solver.hypergradient()[0].numpy()
    np.testing.assert_allclose(got, q.hypergradient(U0), rtol=1e-3, atol=1e-4)


def test_penalty_upper_gradient_is_exact_at_the_penalized_minimizer():
    # Lemma 3: at v minimizing h over v (lam = 0, nu = 0), grad_u h_u equals the exact hypergradient
    # at that v, i.e. grad_u f - H_uv H_vv^-1 grad_v f, whatever rho is.
    q = Quadratic()
    rho = 3.0
    solver = bl.Penalty(
        q.problem(u0=U0),
        upper_optimizer=SGD(0.1),
        lower_optimizer=SGD(0.05),
        inner_steps=2000,
        rho=rho,
        lam=0.0,
        eps=0.0,
        nu=0.0,
        lr_decay=None,
        lower_scale=False,
        average_lower=False,
    )
    got = solver.hypergradient()[0].numpy()
    v = q.v.numpy()
    exact_at_v = q.a * U0 - q.B.T @ (-np.linalg.solve(q.A, v - q.c))  # grad_u f - H_uv H_vv^-1 grad_v f
    np.testing.assert_allclose(got, exact_at_v, rtol=1e-3, atol=1e-4)
    # and that v is the minimizer of f + rho/2 ||Av - Bu||^2
    v_pen = np.linalg.solve(np.eye(q.n) + rho * q.A @ q.A, q.c + rho * q.A @ q.B @ U0)
    np.testing.assert_allclose(v, v_pen, rtol=1e-3, atol=1e-4)


def test_second_order_products_match_explicit_matrices():
    q = Quadratic()
    problem = q.problem(u0=U0)
    w = np.array([1.0, -2.0, 0.5, 0.0, 3.0], np.float32)
    hv = bl.autodiff.hvp(problem, None, [tf.constant(w)])[0].numpy()
    np.testing.assert_allclose(hv, q.A @ w, rtol=1e-5)
    cross = bl.autodiff.hvp(problem, None, [tf.constant(w)], wrt=problem.upper_vars)[0].numpy()
    np.testing.assert_allclose(cross, -q.B.T @ w, rtol=1e-5)

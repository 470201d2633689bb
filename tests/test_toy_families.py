"""The generated toy families hold what the robustness benchmark relies on: exact answers (the hypergradient
against finite differences of F, zero at u*), the promised conditioning and scales, and loading another
instance into the same variables."""

import numpy as np
import pytest

from bilevel_tf import toy


def _central_differences(fn, u, eps=1e-5, coords=6):
    out = []
    for i in range(min(coords, len(u))):
        step = np.zeros_like(u)
        step[i] = eps
        out.append((fn(u + step) - fn(u - step)) / (2 * eps))
    return np.array(out)


@pytest.mark.parametrize("family", sorted(toy.FAMILIES))
def test_hypergradient_matches_finite_differences_and_vanishes_at_the_solution(family):
    problem = toy.FAMILIES[family](seed=3)
    u = np.clip(problem.u_star, -3, 3) + 0.2 * np.random.default_rng(0).normal(size=problem.n_u)
    exact = problem.hypergradient(u)
    numeric = _central_differences(problem.value, u)
    np.testing.assert_allclose(exact[: len(numeric)], numeric, rtol=1e-4, atol=1e-4 * np.abs(exact).max())
    assert problem.value_star <= problem.value(problem.u0)
    # at u* the gradient vanishes, except along coordinates pinned on the reference's box
    free = np.abs(problem.u_star) < 19.9
    assert np.abs(problem.hypergradient(problem.u_star)[free]).max() < 1e-6


def test_random_quadratic_family_knobs_and_scale():
    for seed in range(5):
        data = toy.random_quadratic_data(seed, cond=100.0)
        q = toy.QuadraticBilevel(*data, dtype=np.float64)
        eig = np.linalg.eigvalsh(q.H)
        assert eig[-1] / eig[0] == pytest.approx(100.0) and eig[0] >= 0.5 - 1e-9 and eig[-1] <= 50 + 1e-9
        assert np.sqrt(np.mean(q.u_star**2)) == pytest.approx(1.0)
        assert q.hypergradient(q.u_star) == pytest.approx(0.0, abs=1e-9)
    weak, strong = (
        np.linalg.norm(toy.QuadraticBilevel(*toy.random_quadratic_data(0, 4, 6, 10.0, c)).J, 2)
        for c in ("weak", "strong")
    )
    assert weak <= 0.3 + 1e-9 < 2.9 < strong
    sizes = {toy.random_quadratic_data(s)[1].shape for s in range(20)}
    assert len(sizes) > 10 and all(2 <= n <= 100 for shape in sizes for n in shape)
    with pytest.raises(ValueError, match="coupling"):
        toy.random_quadratic_data(0, coupling="medium")


def test_load_puts_another_instance_into_the_same_variables():
    first = toy.regularization_selection(0, "logistic")
    u_var = first.u
    other = toy.regularization_data(1, "logistic")
    first.load(other)
    assert first.u is u_var and np.allclose(first.u.numpy(), 0.0)
    assert first.value_star == pytest.approx(toy.regularization_selection(1, "logistic").value_star, rel=1e-9)
    with pytest.raises(ValueError, match="x_train"):
        first.load(dict(other, x_train=other["x_train"][:, :3]))


def test_suboptimality_is_zero_at_the_reference_and_one_at_the_start():
    problem = toy.reweighting(2, n_train=40)
    assert problem.suboptimality() == pytest.approx(1.0)
    assert problem.suboptimality(problem.u_star) == pytest.approx(0.0, abs=1e-9)
    assert problem.flipped.any() and problem.n_u == 40

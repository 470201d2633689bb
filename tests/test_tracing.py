"""One compiled graph per upper iteration: no Python loss code per inner step, no retracing."""

import pytest
import tensorflow as tf

import bilevel_tf as bl
from quadratic import Quadratic


class Counter:
    def __init__(self):
        self.calls = 0


def _counting_problem(q, counter):
    base = q.problem()

    def f(batch):
        counter.calls += 1
        return base.upper_loss(batch)

    def g(batch):
        counter.calls += 1
        return base.lower_loss(batch)

    return bl.BilevelProblem(f, g, base.upper_vars, base.lower_vars)


KW = {
    "penalty": {},
    "approxgrad": {},
    "rmd": {"lower_optimizer": 0.1},
    "gd": {},
    "vpbgd": {},
    "gpbgd": {},
    # SABA takes per-sample losses (bl.FiniteSum), not these batches: tests/test_saba.py covers it
    "soba": {},
    "amigo": {},
    "stocbio": {"linear_steps": 3},
    "f2sa": {},
    "bome": {},
    "implicit": {},
}


@pytest.mark.parametrize("method", sorted(KW))
def test_loss_calls_do_not_grow_with_inner_steps_and_steps_do_not_retrace(method):
    calls_per_trace = []
    for T in (2, 9):
        counter = Counter()
        solver = bl.make_solver(method, _counting_problem(Quadratic(), counter), inner_steps=T, **KW[method])
        batch = tf.zeros([4])
        solver.step(batch, batch)
        traced_calls = counter.calls
        assert traced_calls > 0
        for _ in range(3):
            solver.step(batch + 1.0, batch - 1.0)  # same shapes, new values
        assert counter.calls == traced_calls, "Python loss code ran again: the step retraced"
        assert solver.trace_count == 1
        calls_per_trace.append(traced_calls)
    assert calls_per_trace[0] == calls_per_trace[1], calls_per_trace


def test_iterations_counter_and_optimizer_steps():
    q = Quadratic()
    solver = bl.Penalty(q.problem(), inner_steps=4)
    for _ in range(3):
        solver.step()
    assert int(solver.iterations.numpy()) == 3
    assert int(solver.lower_optimizer.iterations.numpy()) == 12
    assert int(solver.upper_optimizer.iterations.numpy()) == 3


@pytest.mark.parametrize("method", sorted(KW))
def test_xla_and_unrolled_steps_equal_the_graph_loop_step(method):
    results = []
    # (jit_compile, unroll): graph loop, unrolled loop, XLA graph loop, XLA with the default (auto) unrolling
    for jit, unroll in ((False, False), (False, True), (True, False), (True, None)):
        q = Quadratic()
        solver = bl.make_solver(method, q.problem(), inner_steps=3, jit_compile=jit, unroll=unroll, **KW[method])
        assert solver.unroll == (unroll if unroll is not None else not tf.config.list_logical_devices("GPU"))
        for _ in range(3):
            logs = solver.step()
        results.append((q.u.numpy(), q.v.numpy(), float(logs["upper_loss"])))
    u0, v0, f0 = results[0]
    for u1, v1, f1 in results[1:]:
        tf.debugging.assert_near(u0, u1, rtol=1e-5, atol=1e-6)
        tf.debugging.assert_near(v0, v1, rtol=1e-5, atol=1e-6)
        assert f0 == pytest.approx(f1, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("method", ["penalty", "approxgrad", "vpbgd"])
def test_run_loops_in_graph_and_reset_state_restarts_identically(method):
    q = Quadratic()
    solver = bl.make_solver(method, q.problem(), inner_steps=2, **KW[method])
    first = {k: float(v) for k, v in solver.run(5).items()}
    assert int(solver.iterations.numpy()) == 5
    u_after = q.u.numpy().copy()
    solver.run(7)  # a different count does not retrace
    assert solver.trace_count == 2  # the step body traced once inside run's loop, plus the first step
    solver.reset_state()
    q.u.assign(tf.zeros_like(q.u))
    q.v.assign(tf.zeros_like(q.v))
    again = {k: float(v) for k, v in solver.run(5).items()}
    assert again == pytest.approx(first, rel=1e-6, abs=1e-7)
    tf.debugging.assert_near(q.u.numpy(), u_after)
    assert int(solver.iterations.numpy()) == 5

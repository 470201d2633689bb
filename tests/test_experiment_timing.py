"""timing.time_steps: the shared timer of the paper-size timing scripts."""

from bilevel_tf.runner.timing import time_steps


def test_time_steps_times_the_first_call_apart_and_draws_inputs_outside_the_timer():
    calls, drawn = [], []

    def inputs():
        drawn.append(len(drawn))
        return (len(drawn), "batch")

    def step(i, batch):
        calls.append((i, batch))
        sum(range(200000 if i == 1 else 1000))  # the first call is the slow "tracing" one

    timing = time_steps(step, 4, inputs=inputs)
    assert calls == [(i, "batch") for i in range(1, 6)] and len(drawn) == 5  # 1 first call + 4 timed repeats
    assert set(timing) == {"first_seconds", "seconds", "cpu_seconds"}
    assert timing["first_seconds"] > timing["seconds"] > 0 and timing["cpu_seconds"] >= 0


def test_time_steps_without_inputs_calls_the_step_with_no_arguments():
    count = []
    timing = time_steps(lambda: count.append(1), 2)
    assert len(count) == 3 and timing["first_seconds"] >= 0 and timing["seconds"] >= 0

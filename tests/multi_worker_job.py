"""One solver through the library API alone, for tests/test_multi_worker.py: the importance-weighted
classifier of tests/importance_toy.py (as in tests/test_distributed.py) fitted by ``bl.Penalty`` through
``bl.fit`` on shuffled global batches.

``python multi_worker_job.py OUT`` runs it as one worker of the cluster in ``TF_CONFIG``
(``--strategy multi_worker``) and, on the chief, writes the final variables and logs to ``OUT/final.json``; the
test calls :func:`fit` in its own process for the single-process reference.
"""

import json
import os
import sys

STEPS = 6
GLOBAL_BATCH = 8


def fit(strategy, checkpoint_dir):
    """Build the problem and the solver in ``strategy``'s scope (None: one device), fit ``STEPS`` upper
    iterations; returns the importance, the weights and the last logs."""
    import keras
    import tensorflow as tf

    from importance_toy import importance_data, importance_problem

    import bilevel_tf as bl
    from bilevel_tf.training import workers

    keras.utils.set_random_seed(1)
    scope = strategy.scope() if strategy is not None else tf.distribute.get_strategy().scope()
    with scope:
        problem, importance, model = importance_problem(16, 0.5)
        solver = bl.Penalty(
            problem, upper_optimizer=keras.optimizers.SGD(0.5), lower_optimizer=keras.optimizers.SGD(0.1), inner_steps=2
        )
    lower, upper = importance_data(16)
    # every worker builds the same shuffled stream of global batches; bl.fit gives each its half of every batch
    lower_ds = tf.data.Dataset.from_tensor_slices(lower).shuffle(16, seed=2).batch(GLOBAL_BATCH, drop_remainder=True)
    upper_ds = tf.data.Dataset.from_tensor_slices(upper).shuffle(16, seed=3).batch(GLOBAL_BATCH, drop_remainder=True)
    history = bl.fit(
        solver, upper_ds, lower_ds, steps=STEPS, checkpoint_dir=checkpoint_dir, checkpoint_every=2, verbose=0
    )
    return {
        "importance": importance.numpy().tolist(),
        "weights": [w.numpy().tolist() for w in model.trainable_variables],
        "logs": {k: v for k, v in history[-1].items() if k != "seconds"},
        "chief": workers.is_chief(strategy),
        "iterations": int(solver.iterations.numpy()),
    }


if __name__ == "__main__":
    from bilevel_tf.training import workers

    out = sys.argv[1]
    strategy = workers.make_strategy("multi_worker")  # before any other TensorFlow op
    result = fit(strategy, os.path.join(out, "checkpoints"))
    if result["chief"]:
        with open(os.path.join(out, "final.json"), "w") as f:
            json.dump(result, f)
    print(f"worker {workers.task_index(strategy)} done", flush=True)

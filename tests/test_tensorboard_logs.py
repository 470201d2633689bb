"""--tensorboard: scalar summaries TensorBoard's scalars dashboard reads, written without the tensorboard package."""

import argparse
import glob
import os

import numpy as np
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf.runner import tensorboard_logs


def read_scalars(folder):
    """{tag: {step: value}} of every event file under ``folder``, checking each summary is marked a scalar."""
    out = {}
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                out.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return out


def test_records_and_series_replayed_as_scalars(tmp_path):
    args = argparse.Namespace(out=str(tmp_path), tensorboard=True)
    tensorboard_logs.write_records(
        args,
        [
            {"iteration": 10, "loss": 0.5, "nested": {"a": 2}, "name": "x"},
            {"iteration": 20, "loss": float("nan"), "nested": {"a": 3}},
        ],
        step="iteration",
    )
    scalars = read_scalars(os.path.join(tmp_path, "tensorboard"))
    assert scalars == {"loss": {10: 0.5}, "nested/a": {10: 2.0, 20: 3.0}}  # text and NaN left out
    tensorboard_logs.write_series(args, "ex1/penalty/T1", [0, 10, 20], {"distance_mean": [3.0, 2.0, 1.0]})
    curve = read_scalars(os.path.join(tmp_path, "tensorboard", "ex1", "penalty", "T1"))["distance_mean"]
    assert curve == {0: 3.0, 10: 2.0, 20: 1.0}
    off = argparse.Namespace(out=str(tmp_path / "off"), tensorboard=False)
    assert tensorboard_logs.log_dir(off) is None
    tensorboard_logs.write_records(off, [{"loss": 1.0}])
    assert not os.path.exists(tmp_path / "off")


def test_fit_logs_every_step_to_tensorboard(tmp_path):
    u, v = tf.Variable([1.0]), tf.Variable([0.0])
    problem = bl.BilevelProblem(
        lambda _: tf.reduce_sum(tf.square(v - 2.0)) + tf.reduce_sum(tf.square(u)),
        lambda _: tf.reduce_sum(tf.square(v - u)),
        [u],
        [v],
    )
    solver = bl.GD(problem, 0.1, 0.1, inner_steps=1)
    history = bl.fit(solver, steps=3, verbose=0, tensorboard_dir=str(tmp_path))
    scalars = read_scalars(str(tmp_path))
    assert sorted(scalars["upper_loss"]) == [1, 2, 3]
    np.testing.assert_allclose(
        [scalars["upper_loss"][h["step"]] for h in history], [h["upper_loss"] for h in history], rtol=1e-6
    )

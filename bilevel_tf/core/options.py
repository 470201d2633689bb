"""What a user chooses by name: precision policies, distribution strategies.

Plain data without TensorFlow, so that the runners can offer them as flag choices (and answer ``--help``)
before TensorFlow loads; :mod:`bilevel_tf.core.precision` and :mod:`bilevel_tf.training.workers` read them from
here. The methods are declared in :mod:`bilevel_tf.solvers.registry`, the Penalty schedules in
:mod:`bilevel_tf.solvers.penalty_schedules`.
"""

from typing import Tuple

FLOAT32 = "float32"
MIXED_BFLOAT16 = "mixed_bfloat16"
#: the Keras dtype policies the library supports (``bl.precision.set_policy``)
PRECISIONS: Tuple[str, ...] = (FLOAT32, MIXED_BFLOAT16)
#: ``--strategy`` values (``bilevel_tf.training.workers.make_strategy``)
STRATEGIES: Tuple[str, ...] = ("none", "mirrored", "multi_worker")

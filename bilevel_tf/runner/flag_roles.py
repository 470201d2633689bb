"""What each recorded flag means for a run's identity, declared once (TensorFlow-free).

A runner's flags are recorded in run.json and results.json (``results_file.config_of``). Their role decides how a
rerun in the same folder (:mod:`bilevel_tf.runner.run_folder`) and the paper tables (:mod:`bilevel_tf.paper.pooling`)
treat a difference:

=========== ================================================ ==========================
role        rerun in the same ``--out``                      paper tables
=========== ================================================ ==========================
OUTPUT      free to differ (where and how loudly a run works) pooled
EXECUTION   free to differ (how a step is computed)           kept apart
BUDGET      may grow: the run continues further              kept apart (a solver setting)
POOLED      must match (part of the run's identity)           pooled (seeds, extra reports)
(none)      must match                                       kept apart
=========== ================================================ ==========================
"""

from __future__ import annotations

from typing import Dict, FrozenSet

OUTPUT, EXECUTION, BUDGET, POOLED = "output", "execution", "budget", "pooled"

#: flag (its argparse dest, as recorded) -> role; a flag not listed is part of the run's identity everywhere
ROLES: Dict[str, str] = {
    **dict.fromkeys(
        (
            "out",
            "fresh",
            "verbose",
            "debug",
            "checkpoint_every",
            "data_dir",
            "tensorboard",
            "steps_per_execution",
            "experiment",
        ),
        OUTPUT,
    ),
    "jit": EXECUTION,
    # "how long to run" under each runner's name for it
    **dict.fromkeys(("epochs", "max_steps", "meta_iterations", "outer_itr", "iterations", "max_iterations"), BUDGET),
    # the seed, and settings that add reports without changing the others (--baselines adds metrics)
    **dict.fromkeys(
        (
            "seed",
            "baselines",
            "deterministic",
            "eval_batch",
            "log_every",
            "paper",
            "strategy",
            "examples",
            "methods",
            "ts",
            "skip_ablation",
            "ablation_trials",
        ),
        POOLED,
    ),
}


def flags_with(*roles: str) -> FrozenSet[str]:
    """The flags of these roles."""
    return frozenset(flag for flag, role in ROLES.items() if role in roles)

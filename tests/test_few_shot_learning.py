"""Learning test: Penalty meta-training of the Omniglot conv net on rotated 8x8 digits (28 meta-train classes)
makes 5-way 1-shot accuracy on the 12 unseen meta-test classes clearly better than the untrained representation
(same tasks, same head initialisations, the paper's 100-step meta-test)."""

import pytest
from runner_utils import run_runner

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"

OMNIGLOT = "few_shot/omniglot/test_bilevel_few_shot_learning_omniglot.py"

# A small problem (4 tasks x 5 classes x (1 support + 5 queries), T=5, 100 meta-iterations) for a CPU minute.
ARGS = [
    "--dataset",
    "digits",
    "--method",
    "penalty",
    "--n-way",
    "5",
    "--k-shot",
    "1",
    "--query",
    "5",
    "--meta-batch",
    "4",
    "--inner-steps",
    "5",
    "--meta-iterations",
    "100",
    "--test-tasks",
    "200",
    "--eval-every",
    "1000",
    "--eval-batch",
    "50",
    "--seed",
    "0",
]


def test_penalty_meta_training_beats_untrained_representation(tmp_path):
    m = run_runner(OMNIGLOT, ARGS, tmp_path)["metrics"]
    trained, untrained = m["test_accuracy"], m["untrained_test_accuracy"]
    print(
        f"5-way 1-shot digits: trained {trained:.4f} +- {m['test_accuracy_ci95']:.4f}, "
        f"untrained {untrained:.4f} +- {m['untrained_test_accuracy_ci95']:.4f}"
    )
    assert trained > untrained + 0.08
    assert trained - m["test_accuracy_ci95"] > untrained + m["untrained_test_accuracy_ci95"]
    assert m["meta_train_test_accuracy"] > trained  # the seen classes are easier still

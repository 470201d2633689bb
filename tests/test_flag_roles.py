"""Flag roles, declared once in bilevel_tf.runner.flag_roles, decide both the rerun rule and the tables' pooling."""

from bilevel_tf.runner import flag_roles, run_folder
from bilevel_tf.paper import pooling


def test_each_role_reaches_the_run_folder_and_the_tables():
    roles = flag_roles.ROLES
    assert set(roles.values()) == {flag_roles.OUTPUT, flag_roles.EXECUTION, flag_roles.BUDGET, flag_roles.POOLED}
    # free on a rerun: output and execution flags, nothing that changes what a run computes
    assert run_folder.NON_RESULT_FLAGS == {f for f, r in roles.items() if r in ("output", "execution")}
    assert {"jit", "out", "verbose"} <= run_folder.NON_RESULT_FLAGS
    assert not {"seed", "method"} & run_folder.NON_RESULT_FLAGS
    assert run_folder.BUDGET_FLAGS == {
        "epochs",
        "max_steps",
        "meta_iterations",
        "outer_itr",
        "iterations",
        "max_iterations",
    }
    # pooled in the tables: output flags and seeds, never how a step was computed nor the budget
    assert {"seed", "out", "baselines"} <= pooling.IGNORED_KEYS
    assert not ({"jit", "method"} | run_folder.BUDGET_FLAGS) & pooling.IGNORED_KEYS


def test_a_new_flag_needs_one_entry():
    try:
        flag_roles.ROLES["my_budget"] = flag_roles.BUDGET
        assert "my_budget" in flag_roles.flags_with(flag_roles.BUDGET)
    finally:
        del flag_roles.ROLES["my_budget"]

"""Load an experiment runner script (they live in folders without __init__.py) and run its main()."""

import importlib.util
import json
import sys
from pathlib import Path

from bilevel_tf.solvers import registry

ROOT = Path(__file__).resolve().parents[1]


def load_runner(relative_path: str):
    path = ROOT / relative_path
    name = "runner_" + "_".join(path.with_suffix("").parts[-3:])
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # runners may import sibling modules (models, preprocessing)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def run_runner(relative_path: str, args, out_dir, verbose: int = 0) -> dict:
    """Run ``main(args + --out out_dir)`` in-process and return the parsed results.json."""
    module = load_runner(relative_path)
    module.main(list(args) + ["--out", str(out_dir), "--verbose", str(verbose)])
    return json.loads((Path(out_dir) / "results.json").read_text())


#: method name or alias -> the class name its results.json records (from the registry)
SOLVER_CLASSES = {name: registry.lookup(name).class_name for name in registry.all_names()}


def assert_solver_config(result: dict, method: str) -> dict:
    """results.json records the full configuration of the solver that produced it (class, T, optimizers)."""
    solver = result["config"]["solver"]
    assert solver["class"] == SOLVER_CLASSES[method], solver
    assert solver["inner_steps"] >= 1
    for level in ("upper_optimizer", "lower_optimizer"):
        assert solver[level]["config"]["learning_rate"] > 0, (level, solver[level])
    return solver

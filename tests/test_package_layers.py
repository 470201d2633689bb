"""The library's packages import one another in one direction: core <- solvers <- training <- runner. Unlike
tests/test_code_shape.py's module cycles, imports inside functions count here too (they run later, but a
layer that needs a higher one is still tied to it)."""

import ast
from pathlib import Path
from typing import Dict, Set

PACKAGE = Path(__file__).resolve().parents[1] / "bilevel_tf"
LAYERS = ("core", "solvers", "training", "runner")  # each may import only those before it


def _imported_modules(path: Path) -> Set[str]:
    """Every bilevel_tf module a file imports, anywhere in it (relative imports resolved)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = parts[:-1]  # a module's package; an __init__'s package is itself
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - (node.level - 1)] + ([node.module] if node.module else []))
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("bilevel_tf.")}


def _package_graph() -> Dict[str, Set[str]]:
    """subpackage -> the other subpackages its modules import."""
    graph: Dict[str, Set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).parts
        if len(relative) < 2:  # bilevel_tf/__init__.py: the public namespace over every layer
            continue
        source = relative[0]
        targets = {name.split(".")[1] for name in _imported_modules(path)}
        graph.setdefault(source, set()).update(t for t in targets if t != source and (PACKAGE / t).is_dir())
    return graph


GRAPH = _package_graph()


def test_the_graph_sees_imports_inside_functions():
    # known edges are seen (training/loop.py imports solvers.base; solvers/base.py imports core)
    assert "solvers" in GRAPH["training"] and "core" in GRAPH["solvers"]
    sample = PACKAGE / "training" / "loop.py"
    assert "bilevel_tf.solvers.base" in _imported_modules(sample)


def test_solvers_do_not_import_training():
    assert "training" not in GRAPH["solvers"], "bilevel_tf.solvers imports bilevel_tf.training"


def test_core_solvers_training_runner_import_downward_only():
    upward = {
        f"{source} -> {target}"
        for source in LAYERS
        for target in GRAPH.get(source, set())
        if target in LAYERS and LAYERS.index(target) > LAYERS.index(source)
    }
    assert not upward, f"imports against the layers {' <- '.join(LAYERS)}: {sorted(upward)}"

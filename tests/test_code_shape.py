"""The package's shape stays small: no module over 400 lines, no function over 60 (its docstring, which
the API reference shows, not counted), no import cycle, no re-export shims (``noqa: F401``) and no aliases of
the package's own names (a name with two homes)."""

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

PACKAGE = Path(__file__).resolve().parents[1] / "bilevel_tf"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
#: files the limits do not reach yet, and why (each entry is a debt with an owner)
EXEMPT: dict = {}


def _modules() -> Dict[str, Tuple[Path, ast.Module]]:
    """dotted module name -> (path, parsed tree), for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = (path, ast.parse(path.read_text(), filename=str(path)))
    return found


MODULES = _modules()


def _relative(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def test_no_module_over_the_line_limit():
    long = {
        _relative(path): n
        for path, _ in MODULES.values()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_over_the_line_limit():
    long = {}
    for path, tree in MODULES.values():
        if _relative(path) in EXEMPT:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                first = node.body[0]
                if (
                    isinstance(first, ast.Expr)
                    and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)
                ):
                    length -= first.end_lineno - first.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{_relative(path)}:{node.lineno} {node.name}"] = length
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def _target(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``from ... import`` statement reads from."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _import_graph() -> Dict[str, Set[str]]:
    """module -> the package modules it imports when it is imported (statements in functions run later)."""
    graph: Dict[str, Set[str]] = {}
    for name, (path, tree) in MODULES.items():
        is_package = path.name == "__init__.py"
        edges: Set[str] = set()
        for node in tree.body:  # module level only, including the bodies of top-level if/try blocks
            for statement in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
                if isinstance(statement, ast.Import):
                    edges |= {alias.name for alias in statement.names}
                elif isinstance(statement, ast.ImportFrom):
                    target = _target(name, is_package, statement)
                    edges.add(target)
                    edges |= {f"{target}.{alias.name}" for alias in statement.names}  # submodule imports
        graph[name] = {edge for edge in edges if edge in MODULES and edge != name}
    return graph


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle():
    # a package's __init__ importing its own submodules is not a cycle of concern: leave those edges out
    graph = {
        name: {edge for edge in edges if not (MODULES[name][0].name == "__init__.py" and edge.startswith(name + "."))}
        for name, edges in _import_graph().items()
    }
    assert not _cycles(graph)


def _package_imports() -> Dict[str, Set[str]]:
    """subpackage -> the other subpackages of bilevel_tf it imports, at module level or inside functions (a
    function-level import is a dependency too; only the order of loading differs)."""
    found: Dict[str, Set[str]] = {}
    for name, (path, tree) in MODULES.items():
        if "." not in name:
            continue
        source = name.split(".")[1]
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                target = _target(name, is_package, node)
                targets = [target] + [f"{target}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                parts = target.split(".")
                if (
                    parts[0] == "bilevel_tf"
                    and len(parts) > 1
                    and parts[1] != source
                    and f"bilevel_tf.{parts[1]}" in MODULES
                ):
                    found.setdefault(source, set()).add(parts[1])
    return found


def test_nothing_in_the_package_imports_the_paper_tools():
    # bilevel_tf.paper drives the runners (its plans read the apps' method tables): an app, the runner helpers or
    # the published numbers importing it would close a cycle between packages
    imports = _package_imports()
    importers = sorted(source for source, targets in imports.items() if "paper" in targets)
    assert importers == [], f"packages importing bilevel_tf.paper: {importers}"
    assert "apps" in imports["paper"] and "published" in imports["apps"]  # the direction this guards
    graph = {name: set() for targets in imports.values() for name in targets} | imports
    tangled = [cycle for cycle in _cycles(graph) if {"apps", "paper", "published"} & set(cycle)]
    assert not tangled, f"package-level import cycles through apps, paper or published: {tangled}"


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_reexport_shims_or_aliases():
    shims = [
        f"{_relative(path)}:{number}"
        for path, _ in MODULES.values()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "noqa: F401" in line
    ]
    assert not shims, f"re-export shims: {shims}"
    aliases = []
    for name, (path, tree) in MODULES.items():
        if _relative(path) in EXEMPT:
            continue
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("bilevel_tf")):
                aliases += [
                    f"{_relative(path)}:{node.lineno} {a.name} as {a.asname}"
                    for a in node.names
                    if a.asname and a.asname != a.name and a.name[:1].isupper()
                ]
    assert not aliases, f"package names imported under another name: {aliases}"

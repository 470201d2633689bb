"""The README and the documentation site stay what they promise: a short README that starts with the two set-up
commands, whose links lead somewhere and whose solver table covers every method; an API reference that documents
every public name; prose that names only files and modules that exist. (CI also builds the site with
`mkdocs build --strict`, which checks the pages' links and anchors.)"""

import fnmatch
import importlib.util
import re
from pathlib import Path

import bilevel_tf

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
README_LINES = README.split("\n")
MAX_README_LINES = 250
LINK = re.compile(r"\]\(([^)\s]+)\)")
PUBLIC_NAME_DIRECTIVE = re.compile(r"^::: bl\.(\w+)\s*$", re.MULTILINE)
SNIPPET = re.compile(r'^--8<-- "README\.md:([a-z_]+)"$', re.MULTILINE)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
FENCED_LINE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
REPO_PATH = re.compile(
    r"(?<![\w/.-])((?:bilevel_tf|benchmarks|tests|synthetic_examples|data_denoising|few_shot|"
    r"data_poisoning|clean_label|docs)/[\w./-]*\w/?)"
)
DOTTED = re.compile(r"(?<![\w.])bilevel_tf((?:\.[a-z]\w*)+)")


def _setup_commands():
    """The two commands of the README's opening code block (title, blank line, ```bash, two lines, ```)."""
    assert README_LINES[0] == "# bilevel_tf" and README_LINES[1] == "", "the README starts with its title"
    assert README_LINES[2] == "```bash" and README_LINES[5] == "```", (
        "the README's title is followed by one bash block of exactly two commands (docs/index.md shows lines 3-6)"
    )
    return README_LINES[3], README_LINES[4]


def test_readme_is_short_and_starts_with_the_two_commands():
    lines = README.rstrip("\n").split("\n")
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    install_and_demo, test_command = _setup_commands()
    match = re.fullmatch(r"pip install -e \. && python (\S+\.py) .*", install_and_demo)
    assert match, f"first command installs and runs a demo: {install_and_demo!r}"
    assert (ROOT / match.group(1)).is_file(), f"the demo runner {match.group(1)} does not exist"
    assert test_command.startswith('pip install -e ".[test]" && python -m pytest '), test_command


def test_ci_runs_the_readme_test_command():
    pytest_command = _setup_commands()[1].split(" && ", 1)[1]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert pytest_command in ci_lines, f".ci/run has no line running {pytest_command!r}"


def test_every_relative_link_of_the_readme_exists():
    targets = [t.split("#", 1)[0] for t in LINK.findall(README) if not re.match(r"[a-z]+:", t)]
    assert any(t.endswith(".py") for t in targets), "the experiment table links the runners"
    missing = [t for t in targets if t and not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_readme_solver_table_has_every_method():
    missing = [
        method for method in bilevel_tf.METHODS if f"| `bl.{bilevel_tf.get_solver(method).__name__}` |" not in README
    ]
    assert not missing, f"methods without a row in the README's solver table: {missing}"


def test_docs_include_only_readme_sections_that_exist():
    names = {name for page in (ROOT / "docs").rglob("*.md") for name in SNIPPET.findall(page.read_text())}
    assert names, "the site shows the README's sections (docs/index.md, docs/guide/)"
    for name in names:
        assert f"--8<-- [start:{name}]" in README and f"--8<-- [end:{name}]" in README, (
            f"README.md lost the section {name!r} that docs/ includes"
        )


def test_api_reference_documents_every_public_name():
    documented = []
    for page in sorted((ROOT / "docs" / "api").glob("*.md")):
        documented += PUBLIC_NAME_DIRECTIVE.findall(page.read_text())
    assert sorted(set(documented)) == sorted(documented), "a public name is documented twice"
    assert not set(documented) - set(bilevel_tf.__all__), "docs/api names something that is not public"
    assert not set(bilevel_tf.__all__) - set(documented), (
        f"public names missing from docs/api: {sorted(set(bilevel_tf.__all__) - set(documented))}"
    )


def _prose_files():
    return [ROOT / "README.md", ROOT / "CONTRIBUTING.md"] + sorted((ROOT / "docs").rglob("*.md"))


def _ignored(path: str) -> bool:
    """Data and outputs the docs name but the repository never holds (.gitignore)."""
    patterns = [
        p.strip().strip("/")
        for p in (ROOT / ".gitignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    return any(
        fnmatch.fnmatch(path.rstrip("/"), pattern) or path.startswith(pattern.rstrip("*") + "/") for pattern in patterns
    )


def _exists(path: str) -> bool:
    """A file or folder, or ``module.attribute`` of a Python file (``tests/runner_utils.run_runner``)."""
    module = re.sub(r"\.\w+$", "", path)
    return (ROOT / path).exists() or (ROOT / f"{module}.py").is_file() or _ignored(path)


def test_files_and_modules_the_docs_name_exist():
    """Code moves (issue 24's layout): a path or module named in the README, CONTRIBUTING or docs/ must still
    be there, so a move updates the prose with it."""
    stale = []
    for page in _prose_files():
        text = page.read_text(encoding="utf-8")
        code_lines = [line for block in FENCED_LINE.findall(text) for line in block.split("\n")]
        for span in CODE_SPAN.findall(text) + code_lines:
            stale += [(page.name, p) for p in REPO_PATH.findall(span) if "<" not in span and not _exists(p)]
            for dotted in DOTTED.findall(span):
                first = dotted.split(".")[1]
                if first not in bilevel_tf.__all__ and importlib.util.find_spec(f"bilevel_tf.{first}") is None:
                    stale.append((page.name, "bilevel_tf" + dotted))
    assert not stale, f"the docs name files or modules that do not exist: {stale}"

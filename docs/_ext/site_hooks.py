"""MkDocs hooks of the documentation site.

* ``::: bl.NAME`` on a page documents the public name ``bilevel_tf.NAME`` from the module that defines it, so
  the API pages name public names only and keep building when code moves between modules.
* Figures that live beside the benchmark results they plot are served from there (no copy in docs/).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys

from mkdocs.structure.files import File

PUBLIC_NAME = re.compile(r"^::: bl\.(\w+)[ \t]*$", re.MULTILINE)
#: site path -> repository path, for files shown in the site but kept outside docs/
REPOSITORY_FILES = {
    "figures/simulated_suboptimality.png": "benchmarks/results/simulated/suboptimality.png",
}


def defining_path(name: str) -> str:
    """The dotted path griffe reads ``bilevel_tf.<name>`` from: its module for a module, its defining module
    for a class or function, and for data a submodule holding it (griffe follows a re-export to its source)."""
    package = importlib.import_module("bilevel_tf")
    value = getattr(package, name)  # AttributeError names a public name the package lost
    if inspect.ismodule(value):
        return value.__name__
    if inspect.isclass(value) or inspect.isfunction(value):
        return f"{value.__module__}.{value.__qualname__}"
    holders = sorted(
        module_name
        for module_name, module in list(sys.modules.items())
        if module_name.startswith("bilevel_tf.") and vars(module).get(name) is value
    )
    if not holders:
        raise ValueError(f"bl.{name}: no bilevel_tf submodule holds it")
    return f"{holders[0]}.{name}"


def on_config(config, **kwargs):
    # document the checkout mkdocs.yml sits in, whatever else is installed (griffe reads it from there too)
    root = os.path.dirname(os.path.abspath(config["config_file_path"]))
    if root not in sys.path:
        sys.path.insert(0, root)
    return config


def on_page_markdown(markdown: str, **kwargs) -> str:
    return PUBLIC_NAME.sub(lambda match: "::: " + defining_path(match.group(1)), markdown)


def on_files(files, config, **kwargs):
    root = os.path.dirname(os.path.abspath(config["config_file_path"]))
    for site_path, repository_path in REPOSITORY_FILES.items():
        files.append(File.generated(config, site_path, abs_src_path=os.path.join(root, repository_path)))
    return files

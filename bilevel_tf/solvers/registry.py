"""The method registry: every solver is declared here once, by one ``register(...)`` line.

Plain data without TensorFlow, so that the runners offer the methods as flag choices (and answer ``--help``)
before TensorFlow loads. Everything else that names methods derives from it: ``bl.METHODS``, ``bl.SOLVERS``,
``bl.get_solver`` / ``bl.make_solver``, the public solver classes ``bl.<Class>``, the runners' ``--method``
help, the paper tables' column labels. A solver's options are declared by its class (``option_names()``).

A new solver: write ``bilevel_tf/solvers/<name>.py`` with a ``BilevelSolver`` subclass and add one line at the
end of this file (see CONTRIBUTING.md); a method of another package registers itself the same way with the full
``"package.module:Class"`` path before it is used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Tuple


@dataclass(frozen=True)
class Method:
    """One registered solver: its name, where its class lives, what it is, its other names."""

    name: str  # the canonical method name (``bl.METHODS``, ``--method``)
    target: str  # "package.module:Class"
    description: str  # a few words for --help
    aliases: Tuple[str, ...] = ()  # other names accepted by get_solver and --method
    label: str = ""  # the paper tables' column header (default: the class name)

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def class_name(self) -> str:
        return self.target.partition(":")[2]

    @property
    def column(self) -> str:
        return self.label or self.class_name

    def load(self) -> Any:
        """The solver class (imports its module, and TensorFlow with it)."""
        return getattr(importlib.import_module(self.module), self.class_name)


_REGISTRY: Dict[str, Method] = {}  # canonical name -> Method, in registration order
_ALIASES: Dict[str, str] = {}  # alias -> canonical name
#: the canonical method names in registration order (rebuilt by :func:`register`)
METHODS: Tuple[str, ...] = ()


def normalize(name: str) -> str:
    """The lookup key of a method name: case, ``-`` and ``_`` do not matter (``V-PBGD`` is ``vpbgd``)."""
    return str(name).lower().replace("-", "").replace("_", "")


def register(name: str, target: str, description: str, *, aliases: Iterable[str] = (), label: str = "") -> Method:
    """Declare a solver: ``register("mine", "my_pkg.mine:Mine", "what it does")``; ValueError on a taken name."""
    global METHODS
    module, _, class_name = target.partition(":")
    if not module or not class_name:
        raise ValueError(f"target must be 'package.module:Class', got {target!r}")
    entry = Method(normalize(name), target, description, tuple(normalize(a) for a in aliases), label)
    for key in (entry.name, *entry.aliases):
        if key in _REGISTRY or key in _ALIASES:
            raise ValueError(f"name: method {key!r} is already registered")
    _REGISTRY[entry.name] = entry
    _ALIASES.update({alias: entry.name for alias in entry.aliases})
    METHODS = tuple(_REGISTRY)
    return entry


def lookup(name: str) -> Method:
    """The registered method of a name or alias; ValueError listing the names otherwise."""
    key = normalize(name)
    if key in _REGISTRY or key in _ALIASES:
        return _REGISTRY[_ALIASES.get(key, key)]
    raise ValueError(f"unknown method {name!r}; choose one of {list(METHODS)} (or the aliases {sorted(_ALIASES)})")


def entries() -> Tuple[Method, ...]:
    """Every registered method, in registration order."""
    return tuple(_REGISTRY.values())


def all_names() -> Tuple[str, ...]:
    """Every name ``get_solver`` accepts: the methods, then the aliases."""
    return METHODS + tuple(_ALIASES)


def describe(name: str) -> str:
    """A few words on a method name or alias, for --help."""
    entry = lookup(name)
    key = normalize(name)
    return entry.description if key == entry.name else f"{entry.description}, as {key}"


def covered(table: Iterable[str]) -> Tuple[str, ...]:
    """The keys of an app's per-method table, checked against the registry (ValueError on an unknown name)."""
    names = tuple(table)
    for name in names:
        lookup(name)
    return names


# One line per solver: name, "module:Class", description, other names, the paper tables' column header.
register("penalty", "bilevel_tf.solvers.penalty:Penalty", "Mehra & Hamm")
register("approxgrad", "bilevel_tf.solvers.approxgrad:ApproxGrad", "approximate implicit gradient")
register("rmd", "bilevel_tf.solvers.rmd:RMD", "reverse-mode unrolling", aliases=("rhg", "itd"))
register("gd", "bilevel_tf.solvers.gd:GD", "naive alternation")
register("vpbgd", "bilevel_tf.solvers.pbgd:VPBGD", "PBGD value-gap penalty", label="V-PBGD")
register("gpbgd", "bilevel_tf.solvers.pbgd:GPBGD", "PBGD gradient penalty", label="G-PBGD")
register("soba", "bilevel_tf.solvers.soba:SOBA", "single-loop stochastic implicit gradient")
register("saba", "bilevel_tf.solvers.saba:SABA", "SOBA with SAGA variance reduction")
register("amigo", "bilevel_tf.solvers.amigo:AmIGO", "amortized implicit gradient")
register("stocbio", "bilevel_tf.solvers.stocbio:StocBiO", "Neumann-series implicit gradient")
register("f2sa", "bilevel_tf.solvers.f2sa:F2SA", "fully first-order penalty")
register("bome", "bilevel_tf.solvers.bome:BOME", "first-order dynamic barrier")
register("implicit", "bilevel_tf.solvers.implicit:Implicit", "implicit differentiation (CG / Neumann)")

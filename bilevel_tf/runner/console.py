"""What a run tells its user on the terminal: flag mistakes in one line with a suggestion, a notice for every
setting that replaces one of the runner's constants, and status lines (those of ``bl.fit`` with the runner's name,
:mod:`bilevel_tf.training.terminal`) before long silent phases. TensorFlow-free: the runners use it before
TensorFlow loads."""

from __future__ import annotations

import argparse
import difflib
import re
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Set

from ..training import terminal
from . import quiet_tensorflow


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``error: <what is wrong>; did you mean --noise?`` and exit status 2, instead
    of the whole usage text before the message (``--help`` prints that)."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        known = super().parse_known_args(args, namespace)
        # a runner starts here: its TensorFlow import (later, on first use) keeps the C++ start-up logs away
        verbose = getattr(known[0], "verbose", 1)  # a runner may pre-parse with placeholder defaults
        quiet_tensorflow.quiet_tensorflow_start(verbose if isinstance(verbose, int) else 1)
        return known

    def error(self, message: str) -> None:  # type: ignore[override]
        hint = suggestion(self, message) or ("; --help lists the flags" if "unrecognized" in message else "")
        self.exit(2, f"error: {message}{hint}\n")


def suggestion(parser: argparse.ArgumentParser, message: str) -> str:
    """ "; did you mean X?" for an unknown flag or an invalid choice close to a known one, else ""."""
    unknown = re.match(r"unrecognized arguments: (.*)", message)
    if unknown:
        flags = {o[2:]: o for o in parser._option_string_actions if o.startswith("--")}  # compared without "--"
        pairs = []
        for token in unknown.group(1).split():
            name = token.split("=", 1)[0]
            close = difflib.get_close_matches(name.lstrip("-"), list(flags), n=1, cutoff=0.6) if name[:1] == "-" else []
            pairs += [(name, flags[close[0]])] if close else []
        if len(pairs) == 1:
            return f"; did you mean {pairs[0][1]}?"
        return "; did you mean " + ", ".join(f"{good} for {bad}" for bad, good in pairs) + "?" if pairs else ""
    choice = re.match(r"argument (\S+): invalid choice: '?(.*?)'? \(choose from", message)
    if choice:
        action = parser._option_string_actions.get(choice.group(1).split("/")[0])
        options = {str(c).lower(): str(c) for c in (action.choices or [])} if action is not None else {}
        close = difflib.get_close_matches(choice.group(2).lower(), list(options), n=1, cutoff=0.6)
        return f"; did you mean {options[close[0]]}?" if close else ""
    return ""


def given_flags(parser: argparse.ArgumentParser, argv: Sequence[str]) -> Set[str]:
    """The destinations of the flags ``argv`` sets explicitly (parse it again with every default hidden)."""
    unset = object()
    blank = argparse.Namespace(**{a.dest: unset for a in parser._actions if a.dest != argparse.SUPPRESS})
    parsed, _ = parser.parse_known_args(list(argv), blank)
    return {name for name, value in vars(parsed).items() if value is not unset}


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(_shown(v) for v in value)
    return str(value)


def report_overrides(
    args: argparse.Namespace, before: Mapping[str, Any], reason: str, names: Optional[Iterable[str]] = None
) -> List[str]:
    """Print ONE line naming every value of ``args`` (among ``names``, default all) that differs from
    ``before``, e.g. ``--smoke sets n_way 10->5, k_shot 3->1``: whatever replaces a value the user may have
    edited in the runner's constants block says so. Returns the changes; silent with ``--verbose 0``."""
    keys = list(before) if names is None else list(names)
    changes = [
        f"{k} {_shown(before[k])}->{_shown(getattr(args, k))}"
        for k in keys
        if k in before and getattr(args, k, None) != before[k]
    ]
    if changes:
        status(args, f"{reason} sets {', '.join(changes)}")
    return changes


def status(args: Any, message: str) -> None:
    """``[experiment] message``: a :func:`bilevel_tf.training.terminal.status` line with the runner's name
    (``args``: the parsed flags, or the verbosity itself)."""
    verbose = args if isinstance(args, int) else getattr(args, "verbose", 1)
    prefix = getattr(args, "experiment", None)
    terminal.status(verbose, f"[{prefix}] {message}" if prefix else message)


def one_line_warning(message: Any, category: Any, filename: str, lineno: int, line: Optional[str] = None) -> str:
    """A ``warnings.formatwarning`` for runners: ``warning: <message>`` on one line."""
    return f"warning: {' '.join(str(message).split())}\n"

"""What a run tells its user on the terminal: flag mistakes in one line with a suggestion, a notice for every
setting that replaces one of the runner's constants, status lines before long silent phases, and the progress
line of ``bl.fit``. TensorFlow-free: the runners use it before TensorFlow loads."""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import sys
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, TextIO

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
    """``[experiment] message`` on stdout, flushed, unless ``--verbose 0`` (``args``: the parsed flags, or the
    verbosity itself)."""
    verbose = args if isinstance(args, int) else getattr(args, "verbose", 1)
    if verbose:
        prefix = getattr(args, "experiment", None)
        print(f"[{prefix}] {message}" if prefix else message, flush=True)


def one_line_warning(message: Any, category: Any, filename: str, lineno: int, line: Optional[str] = None) -> str:
    """A ``warnings.formatwarning`` for runners: ``warning: <message>`` on one line."""
    return f"warning: {' '.join(str(message).split())}\n"


def _visible(key: str) -> bool:
    return key in ("upper_loss", "lower_loss") or not key.endswith("_sq")


def _seconds(value: float) -> str:
    value = max(0.0, value)
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.0f} min"


class Progress:
    """``bl.fit``'s progress. On a terminal with ``verbose=1``: one line rewritten in place, cut to the terminal's
    width (the losses first, then evaluation metrics, then the solver's other values). Otherwise plain flushed
    lines: one per logged step with ``verbose=2``, about twenty per run with ``verbose=1``; cut to the width on a
    terminal, complete in a log file (which also gets no escape codes)."""

    def __init__(self, steps: int, start: int, verbose: int, stream: Optional[TextIO] = None):
        self.steps, self.start = steps, start
        self.stream = stream if stream is not None else sys.stdout
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.live = verbose == 1 and self.terminal
        self.every = 1 if verbose == 2 else max(1, (steps - start) // 20)
        self.latest: Dict[str, float] = {}  # an evaluation's value stays shown until the next evaluation
        self.solver_keys: Set[str] = set()
        self.open_line = False  # a live line was written and not ended yet
        self.t0 = time.perf_counter()

    def update(self, step: int, logs: Mapping[str, float], solver_keys: Iterable[str] = ()) -> None:
        self.latest.update({k: v for k, v in logs.items() if _visible(k)})
        self.solver_keys.update(solver_keys)
        if not self.live and step % self.every and step != self.steps:
            return
        elapsed = time.perf_counter() - self.t0
        head = f"step {step}/{self.steps} ({_seconds(elapsed)}"
        if self.live and self.start < step < self.steps:
            head += f", {_seconds(elapsed / (step - self.start) * (self.steps - step))} left"
        line = self._fit(head + ")")
        if self.live:
            self.open_line = step != self.steps
            self.stream.write("\r" + line + "\x1b[K" + ("" if self.open_line else "\n"))
            self.stream.flush()
        else:
            print(line, file=self.stream, flush=True)

    def finish(self) -> None:
        """End a live line that stopped before the last step (early stop, error, Ctrl-C)."""
        if self.open_line:
            self.stream.write("\n")
            self.stream.flush()
            self.open_line = False

    def _fit(self, head: str) -> str:
        losses = [k for k in ("upper_loss", "lower_loss") if k in self.latest]
        others = [k for k in self.latest if k not in losses]
        ordered = (
            losses + [k for k in others if k not in self.solver_keys] + [k for k in others if k in self.solver_keys]
        )
        width = shutil.get_terminal_size().columns - 1 if self.terminal else None
        line = head
        for key in ordered:
            item = f" {key}={self.latest[key]:.4g}"
            if width is not None and len(line) + len(item) > width:
                break  # the rest are less important
            line += item
        return line[:width] if width is not None else line

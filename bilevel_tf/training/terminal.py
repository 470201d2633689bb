"""What ``bl.fit`` writes on the terminal: its progress line (:class:`Progress`), status lines before long silent
phases (:func:`status`), and a block with C++ logs silenced (:func:`stderr_silenced`). TensorFlow-free: the
runners' console (:mod:`bilevel_tf.runner.console`) builds on it before TensorFlow loads."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from typing import Dict, Iterable, Iterator, Mapping, Optional, Set, TextIO


def status(verbose: int, message: str) -> None:
    """``message`` on stdout, flushed, unless ``verbose`` is 0."""
    if verbose:
        print(message, flush=True)


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """File descriptor 2 points at /dev/null inside the block (no-op without a usable stderr)."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr (some embedded interpreters): nothing to hide
        yield
        return
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


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

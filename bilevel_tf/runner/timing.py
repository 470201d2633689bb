"""Timing helpers of the runners and the paper-size timing scripts."""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Sequence

import numpy as np


class Stopwatch:
    """Wall-clock since creation, for accuracy-vs-time curves."""

    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start


def time_steps(step: Callable[..., Any], repeats: int, inputs: Callable[[], Sequence[Any]] = tuple) -> Dict[str, float]:
    """Time ``step(*inputs())``: the first call (tracing and compilation plus one iteration) and the median
    wall-clock and process-CPU seconds of ``repeats`` further calls. ``inputs`` is drawn before each timer
    starts; ``step`` must wait for its result (e.g. ``float()`` of a log value). CPU seconds are the steadier
    figure on a shared machine."""
    wall, cpu = [], []
    for _ in range(repeats + 1):
        args = inputs()
        t0, c0 = time.perf_counter(), time.process_time()
        step(*args)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"first_seconds": wall[0], "seconds": float(np.median(wall[1:])), "cpu_seconds": float(np.median(cpu[1:]))}

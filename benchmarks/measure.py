"""Timing and memory measurement on a noisy shared machine.

Timing: the functions being compared run interleaved in the same process (A B B A A B ...: the order flips
every repetition so a slow drift of the machine's load hits both sides alike), each sample synchronised on
its outputs; medians of samples and of the per-repetition ratios are reported. Fast functions are called
several times per sample so that one sample lasts at least ``MIN_SAMPLE_S``. Every sample records wall time
AND the process's CPU time (all threads): when other jobs compete for the cores, wall time also counts the
waits for a core while CPU time counts only the work, so CPU-time ratios are the steadier estimate of what
the ratio would be on an idle machine (wall-time ratios are reported too).

Memory: the peak resident set size (Linux ``VmHWM``) over steady-state steps. Writing ``5`` to
``/proc/self/clear_refs`` resets that peak, so compilation (tracing, XLA) and earlier configurations in the
same process are excluded; where that is not possible the process-lifetime ``ru_maxrss`` is used instead.
"""

from __future__ import annotations

import gc
import math
import resource
import statistics
import time
from typing import Callable, Dict, List, Optional, Tuple

import tensorflow as tf

MIN_SAMPLE_S = 0.1


def sync(outputs) -> None:
    """Wait for a step's results (and pull them to the host, like a training loop logging them)."""
    for x in tf.nest.flatten(outputs):
        if hasattr(x, "numpy"):
            x.numpy()


def timed(fn: Callable[[], object], calls: int = 1) -> Tuple[float, float]:
    """(wall seconds, CPU seconds) per call."""
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        out = fn()
    sync(out)
    return (time.perf_counter() - start) / calls, (time.process_time() - cpu) / calls


def calls_per_sample(fn: Callable[[], object]) -> int:
    return max(1, math.ceil(MIN_SAMPLE_S / max(timed(fn)[0], 1e-6)))


class Samples(dict):
    """name -> wall seconds per call (one entry per repetition); ``.cpu``: the same in CPU seconds."""

    def __init__(self, names):
        super().__init__((name, []) for name in names)
        self.cpu: Dict[str, List[float]] = {name: [] for name in names}


def interleaved(fns: Dict[str, Callable[[], object]], reps: int) -> Samples:
    """Seconds per call of each function, ``reps`` samples each, taken alternately. Warm the functions up
    (compile) before calling this."""
    calls = {name: calls_per_sample(fn) for name, fn in fns.items()}
    names = list(fns)
    samples = Samples(names)
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            wall, cpu = timed(fns[name], calls[name])
            samples[name].append(wall)
            samples.cpu[name].append(cpu)
    return samples


def median(xs: List[float]) -> float:
    return float(statistics.median(xs))


def ratio(samples: Dict[str, List[float]], num: str, den: str) -> float:
    """Median over repetitions of num/den, each pair measured back to back."""
    return median([a / b for a, b in zip(samples[num], samples[den])])


def reps_for(seconds_per_call: float, budget_s: float, lo: int, hi: int) -> int:
    """How many repetitions fit a time budget, clamped to [lo, hi]."""
    return int(min(hi, max(lo, budget_s // max(seconds_per_call, 1e-6))))


# ------------------------------------------------------------------------------------------------- memory
def _status_kb(key: str) -> Optional[float]:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb() -> float:
    kb = _status_kb("VmRSS")
    return float("nan") if kb is None else kb / 1024


def lifetime_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def reset_peak() -> bool:
    """Reset the peak-RSS counter (True if the kernel allowed it)."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_mb(reset_ok: bool) -> float:
    kb = _status_kb("VmHWM") if reset_ok else None
    return lifetime_peak_mb() if kb is None else kb / 1024


class PeakMemory:
    """``with PeakMemory() as m: ...`` -> ``m.before_mb`` (resident at entry), ``m.peak_mb`` (peak inside)."""

    def __enter__(self) -> "PeakMemory":
        self.reset_ok = reset_peak()
        self.before_mb = rss_mb()
        return self

    def __exit__(self, *exc) -> None:
        self.peak_mb = peak_mb(self.reset_ok)


def graph_flops(concrete_function) -> int:
    """Floating-point operations of one call, from TensorFlow's per-op cost model (MatMul, Conv2D and their
    gradients, elementwise ops) on the traced graph: counts arithmetic, not time, so it is immune to load."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    options = (
        option_builder.ProfileOptionBuilder(option_builder.ProfileOptionBuilder.float_operation())
        .with_empty_output()
        .build()
    )
    return int(model_analyzer.profile(concrete_function.graph, options=options).total_float_ops)

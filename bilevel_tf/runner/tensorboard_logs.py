"""The runners' ``--tensorboard`` flag: TensorBoard logs under ``<out>/tensorboard``.

Runners that train with ``bl.fit`` pass :func:`log_dir` as its ``tensorboard_dir`` (the ``bl.TensorBoard``
callback writes every log value as it happens). Runners with their own loops (synthetic sweeps, the PBGD toy,
the clean-label target search) replay their records afterwards through the same callback with
:func:`write_records` / :func:`write_series`.
"""

from __future__ import annotations

import math
import os
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence


def log_dir(args: Any, run: str = "") -> Optional[str]:
    """``<out>/tensorboard[/run]`` when the run was started with --tensorboard, else None."""
    if not getattr(args, "tensorboard", False):
        return None
    return os.path.join(args.out, "tensorboard", run) if run else os.path.join(args.out, "tensorboard")


def scalars(record: Mapping[str, Any]) -> Dict[str, float]:
    """The finite numbers of a record, nested dicts flattened to 'a/b' tags (lists and text left out)."""
    from .results_file import flatten

    return {
        tag: float(v)
        for tag, v in flatten(record, "/").items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def _board(folder: str):
    from ..training.callbacks import TensorBoard

    return TensorBoard(folder)


def write_records(args: Any, records: Iterable[Mapping[str, Any]], step: Optional[str] = None, run: str = "") -> None:
    """One TensorBoard step per record: at ``record[step]``, or at the record's position when ``step`` is None."""
    folder = log_dir(args, run)
    if folder is None:
        return
    board = _board(folder)
    records = list(records)
    steps = [int(record[step]) if step is not None else i for i, record in enumerate(records)]
    if steps:  # as if a fit started just before the first record (the callback acts on steps after its start)
        board.on_fit_begin(None, min(steps) - 1, max(steps))
    for at, record in zip(steps, records):
        board.on_step_end(at, scalars({k: v for k, v in record.items() if k != step}))
    board.on_fit_end([])


def write_series(args: Any, run: str, steps: Sequence[int], series: Mapping[str, Sequence[float]]) -> None:
    """Curves that share their x (e.g. the mean distance to the solution per upper iteration) as one run."""
    write_records(
        args,
        ({"step": s, **{tag: values[i] for tag, values in series.items()}} for i, s in enumerate(steps)),
        step="step",
        run=run,
    )

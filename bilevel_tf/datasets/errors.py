"""Exceptions raised by the dataset loaders.

Both carry a self-contained, actionable message: the machine running the experiments may have no
internet, so a missing file must say exactly what to fetch and where to put it.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

PathLike = Union[str, "os.PathLike[str]"]

#: How to run without the files, for the data sets whose runners have an offline demo: said last by the
#: missing-file message, since a user without internet cannot follow the download advice before it.
DIGITS_HINT = "or run offline on the bundled digits: --dataset digits"
SMOKE_HINT = "or check the pipeline offline on generated images: --smoke --random-weights without --data-dir"


def with_hint(how_to_get: str, hint: Optional[str]) -> str:
    """``how_to_get`` (one sentence) ending in ``, <hint>.``; unchanged for no hint."""
    if not hint:
        return how_to_get
    return f"{how_to_get.rstrip().rstrip('.')}, {hint}."


class DataFileMissingError(FileNotFoundError):
    """A required data file is not on disk.

    The message names the file, the path where it was expected (plus any other places that were
    searched) and how to obtain it. Attributes: ``file_name``, ``expected_path``, ``searched``, ``how_to_get``.
    """

    def __init__(
        self, file_name: str, expected_path: PathLike, how_to_get: str, searched: Optional[Sequence[PathLike]] = None
    ) -> None:
        self.file_name = file_name
        self.expected_path = os.fspath(expected_path)
        self.searched = [os.fspath(p) for p in (searched or [])]
        self.how_to_get = how_to_get
        others = [p for p in self.searched if p != self.expected_path]
        also = f" (also looked in: {', '.join(others)})" if others else ""
        super().__init__(f"{file_name} not found at {self.expected_path}{also}. {how_to_get}")


class DataFormatError(ValueError):
    """A data file exists but is corrupt or not in the expected layout.

    Message format: ``"<path>: <what is wrong>; expected <what was expected>"``.
    """

    def __init__(self, what: str, expected: str, path: Optional[PathLike] = None) -> None:
        self.path = None if path is None else os.fspath(path)
        self.what = what
        self.expected = expected
        prefix = f"{self.path}: " if self.path is not None else ""
        super().__init__(f"{prefix}{what}; expected {expected}")

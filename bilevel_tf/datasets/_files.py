"""Private helpers: locating data files and reading them (safely for pickles), every failure as one error."""

from __future__ import annotations

import _compat_pickle
import pickle
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Sequence

import numpy as np

from .errors import DataFileMissingError, DataFormatError, PathLike

# Globals that pickled numpy arrays / plain containers need (numpy 1.x and 2.x spellings, Python 2 aliases
# are normalised by _canonical). Anything else is refused: a pickle can run arbitrary code on load.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocol <= 2
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("builtins", "complex"),
}


def _canonical(module: str, name: str) -> tuple:
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if _canonical(module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


@contextmanager
def reading(path: PathLike, what: str, expected: str) -> Iterator[None]:
    """Turn any failure of a third-party reader inside the block into one DataFormatError naming ``path``.

    Damaged files make numpy, zipfile, gzip, pickle, scipy, h5py and PIL raise a zoo of types (BadZipFile,
    zlib.error, EOFError, OSError, tokenize.TokenError, MemoryError from a corrupt length field, ...), so all
    are caught: keep only the raw read inside the block, never the loader's own checks.
    """
    try:
        yield
    except (DataFormatError, DataFileMissingError):
        raise
    except Exception as e:
        detail = " ".join(str(e).split())[:200]  # one line, however chatty the reader
        raise DataFormatError(f"{what} ({type(e).__name__}: {detail})", expected, path) from e


def _unpickle(path: PathLike, encoding: str) -> Any:
    with open(path, "rb") as f:
        return _RestrictedUnpickler(f, encoding=encoding).load()


def safe_pickle_load(path: PathLike, encoding: str = "ASCII") -> Any:
    """Unpickle ``path`` allowing only numpy arrays and builtin containers; DataFormatError when it fails.

    A Python-2 pickle that is not ASCII text (raw py2 strings) is read again with ``encoding='bytes'``.
    """
    with reading(path, "cannot unpickle", "a pickle holding only numpy arrays, lists, dicts and strings"):
        try:
            return _unpickle(path, encoding)
        except UnicodeDecodeError:
            if encoding == "bytes":
                raise
            return _unpickle(path, "bytes")


def read_npz(path: PathLike, keys: Sequence[str], expected: str) -> List[Any]:
    """The arrays ``keys`` of an .npz file (no pickles); DataFormatError if it is damaged or lacks one."""
    with reading(path, "unreadable npz", expected):
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise DataFormatError(
                    f"missing arrays {missing} (has {sorted(f.files)})", f"npz arrays {list(keys)}", path
                )
            return [f[k] for k in keys]  # members are read lazily: damage shows up here


def read_npy(path: PathLike, expected: str) -> Any:
    """The array of an .npy file (no pickles); DataFormatError if it is damaged."""
    with reading(path, "unreadable .npy file", expected):
        return np.load(path, allow_pickle=False)


def decode_keys(d: Any) -> Any:
    """Return a copy of dict ``d`` whose bytes keys are decoded as UTF-8 (Python-2 pickles)."""
    if not isinstance(d, dict):
        return d
    return {(k.decode("utf8") if isinstance(k, bytes) else k): v for k, v in d.items()}


def find_file_set(bases: Iterable[Path], names: Sequence[str], how_to_get: str) -> List[Path]:
    """Locate all of ``names`` inside one folder among ``bases`` (first folder holding them all wins).

    If no folder holds all files, raise DataFileMissingError for the first missing file of the first folder
    that holds at least one of them (or of the first folder when none holds any).
    """
    bases = [Path(b) for b in bases]
    if not bases:
        raise ValueError("no folder to search")
    partial = None
    for base in bases:
        present = [(base / n).is_file() for n in names]
        if all(present):
            return [base / n for n in names]
        if any(present) and partial is None:
            partial = base
    base = partial if partial is not None else bases[0]
    missing = next(n for n in names if not (base / n).is_file())
    searched = [b / missing for b in bases]
    raise DataFileMissingError(Path(missing).name, base / missing, how_to_get, searched)


def read_h5(path: PathLike, required: Sequence[str], how_to_get: str, written_by: str) -> Dict[str, Any]:
    """Every dataset of an HDF5 file as a dict of arrays; DataFileMissingError when the file is absent,
    DataFormatError when it is unreadable or lacks one of ``required``."""
    import h5py  # lazy

    path = Path(path)
    if not path.is_file():
        raise DataFileMissingError(path.name, path, how_to_get)
    with reading(path, "unreadable HDF5 file", f"an HDF5 file written by {written_by}"):
        with h5py.File(path, "r") as f:
            arrays = {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
    missing = [k for k in required if k not in arrays]
    if missing:
        raise DataFormatError(
            f"missing datasets {missing} (has {sorted(arrays)})", f"HDF5 datasets {list(required)}", path
        )
    return arrays

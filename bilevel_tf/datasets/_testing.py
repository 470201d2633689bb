"""Writers of the raw on-disk formats, for tests that must build small fixture files (not used by loaders)."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from typing import Any

import numpy as np

from .errors import PathLike


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler, whose dispatch table can be overridden
    """Pickles ``str`` and ``bytes`` as Python-2 ``str`` opcodes (BINSTRING), like cPickle under Python 2."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, data: bytes, obj: Any) -> None:
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    def save_bytes(self, obj: bytes) -> None:
        self._save_py2_str(obj, obj)

    def save_str(self, obj: str) -> None:
        self._save_py2_str(obj.encode("latin1"), obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def py2_pickle_dumps(obj: Any) -> bytes:
    """Protocol-2 pickle laid out as Python 2 + numpy 1.x would write it (py2 strings, ``numpy.core``)."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # GLOBAL opcodes are newline-terminated text, so renaming the module does not shift any offsets.
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_idx_gz(path: PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file (magic 0x0000 08 <ndim>, big-endian uint32 dims, data)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())

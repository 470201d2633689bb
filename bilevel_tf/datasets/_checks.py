"""Private helpers: validate the images and labels a loader read, naming the file and the first offender.

Bad values must fail at load time: a NaN label cast to int64 becomes -9223372036854775808 and a label 12 of a
10-class set only fails deep inside a training step, with no file named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np

from .errors import DataFormatError, PathLike

Dim = Union[int, None, Tuple[int, ...]]  # a size, any size (None), or one of several sizes


@dataclass(frozen=True)
class DataFormat:
    """What one data set's images and labels must be.

    ``image_shape`` is per image (None = any size, a tuple = one of those sizes); ``dtypes`` are numpy types
    or abstract types such as ``np.floating``; ``value_range`` bounds float pixels (uint8 is range-safe by
    dtype); labels are class ids in ``0..num_classes-1`` (or one-hot rows).
    """

    image_shape: Tuple[Dim, ...]
    dtypes: Tuple[type, ...]
    num_classes: int
    value_range: Optional[Tuple[float, float]] = None
    kind: str = "images"  # what the arrays are, for messages ("features")

    def describe(self) -> str:
        dtypes = " or ".join("float" if t is np.floating else np.dtype(t).name for t in self.dtypes)
        text = f"{dtypes} {self.kind} (N, {', '.join(map(_describe_dim, self.image_shape))})"
        if self.value_range is not None:
            text += f" with values in [{_number(self.value_range[0])}, {_number(self.value_range[1])}]"
        return text


def _describe_dim(d: Dim) -> str:
    if d is None:
        return "any"
    return "|".join(map(str, d)) if isinstance(d, tuple) else str(d)


def _dim_ok(actual: int, wanted: Dim) -> bool:
    return wanted is None or (actual in wanted if isinstance(wanted, tuple) else actual == wanted)


def _number(v: object) -> str:
    """A value as a reader would write it: 12 for 12.0, nan, -inf, 2.5, 1e+30."""
    v = v.item() if isinstance(v, np.generic) else v
    if isinstance(v, float) and abs(v) < 1e15 and v == int(v):
        return str(int(v))
    return str(v)


def as_array(values: object, path: PathLike, name: str, expected: str) -> np.ndarray:
    """``values`` (e.g. lists from a pickle) as a numpy array; ragged nests are a DataFormatError."""
    try:
        return np.asarray(values)
    except (ValueError, TypeError) as e:
        raise DataFormatError(f"{name} is not an array ({' '.join(str(e).split())})", expected, path) from e


def check_images(x: np.ndarray, fmt: DataFormat, path: PathLike, name: str) -> np.ndarray:
    """``x`` as an array if its dtype, per-image shape and (float) pixel values fit ``fmt``."""
    x = as_array(x, path, name, fmt.describe())
    dtype_ok = any(np.issubdtype(x.dtype, t) for t in fmt.dtypes)
    shape_ok = x.ndim == 1 + len(fmt.image_shape) and all(map(_dim_ok, x.shape[1:], fmt.image_shape))
    if not (dtype_ok and shape_ok):
        raise DataFormatError(f"{name} is {x.dtype} {x.shape}", fmt.describe(), path)
    if np.issubdtype(x.dtype, np.floating) and len(x):
        _check_pixels(x, fmt, path, name)
    return x


def _check_pixels(x: np.ndarray, fmt: DataFormat, path: PathLike, name: str) -> None:
    # Per-image min/max propagate NaN and reduce without a full-size temporary (dog-fish train is 1 GB).
    flat = x.reshape(len(x), -1)
    lo, hi = fmt.value_range if fmt.value_range is not None else (-np.inf, np.inf)
    slack = 1e-3 * (hi - lo) if np.isfinite(hi - lo) else 0.0  # float rounding of a preprocessing step
    mins, maxs = flat.min(axis=1), flat.max(axis=1)
    good = np.isfinite(mins) & np.isfinite(maxs) & (mins >= lo - slack) & (maxs <= hi + slack)
    if good.all():
        return
    i = int(np.argmin(good))
    pixels = flat[i]
    bad = ~np.isfinite(pixels) | (pixels < lo - slack) | (pixels > hi + slack)
    value = _number(pixels[int(np.argmax(bad))])
    where = "finite values" if fmt.value_range is None else f"finite values in [{_number(lo)}, {_number(hi)}]"
    raise DataFormatError(f"{name}[{i}] holds the value {value}", where, path)


def _first_offender(values: np.ndarray, num_values: Optional[int]) -> Optional[Tuple[int, str]]:
    """Index of the first value that is not an integer (or not in 0..num_values-1), and what is wrong with it."""
    no = np.zeros(len(values), dtype=bool)
    # the range is tested on the stored values: a float 1e30 would wrap when cast to int64
    not_integer = ~(np.isfinite(values) & (values == np.round(values))) if values.dtype.kind == "f" else no
    outside = ((values < 0) | (values >= num_values)) if num_values is not None else no
    bad = not_integer | outside
    if not bad.any():
        return None
    i = int(np.argmax(bad))
    return i, ("is not an integer" if not_integer[i] else f"is outside 0..{num_values - 1}")


def integer_values(
    values: np.ndarray, path: PathLike, name: str, noun: str, expected: str, num_values: Optional[int] = None
) -> np.ndarray:
    """1-D int64 copy of integer or integral-valued float ``values`` (NaN, inf and 2.5 are refused), all in
    ``0..num_values-1`` when that is given."""
    values = as_array(values, path, name, expected).reshape(-1)
    if values.dtype.kind not in "iuf":
        raise DataFormatError(f"{name} holds {values.dtype} values", expected, path)
    offender = _first_offender(values, num_values)
    if offender is not None:
        i, wrong = offender
        raise DataFormatError(f"{noun} {_number(values[i])} at index {i} of {name} {wrong}", expected, path)
    return values.astype(np.int64)


def class_ids(y: np.ndarray, num_classes: int, path: PathLike, name: str) -> np.ndarray:
    """Labels ``y`` as int64 class ids (N,): ids (N,) / (N, 1) or one-hot rows (N, num_classes) are accepted."""
    expected = f"integer class ids 0..{num_classes - 1}"
    y = as_array(y, path, name, expected)
    if y.ndim == 2 and y.shape[1] > 1:
        return _one_hot_ids(y, num_classes, path, name)
    if y.ndim > 2:
        raise DataFormatError(
            f"{name} has shape {y.shape}", f"{expected} (N,) or one-hot rows (N, {num_classes})", path
        )
    return integer_values(y, path, name, "label", expected, num_classes)


def _one_hot_ids(y: np.ndarray, num_classes: int, path: PathLike, name: str) -> np.ndarray:
    expected = f"one-hot rows (N, {num_classes}) or integer class ids 0..{num_classes - 1}"
    if y.shape[1] != num_classes or y.dtype.kind not in "iuf":
        raise DataFormatError(f"{name} is {y.dtype} {y.shape}", expected, path)
    rows_ok = np.all((y == 0) | (y == 1), axis=1) & (y.sum(axis=1) == 1)
    if not rows_ok.all():
        i = int(np.argmin(rows_ok))
        raise DataFormatError(
            f"row {i} of {name} is not one-hot ({np.array2string(y[i], threshold=12)})", expected, path
        )
    return np.argmax(y, axis=1).astype(np.int64)


def check_split(
    x: np.ndarray,
    y: np.ndarray,
    fmt: DataFormat,
    path: PathLike,
    x_name: str = "images",
    y_name: str = "labels",
    y_path: Optional[PathLike] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Validated ``(images, int64 class ids)``; ``y_path`` is the labels' file when they have their own."""
    y_path = path if y_path is None else y_path
    x = check_images(x, fmt, path, x_name)
    y = class_ids(y, fmt.num_classes, y_path, y_name)
    if len(x) != len(y):
        raise DataFormatError(
            f"{len(y)} labels in {y_name} for {len(x)} images in {x_name}", "one label per image", y_path
        )
    return x, y

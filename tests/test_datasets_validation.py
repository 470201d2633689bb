"""Every loader validates what it reads: bad labels or pixels, and damaged, truncated or foreign files, fail at load
time with one DataFormatError line that starts with the file's full path; missing files name the offline demo."""

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from bilevel_tf.datasets import (
    DataFileMissingError,
    DataFormatError,
    load_cifar10,
    load_dogfish,
    load_dogfish_features_npy,
    load_fashion_mnist,
    load_features_h5,
    load_miniimagenet_split,
    load_mnist,
    load_omniglot,
    load_omniglot_folders,
    load_svhn_h5,
    load_svhn_mat,
    save_features_h5,
)
from bilevel_tf.datasets._testing import py2_pickle_dumps, write_idx_gz

N = 6  # examples per split; bad values go to index BAD
BAD = 3
Transform = Callable[[np.ndarray], np.ndarray]


def same(a: np.ndarray) -> np.ndarray:
    return a


@pytest.fixture(autouse=True)
def empty_keras_cache(tmp_path, monkeypatch):
    """The keras loaders also search the keras cache: point it at an empty folder."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


def _digits(n: int = N) -> np.ndarray:
    return np.arange(n) % 10


def _uint8(shape) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)


# ------------------------------------------------------------------ writers of valid real-format files
# Each writes a small data set into ``folder`` (the training split's arrays passed through ``images`` and
# ``labels``, in the file's own layout) and returns the file that holds them.
def write_mnist(folder: Path, images: Transform = same, labels: Transform = same) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        folder / "mnist.npz",
        x_train=images(_uint8((N, 28, 28))),
        y_train=labels(_digits()),
        x_test=_uint8((2, 28, 28)),
        y_test=_digits(2),
    )
    return folder / "mnist.npz"


def write_fashion(folder: Path, images: Transform = same, labels: Transform = same) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, x, y in (("train", N, images, labels), ("t10k", 2, same, same)):
        write_idx_gz(folder / f"{split}-images-idx3-ubyte.gz", x(_uint8((n, 28, 28))))
        write_idx_gz(folder / f"{split}-labels-idx1-ubyte.gz", y(_digits(n)))
    return folder / "train-labels-idx1-ubyte.gz"


def write_cifar(folder: Path, images: Transform = same, labels: Transform = same) -> Path:
    """Python-2 pickles with bytes keys, as the real batches."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x, y = _uint8((N, 3072)), _digits()
        if name == "data_batch_1":
            x, y = images(x), labels(y)
        (folder / name).write_bytes(py2_pickle_dumps({b"data": x, b"labels": y.tolist()}))
    return folder / "data_batch_1"


def write_svhn_mat(folder: Path, images: Transform = same, labels: Transform = same) -> Path:
    """X uint8 (32, 32, 3, N), y (N, 1) float with 10 meaning digit 0."""
    folder.mkdir(parents=True, exist_ok=True)
    y = np.where(_digits() == 0, 10, _digits()).astype(np.float64)
    scipy.io.savemat(folder / "train_32x32.mat", {"X": images(_uint8((32, 32, 3, N))), "y": labels(y)[:, None]})
    return folder / "train_32x32.mat"


def write_svhn_h5(folder: Path, images: Transform = same, labels: Transform = same) -> Path:
    """The paper's grey cache: float32 0..255 (N, 32, 32, 1) and int64 ids."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "SVHN_single_grey_without_extra.h5"
    with h5py.File(path, "w") as f:
        for split, x, y in (("train", images, labels), ("val", same, same), ("test", same, same)):
            f[f"X_{split}"] = x(np.random.default_rng(1).uniform(0, 255, (N, 32, 32, 1)).astype(np.float32))
            f[f"y_{split}"] = y(_digits())
    return path


def write_omniglot_npy(folder: Path, images: Transform = same, labels: Transform = same) -> Path:
    """The original's cache: ink in [0, 1] float32 (N, 28, 28, 1), class = character * 4 + rotation."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "x_omniglot_1.npy", images(np.random.default_rng(2).random((16, 28, 28, 1), np.float32)))
    np.save(folder / "y_omniglot_1.npy", labels(np.repeat(np.arange(8), 2).astype(np.int32)))
    return folder / "x_omniglot_1.npy"


def write_omniglot_pngs(folder: Path, images: Transform = same, labels: Transform = same) -> Path:
    root = folder / "omniglot_resized"
    for c in range(2):
        (root / "Alphabet" / f"character0{c}").mkdir(parents=True)
        for i in range(2):
            Image.fromarray(images(_uint8((28, 28)))).save(root / "Alphabet" / f"character0{c}" / f"{i}.png")
    return root / "Alphabet" / "character01" / "1.png"


def write_miniimagenet(folder: Path, images: Transform = same, labels: Transform = same) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    split = {"image_data": images(_uint8((N, 84, 84, 3))), "class_dict": {"n01": [0, 1, 2], "n02": [3, 4, 5]}}
    (folder / "mini-imagenet-cache-train.pkl").write_bytes(pickle.dumps(split, protocol=4))
    return folder / "mini-imagenet-cache-train.pkl"


def write_dogfish(folder: Path, images: Transform = same, labels: Transform = same) -> Path:
    """Inception-preprocessed images in [-1, 1] and one-hot labels, as the CodaLab file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dataset_dog-fish_train-900_test-300.npz"
    x = np.random.default_rng(3).uniform(-1, 1, (N, 5, 5, 3)).astype(np.float32)
    np.savez(
        path, X_train=images(x), Y_train=labels(np.eye(2)[np.arange(N) % 2]), X_test=x[:2], Y_test=np.eye(2)[[0, 1]]
    )
    return path


def write_features_npy(folder: Path, images: Transform = same, labels: Transform = same) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "X_test_features_inception.npy", np.zeros((2, 16), np.float32))
    np.save(folder / "X_train_features_inception.npy", images(np.ones((N, 16), np.float32)))
    return folder / "X_train_features_inception.npy"


def write_features_h5(folder: Path, images: Transform = same, labels: Transform = same) -> Path:
    return save_features_h5(
        folder / "features.h5",
        X_train=images(np.ones((N, 16), np.float32)),
        Y_train=labels(np.arange(N) % 2),
        X_test=np.zeros((2, 16), np.float32),
    )


@dataclass(frozen=True)
class Kind:
    write: Callable[..., Path]
    load: Callable[[Path], object]  # loads the data set written into a folder


KINDS = {
    "mnist.npz": Kind(write_mnist, load_mnist),
    "fashion-mnist IDX .gz": Kind(write_fashion, load_fashion_mnist),
    "cifar-10 pickle": Kind(write_cifar, load_cifar10),
    "svhn .mat": Kind(write_svhn_mat, lambda d: load_svhn_mat(d / "train_32x32.mat")),
    "svhn .h5": Kind(write_svhn_h5, lambda d: load_svhn_h5(d / "SVHN_single_grey_without_extra.h5")),
    "omniglot .npy": Kind(write_omniglot_npy, lambda d: load_omniglot(d, n_train_characters=1)),
    "omniglot .png": Kind(write_omniglot_pngs, lambda d: load_omniglot_folders(d / "omniglot_resized")),
    "mini-imagenet pickle": Kind(
        write_miniimagenet, lambda d: load_miniimagenet_split(d / "mini-imagenet-cache-train.pkl")
    ),
    "dog-fish .npz": Kind(write_dogfish, load_dogfish),
    "features .npy": Kind(write_features_npy, load_dogfish_features_npy),
    "features .h5": Kind(write_features_h5, lambda d: load_features_h5(d / "features.h5")),
}


def format_error(kind: str, folder: Path, path: Path) -> str:
    """The DataFormatError message of loading ``folder``, checked to be one line starting with ``path``."""
    with pytest.raises(DataFormatError) as e:
        KINDS[kind].load(folder)
    message = str(e.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and "; expected " in message
    assert e.value.path == str(path)
    return message


def test_every_kind_loads_when_intact(tmp_path):
    for i, (name, kind) in enumerate(KINDS.items()):
        kind.write(tmp_path / str(i))
        assert kind.load(tmp_path / str(i)) is not None, name


# ------------------------------------------------------------------ damaged, truncated and foreign files
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("keep", [0.0, 0.05, 0.5, 0.95])
def test_truncated_file(tmp_path, kind, keep):
    path = KINDS[kind].write(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    format_error(kind, tmp_path, path)


@pytest.mark.parametrize("kind", KINDS)
def test_random_bytes(tmp_path, kind):
    path = KINDS[kind].write(tmp_path)
    path.write_bytes(np.random.default_rng(4).bytes(3000))
    format_error(kind, tmp_path, path)


@pytest.mark.parametrize("kind", KINDS)
def test_flipped_bytes_load_or_fail_with_one_line(tmp_path, kind):
    """Random damage either still parses into data that passes the checks or is a one-line DataFormatError:
    no other exception escapes."""
    path = KINDS[kind].write(tmp_path)
    raw = bytearray(path.read_bytes())
    rng = np.random.default_rng(5)
    for _ in range(25):
        damaged = raw.copy()
        for pos in rng.integers(0, len(raw), 3):
            damaged[pos] ^= 0xFF
        path.write_bytes(bytes(damaged))
        try:
            KINDS[kind].load(tmp_path)
        except DataFormatError as e:
            assert str(e).startswith(f"{path}: ") and "\n" not in str(e)


FOREIGN = [  # a valid container of the right kind holding the wrong thing
    (
        "mnist.npz",
        lambda p: np.savez(p, x_train=np.zeros(3), y_train=np.zeros(3), x_test=np.zeros(3), y_test=np.zeros(3)),
        r"x_train is float64 \(3,\); expected uint8 images",
    ),
    ("mnist.npz", lambda p: np.savez(p, images=np.zeros(3)), r"missing arrays \['x_train', 'y_train'"),
    ("cifar-10 pickle", lambda p: p.write_bytes(pickle.dumps([1, 2])), r"pickle has keys list"),
    (
        "cifar-10 pickle",
        lambda p: p.write_bytes(pickle.dumps({"data": [[1, 2], [3]], "labels": [0, 1]})),
        r"data is not an array",
    ),
    ("svhn .h5", lambda p: h5py.File(p, "w").close(), r"missing datasets \['X_train', 'y_train'"),
    ("omniglot .npy", lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), r"unreadable .npy file"),
    (
        "mini-imagenet pickle",
        lambda p: p.write_bytes(
            pickle.dumps({"image_data": np.zeros((2, 84, 84, 3), np.uint8), "class_dict": {"a": [0.0, float("nan")]}})
        ),
        r"image index nan at index 1 of class_dict\['a'\] is not an integer",
    ),
    (
        "dog-fish .npz",
        lambda p: np.savez(p, X_train=np.zeros((2, 5, 5)), Y_train=np.zeros(2), X_test=np.zeros(1), Y_test=np.zeros(1)),
        r"X_train is float64 \(2, 5, 5\); expected float "
        r"images \(N, any, any, 3\) with values in \[-1, 1\]",
    ),
    ("features .h5", lambda p: _h5_with_group(p, "X_train"), r"missing datasets \['X_train', 'X_test'\] \(has \[\]\)"),
]


def _h5_with_group(path: Path, name: str) -> None:
    with h5py.File(path, "w") as f:
        f.create_group(name)


@pytest.mark.parametrize("kind, replace, message", FOREIGN)
def test_valid_container_with_the_wrong_contents(tmp_path, kind, replace, message):
    path = KINDS[kind].write(tmp_path)
    path.unlink()
    replace(path)
    assert re.search(message, format_error(kind, tmp_path, path))


@pytest.mark.parametrize(
    "image, message",
    [
        (Image.new("L", (20, 20)), "PNG image of 20x20 pixels; expected a square PNG of at least 28x28 pixels"),
        (Image.new("L", (28, 40)), "PNG image of 28x40 pixels"),
        (Image.new("RGB", (28, 28)), "JPEG image of 28x28 pixels"),  # saved as JPEG under a .png name
    ],
)
def test_omniglot_image_of_the_wrong_size_or_format(tmp_path, image, message):
    path = write_omniglot_pngs(tmp_path)
    image.save(path, format="PNG" if image.mode == "L" else "JPEG")
    assert message in format_error("omniglot .png", tmp_path, path)


# ------------------------------------------------------------------ labels outside the classes
def put(a: np.ndarray, value: float, index: int = BAD) -> np.ndarray:
    """``a`` (a copy; float for a float ``value``) with ``value`` at flat ``index``."""
    a = a.astype(np.float64 if isinstance(value, float) or a.dtype.kind == "f" else np.int64)
    a.flat[index] = value
    return a


TEN_CLASS = {
    "mnist.npz": "y_train",
    "fashion-mnist IDX .gz": "train-labels-idx1-ubyte.gz",
    "cifar-10 pickle": "labels",
    "svhn .mat": r"'y' (10 read as 0)",
    "svhn .h5": "y_train",
}


@pytest.mark.parametrize("kind", TEN_CLASS)
@pytest.mark.parametrize("value", [12, -1, 255, float("nan")])
def test_label_outside_the_ten_classes(tmp_path, kind, value):
    if kind.startswith("fashion") and not 0 <= value <= 255:
        pytest.skip("IDX labels are uint8: -1 and NaN cannot be stored")
    path = KINDS[kind].write(tmp_path, labels=lambda y: put(y, value))
    message = format_error(kind, tmp_path, path)
    name = TEN_CLASS[kind]
    if np.isnan(value):
        assert message.endswith(
            f": label nan at index {BAD} of {name} is not an integer; expected integer class ids 0..9"
        )
    else:
        assert message.endswith(
            f": label {value} at index {BAD} of {name} is outside 0..9; expected integer class ids 0..9"
        )


@pytest.mark.parametrize(
    "labels, message",
    [
        (lambda y: put(put(y, 12, 4), 2.5, 2), "label 2.5 at index 2 of y_train is not an integer"),
        (lambda y: put(put(y, float("nan"), 4), 10, 1), "label 10 at index 1 of y_train is outside 0..9"),
        (lambda y: put(y, 1e30), f"label 1e+30 at index {BAD} of y_train is outside 0..9"),  # not wrapped by int64
        (lambda y: put(y, float("-inf")), f"label -inf at index {BAD} of y_train is not an integer"),
        (lambda y: y.astype(str), "y_train holds <U21 values; expected integer class ids 0..9"),
        (lambda y: y[:-1], "5 labels in y_train for 6 images in x_train; expected one label per image"),
    ],
)
def test_first_offending_label_is_named(tmp_path, labels, message):
    path = write_mnist(tmp_path, labels=labels)
    assert f"{path}: {message}" in format_error("mnist.npz", tmp_path, path)


def test_label_file_of_another_length(tmp_path):
    """Fashion-MNIST keeps images and labels in two files: the labels' file is named, with both counts."""
    path = write_fashion(tmp_path, labels=lambda y: y[:-2])
    assert format_error("fashion-mnist IDX .gz", tmp_path, path).endswith(
        ": 4 labels in train-labels-idx1-ubyte.gz for 6 images in train-images-idx3-ubyte.gz; expected one label "
        "per image"
    )


def test_svhn_mat_text_labels(tmp_path):
    path = write_svhn_mat(tmp_path, labels=lambda y: np.array(["x"] * len(y)))
    assert "'y' (10 read as 0) holds <U1 values; expected integer class ids 0..9" in format_error(
        "svhn .mat", tmp_path, path
    )


def test_svhn_mat_ten_is_digit_zero(tmp_path):
    write_svhn_mat(tmp_path)
    _, y = load_svhn_mat(tmp_path / "train_32x32.mat")
    np.testing.assert_array_equal(y, _digits())
    assert y.dtype == np.int64


@pytest.mark.parametrize(
    "labels, message",
    [
        (lambda y: put(y, float("nan"), 2 * BAD), f"row {BAD} of Y_train is not one-hot"),
        (lambda y: np.full_like(y, 0.5), "row 0 of Y_train is not one-hot ([0.5 0.5])"),
        (lambda y: np.argmax(y, axis=1) + 1, "label 2 at index 1 of Y_train is outside 0..1"),
        (lambda y: put(np.argmax(y, axis=1), -1), f"label -1 at index {BAD} of Y_train is outside 0..1"),
        (lambda y: put(np.argmax(y, axis=1), float("nan")), f"label nan at index {BAD} of Y_train is not an integer"),
        (
            lambda y: np.eye(3)[np.arange(N) % 3],
            "Y_train is float64 (6, 3); expected one-hot rows (N, 2) or integer class ids 0..1",
        ),
    ],
)
def test_dogfish_labels(tmp_path, labels, message):
    path = write_dogfish(tmp_path, labels=labels)
    assert message in format_error("dog-fish .npz", tmp_path, path)


def test_dogfish_one_hot_and_id_labels_load_alike(tmp_path):
    write_dogfish(tmp_path / "a")
    write_dogfish(tmp_path / "b", labels=lambda y: np.argmax(y, axis=1).astype(np.float32))
    (_, y_a), _ = load_dogfish(tmp_path / "a")
    (_, y_b), _ = load_dogfish(tmp_path / "b")
    np.testing.assert_array_equal(y_a, np.arange(N) % 2)
    np.testing.assert_array_equal(y_b, y_a)
    assert y_b.dtype == np.int64


@pytest.mark.parametrize(
    "value, message",
    [
        (float("nan"), f"label nan at index {BAD} of y_omniglot_1.npy is not an integer"),
        (-1, f"label -1 at index {BAD} of y_omniglot_1.npy is outside 0..6491"),
        (1623 * 4, f"label 6492 at index {BAD} of y_omniglot_1.npy is outside 0..6491"),
    ],
)
def test_omniglot_class_ids(tmp_path, value, message):
    write_omniglot_npy(tmp_path, labels=lambda y: put(y, value))
    assert message in format_error("omniglot .npy", tmp_path, tmp_path / "y_omniglot_1.npy")


def test_omniglot_label_count(tmp_path):
    write_omniglot_npy(tmp_path, labels=lambda y: y[:-1])
    assert (
        "15 labels in y_omniglot_1.npy for 16 images in x_omniglot_1.npy; expected one label per image"
        in format_error("omniglot .npy", tmp_path, tmp_path / "y_omniglot_1.npy")
    )


def test_features_h5_labels(tmp_path):
    path = write_features_h5(tmp_path, labels=lambda y: put(y, 7))
    assert f"label 7 at index {BAD} of Y_train is outside 0..1" in format_error("features .h5", tmp_path, path)


# ------------------------------------------------------------------ pixels: NaN, inf, out of range, wrong dtype
def put_image(value: float, image: int = 2) -> Transform:
    def transform(x: np.ndarray) -> np.ndarray:
        x = x.copy()
        x[image].flat[7] = value
        return x

    return transform


@pytest.mark.parametrize(
    "kind, value, message",
    [
        ("svhn .h5", float("nan"), "X_train[2] holds the value nan; expected finite values in [0, 255]"),
        ("svhn .h5", float("inf"), "X_train[2] holds the value inf; expected finite values in [0, 255]"),
        ("svhn .h5", 300.0, "X_train[2] holds the value 300; expected finite values in [0, 255]"),
        ("omniglot .npy", float("nan"), "x_omniglot_1.npy[2] holds the value nan; expected finite values in [0, 1]"),
        ("omniglot .npy", 1.5, "x_omniglot_1.npy[2] holds the value 1.5; expected finite values in [0, 1]"),
        ("dog-fish .npz", float("nan"), "X_train[2] holds the value nan; expected finite values in [-1, 1]"),
        ("dog-fish .npz", -2.0, "X_train[2] holds the value -2; expected finite values in [-1, 1]"),
        (
            "features .npy",
            float("-inf"),
            "X_train_features_inception.npy[2] holds the value -inf; expected finite values",
        ),
        ("features .h5", float("nan"), "X_train[2] holds the value nan; expected finite values"),
    ],
)
def test_bad_pixel_value(tmp_path, kind, value, message):
    path = KINDS[kind].write(tmp_path, images=put_image(value))
    assert message in format_error(kind, tmp_path, path)


def test_pixels_within_rounding_of_the_range_are_kept(tmp_path):
    write_dogfish(tmp_path, images=put_image(1.0 + 1e-6))
    (x, _), _ = load_dogfish(tmp_path)
    assert x.max() > 1.0


@pytest.mark.parametrize(
    "kind, images, message",
    [
        (
            "mnist.npz",
            lambda x: x.astype(np.float32),
            "x_train is float32 (6, 28, 28, 1); expected uint8 images (N, 28",
        ),
        ("mnist.npz", lambda x: x[:, :27], "x_train is uint8 (6, 27, 28, 1); expected uint8 images (N, 28, 28, 1)"),
        ("cifar-10 pickle", lambda x: x.astype(np.float64), "data is float64 (6, 3072); expected uint8 data of shape"),
        ("svhn .mat", lambda x: x.astype(np.float64), "'X' is float64 (32, 32, 3, 6); expected uint8 'X' of shape"),
        ("mini-imagenet pickle", lambda x: x[:, :32, :32], "image_data is uint8 (6, 32, 32, 3); expected uint8 images"),
        (
            "svhn .h5",
            lambda x: np.repeat(x, 2, axis=3),
            "X_train is float32 (6, 32, 32, 2); expected uint8 or float images (N, 32, 32, 1|3) "
            "with values in [0, 255]",
        ),
        ("features .npy", lambda x: x[:, :, None], "is float32 (6, 16, 1); expected float features (N, any)"),
    ],
)
def test_wrong_image_dtype_or_shape(tmp_path, kind, images, message):
    path = KINDS[kind].write(tmp_path, images=images)
    assert message in format_error(kind, tmp_path, path)


# ------------------------------------------------------------------ missing files name the offline demo
DIGITS = ", or run offline on the bundled digits: --dataset digits."
SMOKE = ", or check the pipeline offline on generated images: --smoke --random-weights without --data-dir."
MISSING = {  # loader of a folder, given offline_hint when not None
    "mnist": (lambda d, **h: load_mnist(d, **h), DIGITS),
    "fashion-mnist": (lambda d, **h: load_fashion_mnist(d, **h), DIGITS),
    "cifar-10": (lambda d, **h: load_cifar10(d, **h), DIGITS),
    "svhn cache": (lambda d, **h: load_svhn_h5(d / "SVHN_single_grey_without_extra.h5", **h), DIGITS),
    "omniglot": (lambda d, **h: load_omniglot(d, **h), DIGITS),
    "mini-imagenet": (lambda d, **h: load_miniimagenet_split(d / "mini-imagenet-cache-train.pkl", **h), DIGITS),
    "dog-fish": (lambda d, **h: load_dogfish(d, **h), SMOKE),
}


@pytest.mark.parametrize("name", MISSING)
def test_missing_file_ends_with_the_offline_alternative(tmp_path, name):
    load, hint = MISSING[name]
    with pytest.raises(DataFileMissingError) as e:
        load(tmp_path)
    message = str(e.value)
    assert message.endswith(hint) and "\n" not in message and "., " not in message
    assert message.count(hint) == 1
    with pytest.raises(DataFileMissingError) as e:
        load(tmp_path, offline_hint=None)
    assert "--dataset digits" not in str(e.value) and "--smoke" not in str(e.value)
    assert str(e.value).endswith(".")


def test_svhn_mat_missing_has_no_offline_hint_by_default(tmp_path):
    """Its caller, pre_process_svhn_data.py, has no --dataset flag."""
    with pytest.raises(DataFileMissingError) as e:
        load_svhn_mat(tmp_path / "train_32x32.mat")
    assert "--dataset digits" not in str(e.value) and str(e.value).endswith("holding them).")

"""Mini-ImageNet cache pickles of Ren et al. (Python 3 and Python 2 flavours)."""

import pickle

import numpy as np
import pytest

from bilevel_tf.datasets import DataFileMissingError, DataFormatError, load_miniimagenet_split
from bilevel_tf.datasets._testing import py2_pickle_dumps

# class names deliberately unsorted and image blocks interleaved
CLASS_DICT = {"n03400231": [1, 4, 7], "n01532829": [0, 3, 6], "n02110063": [2, 5, 8]}
EXPECTED_LABELS = np.array([0, 2, 1, 0, 2, 1, 0, 2, 1])


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, (9, 84, 84, 3), dtype=np.uint8)


def _check(path, images):
    x, y = load_miniimagenet_split(path)
    assert x.dtype == np.uint8 and x.shape == (9, 84, 84, 3)
    np.testing.assert_array_equal(x, images)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, EXPECTED_LABELS)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_python3_pickle_str_keys(tmp_path, images, protocol):
    p = tmp_path / "mini-imagenet-cache-train.pkl"
    p.write_bytes(pickle.dumps({"image_data": images, "class_dict": CLASS_DICT}, protocol=protocol))
    _check(p, images)


def test_bytes_keys(tmp_path, images):
    p = tmp_path / "mini-imagenet-cache-val.pkl"
    d = {b"image_data": images, b"class_dict": {k.encode(): v for k, v in CLASS_DICT.items()}}
    p.write_bytes(pickle.dumps(d, protocol=4))
    _check(p, images)


def test_python2_pickle(tmp_path, images):
    """Python-2 pickle: keys and raw array data are py2 strings -> plain load fails, encoding='bytes' needed."""
    p = tmp_path / "mini-imagenet-cache-test.pkl"
    p.write_bytes(py2_pickle_dumps({"image_data": images, "class_dict": CLASS_DICT}))
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(p.read_bytes())
    assert pickle.loads(p.read_bytes(), encoding="bytes").keys() == {b"image_data", b"class_dict"}
    _check(p, images)


def test_class_dict_with_numpy_index_arrays(tmp_path, images):
    p = tmp_path / "m.pkl"
    cd = {k: np.asarray(v, dtype=np.int64) for k, v in CLASS_DICT.items()}
    p.write_bytes(pickle.dumps({"image_data": images, "class_dict": cd}))
    _check(p, images)


def test_wrong_keys(tmp_path, images):
    p = tmp_path / "m.pkl"
    p.write_bytes(pickle.dumps({"images": images, "class_dict": CLASS_DICT}))
    with pytest.raises(
        DataFormatError,
        match=r"missing keys \['image_data'\] \(has \['class_dict', 'images'\]\); "
        r"expected keys 'image_data' and 'class_dict'",
    ):
        load_miniimagenet_split(p)


@pytest.mark.parametrize(
    "class_dict,msg",
    [
        ({"a": [0, 1, 2, 3]}, "5 of 9 images belong to no class"),
        ({"a": [0, 1, 2, 3, 4], "b": [4, 5, 6, 7, 8]}, "class 'b' shares images with another class"),
        ({"a": list(range(10))}, r"class 'a' indexes images outside \[0, 9\)"),
    ],
)
def test_inconsistent_class_dict(tmp_path, images, class_dict, msg):
    p = tmp_path / "m.pkl"
    p.write_bytes(pickle.dumps({"image_data": images, "class_dict": class_dict}))
    with pytest.raises(DataFormatError, match=msg):
        load_miniimagenet_split(p)


def test_float_images_rejected(tmp_path, images):
    p = tmp_path / "m.pkl"
    p.write_bytes(pickle.dumps({"image_data": images / 255.0, "class_dict": CLASS_DICT}))
    with pytest.raises(DataFormatError, match=r"image_data is float64 \(9, 84, 84, 3\); expected uint8"):
        load_miniimagenet_split(p)


def test_missing(tmp_path):
    with pytest.raises(DataFileMissingError) as e:
        load_miniimagenet_split(tmp_path / "mini-imagenet-cache-train.pkl")
    msg = str(e.value)
    assert msg.startswith(f"mini-imagenet-cache-train.pkl not found at {tmp_path / 'mini-imagenet-cache-train.pkl'}")
    assert "few-shot-ssl-public" in msg

"""Omniglot: omniglot_resized PNG folders -> x_omniglot_1.npy / y_omniglot_1.npy (original cache format)."""

import numpy as np
import pytest
import scipy.ndimage
from PIL import Image

from bilevel_tf.datasets import (
    DataFileMissingError,
    build_omniglot_arrays,
    list_omniglot_characters,
    load_omniglot,
    load_omniglot_folders,
)

# created deliberately out of order: the loader must sort by (alphabet, character)
TREE = {"Tifinagh": ["character02", "character01"], "Armenian": ["character03", "character01", "character02"]}
SORTED = [
    ("Armenian", "character01"),
    ("Armenian", "character02"),
    ("Armenian", "character03"),
    ("Tifinagh", "character01"),
    ("Tifinagh", "character02"),
]
N_PER_CHAR = 3


def _make_tree(root, rng, size=28):
    """Greyscale PNGs (white background 255, dark strokes), asymmetric so every rotation differs."""
    pixels = {}
    for alphabet, chars in TREE.items():
        for char in chars:
            d = root / alphabet / char
            d.mkdir(parents=True)
            for i in reversed(range(N_PER_CHAR)):
                img = np.full((size, size), 255, np.uint8)
                img[rng.random((size, size)) < 0.2] = 0
                img[1, : size // 2] = rng.integers(0, 255, size // 2)
                name = f"{char[-2:]}{i:02d}.png"
                Image.fromarray(img).save(d / name)
                pixels[(alphabet, char, i)] = img
    (root / ".DS_Store").write_bytes(b"junk")
    return pixels


def test_folders_sorted_with_ink_encoding(tmp_path):
    pixels = _make_tree(tmp_path / "omniglot_resized", np.random.default_rng(0))
    chars = list_omniglot_characters(tmp_path / "omniglot_resized")
    assert [(c.parent.name, c.name) for c in chars] == SORTED
    x, ids = load_omniglot_folders(tmp_path / "omniglot_resized")
    assert x.shape == (15, 28, 28, 1) and x.dtype == np.float32 and ids.dtype == np.int64
    np.testing.assert_array_equal(ids, np.repeat(np.arange(5), N_PER_CHAR))
    for cid, (alphabet, char) in enumerate(SORTED):
        for i in range(N_PER_CHAR):  # files sorted by name inside a character
            expected = 1.0 - pixels[(alphabet, char, i)].astype(np.float32) / 255.0
            np.testing.assert_allclose(x[cid * N_PER_CHAR + i, :, :, 0], expected, atol=1e-7)
    assert set(np.unique(x)) >= {0.0, 1.0}  # white background -> 0, black ink -> 1


def test_larger_pngs_are_resized(tmp_path):
    _make_tree(tmp_path / "raw", np.random.default_rng(1), size=105)
    x, _ = load_omniglot_folders(tmp_path / "raw")
    assert x.shape == (15, 28, 28, 1)


def test_build_arrays_rotations_and_class_ids(tmp_path):
    _make_tree(tmp_path / "omniglot_resized", np.random.default_rng(2))
    base, char_ids = load_omniglot_folders(tmp_path / "omniglot_resized")
    x, y = build_omniglot_arrays(tmp_path / "omniglot_resized", tmp_path / "cache")
    assert x.shape == (60, 28, 28, 1) and x.dtype == np.float32 and y.dtype == np.int32
    assert len(np.unique(y)) == 5 * 4
    np.testing.assert_array_equal(np.load(tmp_path / "cache" / "x_omniglot_1.npy"), x)
    np.testing.assert_array_equal(np.load(tmp_path / "cache" / "y_omniglot_1.npy"), y)
    for char in range(5):
        originals = base[char_ids == char, :, :, 0]
        for ri, angle in enumerate((0, 90, 180, 270)):
            got = x[y == char * 4 + ri, :, :, 0]
            assert len(got) == N_PER_CHAR
            np.testing.assert_array_equal(got, np.rot90(originals, k=ri, axes=(1, 2)))
            # the original used scipy rotate (spline), which equals rot90 at these angles
            np.testing.assert_allclose(got[0], scipy.ndimage.rotate(originals[0], angle), atol=1e-5)
    assert not np.array_equal(x[y == 0], x[y == 1])


def test_build_arrays_subset_of_rotations(tmp_path):
    _make_tree(tmp_path / "o", np.random.default_rng(3))
    x, y = build_omniglot_arrays(tmp_path / "o", tmp_path, rotations=(0, 180))
    assert len(x) == 30 and set(np.unique(y)) == set(range(10))
    with pytest.raises(ValueError, match="multiples of 90 degrees, got 45"):
        build_omniglot_arrays(tmp_path / "o", tmp_path, rotations=(0, 45))


def test_load_omniglot_builds_then_reads_cache(tmp_path):
    _make_tree(tmp_path / "omniglot_resized", np.random.default_rng(4))
    x, y, train_classes, test_classes = load_omniglot(tmp_path, n_train_characters=3)
    assert (tmp_path / "x_omniglot_1.npy").is_file() and (tmp_path / "y_omniglot_1.npy").is_file()
    np.testing.assert_array_equal(train_classes, np.arange(12))
    np.testing.assert_array_equal(test_classes, np.arange(12, 20))
    assert np.intersect1d(train_classes, test_classes).size == 0
    assert x.shape == (60, 28, 28, 1) and y.dtype == np.int64
    # second call reads the npy cache even without the PNG folder
    import shutil

    shutil.rmtree(tmp_path / "omniglot_resized")
    x2, y2, tr2, te2 = load_omniglot(tmp_path, n_train_characters=3)
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(te2, test_classes)
    with pytest.raises(ValueError, match="n_train_characters=5 leaves an empty meta-train or meta-test set"):
        load_omniglot(tmp_path, n_train_characters=5)


def test_load_omniglot_missing(tmp_path):
    with pytest.raises(DataFileMissingError) as e:
        load_omniglot(tmp_path)
    msg = str(e.value)
    assert msg.startswith(f"x_omniglot_1.npy not found at {tmp_path / 'x_omniglot_1.npy'}")
    assert str(tmp_path / "omniglot_resized") in msg and "y_omniglot_1.npy" in msg
    assert "https://github.com/brendenlake/omniglot" in msg and "images_evaluation" in msg

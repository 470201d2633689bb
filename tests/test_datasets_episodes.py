"""N-way K-shot episode sampling."""

import numpy as np
import pytest

from bilevel_tf.datasets import EpisodeSampler, as_tf_dataset, split_classes

N_CLASSES, PER_CLASS = 12, 20


@pytest.fixture
def data():
    """uint8 images whose pixels encode their own index, labels in shuffled order."""
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(np.arange(N_CLASSES), PER_CLASS))
    idx = np.arange(len(labels))
    images = np.stack([idx // 256, idx % 256], axis=1).astype(np.uint8)  # (N, 2)
    images = np.repeat(images[:, :, None, None], 3, axis=2)  # (N, 2, 3, 1)
    return images, labels


def _indices(x):
    """Recover original indices from float32 images in [0, 1]."""
    v = np.round(x[..., 0, 0] * 255).astype(int)
    return v[..., 0] * 256 + v[..., 1]


def test_episode_structure(data):
    images, labels = data
    n, k, q, b = 5, 3, 4, 2
    ep = EpisodeSampler(images, labels, np.arange(N_CLASSES), n, k, q, seed=1).sample(b)
    assert ep.support_x.shape == (b, n * k, 2, 3, 1) and ep.query_x.shape == (b, n * q, 2, 3, 1)
    assert ep.support_x.dtype == np.float32 and ep.support_y.dtype == np.int64
    assert 0.0 <= ep.support_x.min() and ep.query_x.max() <= 1.0
    sup_idx, qry_idx = _indices(ep.support_x), _indices(ep.query_x)
    used = []
    for t in range(b):
        np.testing.assert_array_equal(np.bincount(ep.support_y[t]), np.full(n, k))
        np.testing.assert_array_equal(np.bincount(ep.query_y[t]), np.full(n, q))
        assert not np.array_equal(ep.support_y[t], np.sort(ep.support_y[t]))  # shuffled
        assert np.intersect1d(sup_idx[t], qry_idx[t]).size == 0
        assert len(np.unique(sup_idx[t])) == n * k and len(np.unique(qry_idx[t])) == n * q
        task_classes = []
        for j in range(n):  # position label j <-> one original class, shared by support and query
            cls = np.unique(
                np.concatenate([labels[sup_idx[t][ep.support_y[t] == j]], labels[qry_idx[t][ep.query_y[t] == j]]])
            )
            assert len(cls) == 1
            task_classes.append(cls[0])
        assert len(set(task_classes)) == n
        used += task_classes
    assert len(set(used)) == b * n  # no class repeated within the meta-batch (10 <= 12 classes)


def test_pool_resets_when_exhausted(data):
    images, labels = data
    ep = EpisodeSampler(images, labels, None, 5, 1, 1, seed=2).sample(7)  # 35 draws from 12 classes
    for t in range(7):
        assert len(np.unique(labels[_indices(ep.support_x[t])])) == 5


def test_seeded_reproducibility(data):
    images, labels = data
    a = EpisodeSampler(images, labels, None, 4, 2, 3, seed=7)
    b = EpisodeSampler(images, labels, None, 4, 2, 3, seed=7)
    c = EpisodeSampler(images, labels, None, 4, 2, 3, seed=8)
    for _ in range(3):
        ea, eb, ec = a.sample(3), b.sample(3), c.sample(3)
        for u, v in zip(ea, eb):
            np.testing.assert_array_equal(u, v)
    assert not np.array_equal(ea.support_x, ec.support_x)


def test_meta_train_and_meta_test_classes_disjoint(data):
    images, labels = data
    train_classes, test_classes = split_classes(labels, 8)
    np.testing.assert_array_equal(train_classes, np.arange(8))
    np.testing.assert_array_equal(test_classes, np.arange(8, 12))
    seen = {}
    for name, classes in (("train", train_classes), ("test", test_classes)):
        ep = EpisodeSampler(images, labels, classes, 4, 2, 2, seed=0).sample(10)
        seen[name] = set(labels[_indices(ep.support_x)].ravel()) | set(labels[_indices(ep.query_x)].ravel())
        assert seen[name] <= set(classes.tolist())
    assert not seen["train"] & seen["test"]
    with pytest.raises(ValueError, match=r"n_train_classes=12 must be in \[1, 11\]"):
        split_classes(labels, 12)


def test_float_images_are_cast_not_rescaled(data):
    images, labels = data
    x = images.astype(np.float64) / 255.0
    ep = EpisodeSampler(x, labels, None, 2, 1, 1, seed=0).sample(1)
    assert ep.support_x.dtype == np.float32
    idx = _indices(ep.support_x[0])
    np.testing.assert_array_equal(ep.support_x[0], x[idx].astype(np.float32))


def test_validation_errors(data):
    images, labels = data
    with pytest.raises(ValueError, match=r"n_way=13 is larger than the number of classes \(12\)"):
        EpisodeSampler(images, labels, None, 13, 1, 1)
    with pytest.raises(ValueError, match=r"n_way=5 is larger than the number of classes \(4\)"):
        EpisodeSampler(images, labels, [0, 1, 2, 3], 5, 1, 1)
    with pytest.raises(ValueError, match=r"class 0 has 20 images, fewer than k_shot \+ n_query = 6 \+ 15 = 21"):
        EpisodeSampler(images, labels, None, 5, 6, 15)
    with pytest.raises(ValueError, match="class 99 has 0 images"):
        EpisodeSampler(images, labels, [0, 99], 2, 1, 1)


def test_as_tf_dataset(data):
    images, labels = data
    ds = as_tf_dataset(EpisodeSampler(images, labels, None, 3, 2, 1, seed=0), meta_batch_size=4)
    batches = list(ds.take(2).as_numpy_iterator())
    assert len(batches) == 2
    sx, sy, qx, qy = batches[1]
    assert sx.shape == (4, 6, 2, 3, 1) and qx.shape == (4, 3, 2, 3, 1)
    assert sx.dtype == np.float32 and sy.dtype == np.int64 and qy.shape == (4, 3)
    assert set(np.unique(sy)) == {0, 1, 2}
    ref = EpisodeSampler(images, labels, None, 3, 2, 1, seed=0)
    np.testing.assert_array_equal(batches[0][0], ref.sample(4).support_x)

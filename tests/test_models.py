"""Tests for bilevel_tf.models: shapes, exact parameter counts, small-input adaptation,
the cosine few-shot head and the InceptionV3 weight loading rules."""

import os

import h5py
import numpy as np
import pytest
import tensorflow as tf
import keras

from bilevel_tf import models


def _n_trainable(model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# denoising CNNs: exact parameter counts (derived by hand) and output shapes
# ---------------------------------------------------------------------------------------------
def test_mnist_cnn_shape_params_and_original_padding():
    model = models.mnist_cnn()
    assert model.output_shape == (None, 10)
    assert model(_rand(2, 28, 28, 1), training=False).shape == (2, 10)
    # conv1 5*5*1*64+64 = 1,664 (28 -> 24, pool 12); conv2 5*5*64*128+128 = 204,928 (12 -> 8, pool 4)
    # dense 4*4*128*512+512 = 1,049,088; 512*256+256 = 131,328; 256*10+10 = 2,570
    expected = 1_664 + 204_928 + 1_049_088 + 131_328 + 2_570
    assert expected == 1_389_578
    assert model.count_params() == expected == _n_trainable(model)
    assert 1.35e6 < expected < 1.45e6  # paper: "1.4M" lower-level variables for MNIST
    # real-data default = original exactly: valid convs and pools
    assert model.get_layer("conv1").padding == "valid"
    assert model.get_layer("conv2").padding == "valid"
    assert model.get_layer("pool2").output.shape[1:] == (4, 4, 128)
    # logits, not probabilities
    assert model.layers[-1].activation is keras.activations.linear


def test_cifar10_cnn_shape_and_params():
    model = models.cifar10_cnn()
    assert model(_rand(2, 32, 32, 3), training=False).shape == (2, 10)
    # block1: 3*3*3*48+48 = 1,344 (same); 3*3*48*48+48 = 20,784 (valid 32 -> 30, pool 15)
    # block2: 3*3*48*96+96 = 41,568; 3*3*96*96+96 = 83,040 (15 -> 13, pool 6)
    # block3: 3*3*96*192+192 = 166,080; 3*3*192*192+192 = 331,968 (6 -> 4, pool 2)
    # dense: 2*2*192*512+512 = 393,728; 512*256+256 = 131,328; 256*10+10 = 2,570
    expected = 1_344 + 20_784 + 41_568 + 83_040 + 166_080 + 331_968 + 393_728 + 131_328 + 2_570
    assert expected == 1_172_410
    assert model.count_params() == expected
    assert 1.15e6 < expected < 1.25e6  # paper supp Table 7: 1.2M
    assert model.get_layer("block1_conv1").padding == "same"
    assert model.get_layer("block1_conv2").padding == "valid"
    assert model.get_layer("block3_pool").output.shape[1:] == (2, 2, 192)
    assert model.layers[-1].activation is keras.activations.linear


def test_svhn_cnn_shape_and_params():
    model = models.svhn_cnn()
    assert model(_rand(2, 32, 32, 1), training=False).shape == (2, 10)
    # 3*3*1*32+32 = 320; 3*3*32*32+32 = 9,248; 3*3*32*64+64 = 18,496; 3*3*64*64+64 = 36,928;
    # 3*3*64*128+128 = 73,856; 3*3*128*128+128 = 147,584; (32 -> 16 -> 8 -> 4)
    # dense 4*4*128*512+512 = 1,049,088; 512*10+10 = 5,130
    expected = 320 + 9_248 + 18_496 + 36_928 + 73_856 + 147_584 + 1_049_088 + 5_130
    assert expected == 1_340_650
    assert model.count_params() == expected
    assert 1.25e6 < expected < 1.35e6  # paper supp Table 7: 1.3M
    assert models.svhn_cnn(num_classes=3).output_shape == (None, 3)


@pytest.mark.parametrize(
    "name,out_dim",
    [("mnist_cnn", 10), ("cifar10_cnn", 10), ("svhn_cnn", 10), ("omniglot_encoder", 64), ("miniimagenet_resnet", 384)],
)
def test_image_models_build_on_8x8_digits(name, out_dim):
    model = models.get_model(name, input_shape=(8, 8, 1))
    out = model(_rand(3, 8, 8, 1), training=True)
    assert out.shape == (3, out_dim)
    assert np.all(np.isfinite(out.numpy()))


def test_small_input_adaptation_only_where_needed():
    m = models.mnist_cnn(input_shape=(8, 8, 1))
    # 8 -> conv1 valid 4 -> pool 2 -> conv2 (5x5 valid impossible) 'same' 2 -> pool 1
    assert m.get_layer("conv1").padding == "valid"
    assert m.get_layer("conv2").padding == "same"
    assert m.get_layer("pool2").output.shape[1:] == (1, 1, 128)
    # same parameter count in the conv layers; the flatten size changes the first dense layer
    assert m.get_layer("conv2").count_params() == 204_928
    assert m.get_layer("dense1").count_params() == 128 * 512 + 512
    with pytest.raises(ValueError, match="adapt_to_small_inputs"):
        models.mnist_cnn(input_shape=(8, 8, 1), adapt_to_small_inputs=False)
    with pytest.raises(ValueError, match="input_shape"):
        models.mnist_cnn(input_shape=(28, 28))


# ---------------------------------------------------------------------------------------------
# linear models
# ---------------------------------------------------------------------------------------------
def test_logistic_regression_with_and_without_bias():
    with_bias = models.logistic_regression(784, 10)
    assert with_bias.count_params() == 784 * 10 + 10
    model = models.logistic_regression(784, 10, use_bias=False)
    assert [tuple(v.shape) for v in model.trainable_variables] == [(784, 10)]
    x = _rand(4, 784)
    W = model.trainable_variables[0].numpy()
    np.testing.assert_allclose(model(x).numpy(), x @ W, rtol=1e-5, atol=1e-5)
    # glorot-uniform like tf.get_variable's default: |W| <= sqrt(6 / (784 + 10))
    assert np.abs(W).max() <= np.sqrt(6.0 / 794) + 1e-6
    digits = models.logistic_regression((8, 8), 10)
    assert digits(_rand(2, 8, 8)).shape == (2, 10)


def test_mlp_architectures():
    model = models.mlp(784)  # PBGD hyper-cleaning MLP 784-300(sigmoid)-10
    assert model.count_params() == 784 * 300 + 300 + 300 * 10 + 10 == 238_510
    assert model.get_layer("hidden1").activation is keras.activations.sigmoid
    assert model(_rand(2, 784)).shape == (2, 10)
    big = models.mlp(784, hidden=(1024, 1024), activation="relu")
    assert big.count_params() == (784 * 1024 + 1024) + (1024 * 1024 + 1024) + (1024 * 10 + 10)
    small = models.mlp((8, 8), hidden=16, num_classes=3, dropout=0.2)
    assert small(_rand(5, 8, 8), training=True).shape == (5, 3)


# ---------------------------------------------------------------------------------------------
# few-shot representations
# ---------------------------------------------------------------------------------------------
def test_omniglot_encoder_64d_and_params():
    model = models.omniglot_encoder()
    out = model(_rand(3, 28, 28, 1), training=True)
    assert out.shape == (3, 64)
    # 28 -> 14 -> 7 -> 3 -> 1 with VALID pooling, as the original
    assert [model.get_layer(f"conv_{i}_pool").output.shape[1] for i in range(1, 5)] == [14, 7, 3, 1]
    # kernels 3*3*1*64 + 3 * 3*3*64*64, no conv bias, BN beta only (64 each): 111,424 (paper: 111K)
    assert _n_trainable(model) == 576 + 3 * 36_864 + 4 * 64 == 111_424
    assert all(not model.get_layer(f"conv_{i}").use_bias for i in range(1, 5))
    # no ReLU after the 4th conv: features can be negative
    assert "conv_4_relu" not in [layer.name for layer in model.layers]
    assert out.numpy().min() < 0


def test_miniimagenet_resnet_384d_and_params():
    model = models.miniimagenet_resnet()
    out = model(_rand(2, 84, 84, 3), training=True)
    assert out.shape == (2, 384)
    assert [model.get_layer(f"res_{i}_pool").output.shape[1] for i in range(1, 5)] == [42, 21, 11, 6]
    # per block: skip 1x1 (bias) + 3 x [3x3 conv no bias + BN beta]
    blocks = 0
    c_in = 3
    for f in (64, 96, 128, 256):
        blocks += (c_in * f + f) + (9 * c_in * f + f) + 2 * (9 * f * f + f)
        c_in = f
    assert blocks == 75_904 + 227_712 + 418_304 + 1_508_352
    expected = blocks + (256 * 2048 + 2048) + (2048 * 384 + 384)
    assert _n_trainable(model) == expected == 3_543_424  # paper supp Table 7 says "3.8M"
    with_dropout = models.miniimagenet_resnet(input_shape=(16, 16, 3), dropout=0.1)
    assert "res_1_dropout" in [layer.name for layer in with_dropout.layers]
    assert _n_trainable(with_dropout) == expected


# ---------------------------------------------------------------------------------------------
# cosine classifier (few-shot lower level)
# ---------------------------------------------------------------------------------------------
def _np_cosine(x, W, b, scale=10.0, eps=1e-3):
    out = np.zeros(x.shape[:2] + (W.shape[-1],))
    for t in range(x.shape[0]):
        x_norm = np.sqrt((x[t] ** 2).sum(axis=1, keepdims=True) + eps**2)  # (n, 1)
        w_norm = np.sqrt((W[t] ** 2).sum(axis=0, keepdims=True) + b[t] ** 2)  # (1, K)
        out[t] = scale * (x[t] @ W[t] + eps * b[t]) / (x_norm * w_norm)
    return out


def test_cosine_classifier_init_and_formula():
    layer = models.CosineClassifier(n_way=5, num_tasks=3, feature_dim=16, seed=1)
    assert tuple(layer.W.shape) == (3, 16, 5) and tuple(layer.b.shape) == (3, 5)
    assert [v.name for v in layer.trainable_variables] == ["W", "b"]
    np.testing.assert_allclose(layer.b.numpy(), 1e-3)
    assert 0.007 < layer.W.numpy().std() < 0.013
    x = _rand(3, 7, 16)
    logits = layer(x).numpy()
    assert logits.shape == (3, 7, 5)
    np.testing.assert_allclose(logits, _np_cosine(x, layer.W.numpy(), layer.b.numpy()), rtol=1e-4, atol=1e-5)
    assert np.abs(logits).max() <= 10.0 + 1e-4  # a scaled cosine
    # functional form, 2-D single-task path and gradients to both variables
    np.testing.assert_allclose(models.cosine_logits(x, layer.W, layer.b).numpy(), logits, rtol=1e-5)
    single = models.CosineClassifier(n_way=4)
    x2 = _rand(6, 8)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(single(x2) ** 2)
    assert single(x2).shape == (6, 4)
    np.testing.assert_allclose(
        single(x2).numpy(), _np_cosine(x2[None], single.W.numpy(), single.b.numpy())[0], rtol=1e-4
    )
    grads = tape.gradient(loss, single.trainable_variables)
    assert all(g is not None and np.any(g.numpy() != 0) for g in grads)


def test_cosine_classifier_reset_in_tf_function():
    layer = models.CosineClassifier(n_way=5, num_tasks=2, feature_dim=8, seed=3)
    layer.b.assign(tf.ones((2, 5)))
    W0 = layer.W.numpy().copy()

    @tf.function
    def reset_and_read():
        layer.reset()
        return tf.identity(layer.W), tf.identity(layer.b)

    W1, b1 = reset_and_read()
    W2, _ = reset_and_read()
    assert W1.shape == W0.shape == (2, 8, 5) and b1.shape == (2, 5)
    assert not np.allclose(W1.numpy(), W0) and not np.allclose(W2.numpy(), W1.numpy())
    np.testing.assert_allclose(layer.b.numpy(), 1e-3)
    assert 0.005 < W2.numpy().std() < 0.016
    # the variables are updated in place (same objects the optimizer tracks)
    np.testing.assert_allclose(layer.W.numpy(), W2.numpy())


# ---------------------------------------------------------------------------------------------
# InceptionV3 features
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inception_small():
    return models.inception_v3_features(weights=None, input_shape=(75, 75, 3))


def test_inception_features_random_weights(inception_small):
    assert inception_small.output_shape == (None, 2048)
    x = tf.constant(_rand(1, 75, 75, 3).clip(-1, 1))
    with tf.GradientTape() as tape:
        tape.watch(x)
        feats = inception_small(x)
        loss = tf.reduce_sum(feats)
    assert feats.shape == (1, 2048)
    assert inception_small.trainable_variables == []  # frozen feature extractor
    grad = tape.gradient(loss, x)  # the clean-label attack needs d feats / d image
    assert grad is not None and np.any(grad.numpy() != 0)


def test_inception_imagenet_missing_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=models.INCEPTION_V3_NOTOP_WEIGHTS):
        models.inception_v3_features(weights="imagenet", input_shape=(75, 75, 3))
    with pytest.raises(FileNotFoundError):
        models.inception_v3_features(weights=str(tmp_path / "nope.h5"), input_shape=(75, 75, 3))


def test_inception_loads_cached_and_local_weights(monkeypatch, tmp_path, inception_small):
    from keras.src.legacy.saving import legacy_h5_format

    cache = tmp_path / "models"
    cache.mkdir()
    path = cache / models.INCEPTION_V3_NOTOP_WEIGHTS
    with h5py.File(path, "w") as f:  # same legacy layout as the Keras notop file
        legacy_h5_format.save_weights_to_hdf5_group(f, inception_small)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert models.keras_weights_cache_path() == str(path)
    reference = [w.numpy() for w in inception_small.weights]
    for weights in ("imagenet", path):
        loaded = models.inception_v3_features(weights=weights, input_shape=(75, 75, 3))
        assert len(loaded.weights) == len(reference)
        # every tensor, starting with the (randomly initialised before loading) first conv kernel
        assert all(np.array_equal(w.numpy(), r) for w, r in zip(loaded.weights, reference))
    os.remove(path)


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------
def test_get_model_registry():
    model = models.get_model("logistic_regression", input_dim=64, num_classes=10, use_bias=False)
    assert model.count_params() == 640
    assert models.get_model("svhn_cnn", input_shape=(8, 8, 1), num_classes=10).output_shape == (None, 10)
    with pytest.raises(ValueError) as err:
        models.get_model("resnet50")
    message = str(err.value)
    assert "resnet50" in message
    for name in (
        "mnist_cnn",
        "cifar10_cnn",
        "svhn_cnn",
        "logistic_regression",
        "mlp",
        "omniglot_encoder",
        "miniimagenet_resnet",
    ):
        assert name in message
    # positional arguments go to the factory too, as in the runners' models.svhn_cnn(shape, n)
    assert models.get_model("softmax_layer", 16, 3).output_shape == (None, 3)


def test_registry_names_every_model_factory():
    import inspect

    not_factories = {"cosine_logits", "keras_weights_cache_path", "taskwise_encoder", "get_model"}
    functions = {
        name for name in models.__all__ if inspect.isfunction(getattr(models, name)) and name not in not_factories
    }
    assert functions == set(models.MODEL_FACTORIES)
    assert all(models.MODEL_FACTORIES[name] is getattr(models, name) for name in functions)

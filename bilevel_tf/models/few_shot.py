"""Few-shot models: the representations (upper level), the per-task cosine heads (lower level), and the
per-task batch-norm wrapper that runs a whole meta-batch through one encoder."""

from __future__ import annotations

from typing import Optional, Sequence

import keras
import tensorflow as tf

from ._shapes import _HW, _image_shape, _pool_padding


# ---------------------------------------------------------------------------------------------
# few-shot representations (upper level)
# ---------------------------------------------------------------------------------------------
def _tcl_batch_norm(name: str) -> keras.layers.BatchNormalization:
    """``tf.contrib.layers.batch_norm`` defaults: beta only (scale=False), decay .999, eps 1e-3."""
    return keras.layers.BatchNormalization(momentum=0.999, epsilon=1e-3, center=True, scale=False, name=name)


def omniglot_encoder(
    input_shape: Sequence[Optional[int]] = (28, 28, 1),
    filters: int = 64,
    *,
    adapt_to_small_inputs: bool = True,
    name: str = "omniglot_encoder",
) -> keras.Model:
    """Omniglot few-shot representation (original ``encoder`` / ``conv_block_new``; paper Sec. 3.3).

    4 x [Conv(filters, 3x3, SAME, glorot-uniform, no bias) - BatchNorm (beta only) - ReLU (not
    after the 4th conv) - MaxPool 2x2 stride 2 VALID] - Flatten. ``tcl.conv2d`` with a
    ``normalizer_fn`` has no bias and ``tcl.batch_norm`` has ``scale=False`` by default, so neither
    does this model. 28 -> 14 -> 7 -> 3 -> 1: a **64-d** feature for 28x28 images.

    Parameters (filters=64): 576 + 3 * 36,864 (kernels) + 4 * 64 (BN beta) = **111,424**
    trainable (the paper's "111K" Omniglot upper-level variables), plus 512 non-trainable BN
    moving statistics. The original always ran BatchNorm in training mode (``is_training``
    default True, moving averages never updated): call the model with ``training=True`` to match.

    On 8x8 inputs the last pool (on a 1x1 map) uses 'same': 8 -> 4 -> 2 -> 1 -> 1, still
    ``filters``-d.
    """
    shape = _image_shape(input_shape)
    if not isinstance(filters, int) or filters < 1:
        raise ValueError(f"filters must be a positive integer, got {filters!r}")
    hw: _HW = (shape[0], shape[1])
    inputs = keras.Input(shape=shape, name="image")
    x = inputs
    for i in range(1, 5):
        x = keras.layers.Conv2D(
            filters, 3, padding="same", use_bias=False, kernel_initializer="glorot_uniform", name=f"conv_{i}"
        )(x)
        x = _tcl_batch_norm(f"conv_{i}_bn")(x)
        if i != 4:
            x = keras.layers.ReLU(name=f"conv_{i}_relu")(x)
        pad, hw = _pool_padding(hw, "valid", adapt_to_small_inputs, f"conv_{i}_pool")
        x = keras.layers.MaxPooling2D(2, strides=2, padding=pad, name=f"conv_{i}_pool")(x)
    features = keras.layers.Flatten(name="features")(x)
    return keras.Model(inputs, features, name=name)


def miniimagenet_resnet(
    input_shape: Sequence[Optional[int]] = (84, 84, 3),
    *,
    filters: Sequence[int] = (64, 96, 128, 256),
    embedding_dim: int = 384,
    hidden_dim: int = 2048,
    dropout: float = 0.0,
    name: str = "miniimagenet_resnet",
) -> keras.Model:
    """Mini-ImageNet few-shot representation (original ``make_resnet_filter``; paper Sec. 3.3).

    4 residual blocks with (64, 96, 128, 256) filters, each:
    skip = Conv 1x1 (bias, no activation); body = 3 x [Conv 3x3 SAME (no bias) - BatchNorm
    (beta only, ``tcl.batch_norm`` defaults) - LeakyReLU(0.1)]; ``skip + body``; MaxPool 2x2
    SAME (84 -> 42 -> 21 -> 11 -> 6). Then Conv 1x1 ``hidden_dim`` (=2048) ReLU, average pooling
    over the whole map (the original's 6x6 VALID avg-pool, written as global average pooling so
    other input sizes work too), and a linear ``embedding_dim`` (=384) projection (the original's
    1x1 conv on the 1x1 map, i.e. a Dense layer) -> **384-d** features.

    Parameters (defaults): 75,904 + 227,712 + 418,304 + 1,508,352 (blocks) + 526,336 (1x1 2048)
    + 786,816 (384 projection) = **3,543,424** trainable, plus 3,264 non-trainable BN moving
    statistics. The paper's supp Table 7 says "3.8M" upper-level variables; the original code
    gives 3.54M (BN layers have no gamma, body convs no bias).

    Glorot-uniform kernels and zero biases, as ``tcl.conv2d``. ``dropout`` (a Keras drop *rate*)
    is applied after each residual block's pooling when positive; the original code has no
    dropout (the paper text mentions "dropout 0.9", presumably a TF1 keep probability, i.e. rate
    0.1), so the default 0.0 reproduces the code. The original ran BatchNorm in training mode
    always; call with ``training=True`` to match. All pools are SAME, so any input size >= 1
    works (8x8: 8 -> 4 -> 2 -> 1 -> 1).
    """
    shape = _image_shape(input_shape)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    filters = tuple(filters)
    if not filters or any(not isinstance(f, int) or f < 1 for f in filters):
        raise ValueError(f"filters must be a non-empty sequence of positive ints, got {filters!r}")
    inputs = keras.Input(shape=shape, name="image")
    x = inputs
    for i, n_filters in enumerate(filters, start=1):
        block = f"res_{i}"
        skip = keras.layers.Conv2D(n_filters, 1, padding="same", name=f"{block}_skip")(x)
        out = x
        for j in range(3):
            out = keras.layers.Conv2D(n_filters, 3, padding="same", use_bias=False, name=f"{block}_conv_{j}")(out)
            out = _tcl_batch_norm(f"{block}_conv_{j}_bn")(out)
            out = keras.layers.LeakyReLU(negative_slope=0.1, name=f"{block}_conv_{j}_lrelu")(out)
        x = keras.layers.Add(name=f"{block}_add")([skip, out])
        x = keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"{block}_pool")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"{block}_dropout")(x)
    x = keras.layers.Conv2D(hidden_dim, 1, activation="relu", name="conv_hidden")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    features = keras.layers.Dense(embedding_dim, name="features")(x)
    return keras.Model(inputs, features, name=name)


# ---------------------------------------------------------------------------------------------
# few-shot lower level: cosine-normalised softmax regression, one head per task
# ---------------------------------------------------------------------------------------------
def cosine_logits(features: tf.Tensor, W: tf.Tensor, b: tf.Tensor, scale: float = 10.0, eps: float = 1e-3) -> tf.Tensor:
    """The original ``top_layer`` logits, batched over any leading task dimensions.

    ``logits = scale * (x W + eps * b) / (sqrt(||x||^2 + eps^2) * sqrt(||W_col||^2 + b^2))``,
    i.e. the cosine between the augmented vectors ``[x, eps]`` and ``[W_col, b]`` times ``scale``
    (original: ``scale = 10``, ``wat = eps = 0.001``).

    Shapes: ``features`` (..., n, d), ``W`` (..., d, K), ``b`` (..., K) -> (..., n, K).
    """
    x = tf.convert_to_tensor(features)
    W = tf.convert_to_tensor(W, dtype=x.dtype)
    b = tf.convert_to_tensor(b, dtype=x.dtype)
    x_norm = tf.sqrt(tf.reduce_sum(tf.square(x), axis=-1, keepdims=True) + eps**2)  # (..., n, 1)
    w_norm = tf.sqrt(tf.reduce_sum(tf.square(W), axis=-2) + tf.square(b))  # (..., K)
    numerator = tf.matmul(x, W) + eps * tf.expand_dims(b, -2)  # (..., n, K)
    return scale * numerator / (x_norm * tf.expand_dims(w_norm, -2))


class CosineClassifier(keras.layers.Layer):
    """Per-task cosine-normalised linear heads: the few-shot lower level (original ``top_layer``).

    Holds one head per task of a meta-batch as batched weights ``W`` (num_tasks, feature_dim,
    n_way), initialised N(0, 0.01), and ``b`` (num_tasks, n_way), initialised 0.001, exactly the
    original's ``W_top`` / ``b_top`` per task. ``call(features)`` maps (num_tasks, n, d) features
    to (num_tasks, n, n_way) logits with :func:`cosine_logits`; with ``num_tasks == 1`` a 2-D
    (n, d) input gives (n, n_way).

    ``reset()`` re-draws ``W`` and refills ``b`` in place with TF ops only (a Keras
    ``SeedGenerator`` supplies fresh seeds), so it can run inside a ``tf.function`` at the start
    of every meta-iteration, as the original's ``reset_v_func``. Resetting the optimizer slots
    of the lower-level optimizer is the caller's business.

    Parameters per task: (feature_dim + 1) * n_way, e.g. 64*20 + 20 = 1,300 for Omniglot 20-way
    (x 30 tasks = the paper's "39K" lower-level variables) and 384*5 + 5 = 1,925 for Mini-ImageNet.
    """

    def __init__(
        self,
        n_way: int,
        num_tasks: int = 1,
        feature_dim: Optional[int] = None,
        *,
        scale: float = 10.0,
        eps: float = 1e-3,
        w_stddev: float = 0.01,
        b_init: float = 1e-3,
        seed: Optional[int] = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        for arg, value in (("n_way", n_way), ("num_tasks", num_tasks)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} must be a positive integer, got {value!r}")
        if feature_dim is not None and (not isinstance(feature_dim, int) or feature_dim < 1):
            raise ValueError(f"feature_dim must be a positive integer or None, got {feature_dim!r}")
        self.n_way = n_way
        self.num_tasks = num_tasks
        self.feature_dim = feature_dim
        self.scale = float(scale)
        self.eps = float(eps)
        self.w_stddev = float(w_stddev)
        self.b_init = float(b_init)
        self.seed = seed
        self._seed_generator = keras.random.SeedGenerator(seed, name="reset_seed")
        if feature_dim is not None:
            self.build((num_tasks, None, feature_dim))

    def build(self, input_shape) -> None:
        d = input_shape[-1]
        if d is None:
            raise ValueError("CosineClassifier needs a known feature dimension (last axis)")
        if self.feature_dim is not None and d != self.feature_dim:
            raise ValueError(f"features have dimension {d}, expected feature_dim={self.feature_dim}")
        self.feature_dim = int(d)
        w_seed = None if self.seed is None else self.seed + 1
        self.W = self.add_weight(
            name="W",
            shape=(self.num_tasks, self.feature_dim, self.n_way),
            initializer=keras.initializers.RandomNormal(stddev=self.w_stddev, seed=w_seed),
        )
        self.b = self.add_weight(
            name="b", shape=(self.num_tasks, self.n_way), initializer=keras.initializers.Constant(self.b_init)
        )
        self.built = True

    def call(self, features):
        rank = len(features.shape)
        if rank == 2:
            if self.num_tasks != 1:
                raise ValueError(
                    f"2-D features need num_tasks == 1 (got num_tasks={self.num_tasks}); pass "
                    f"(num_tasks, n, d) features"
                )
            return cosine_logits(features, self.W[0], self.b[0], self.scale, self.eps)
        if rank != 3:
            raise ValueError(f"features must have shape (num_tasks, n, d), got {features.shape}")
        return cosine_logits(features, self.W, self.b, self.scale, self.eps)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.n_way,)

    def reset(self) -> None:
        """Re-initialise every task's head in place (``W`` ~ N(0, w_stddev), ``b`` = b_init)."""
        if not self.built:
            return
        self.W.assign(
            keras.random.normal(
                tuple(self.W.shape), stddev=self.w_stddev, dtype=self.W.dtype, seed=self._seed_generator
            )
        )
        self.b.assign(tf.fill(tuple(self.b.shape), tf.constant(self.b_init, dtype=self.b.dtype)))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            n_way=self.n_way,
            num_tasks=self.num_tasks,
            feature_dim=self.feature_dim,
            scale=self.scale,
            eps=self.eps,
            w_stddev=self.w_stddev,
            b_init=self.b_init,
            seed=self.seed,
        )
        return config


# ---------------------------------------------------------------------------------------------
# per-task batch statistics: one encoder pass over a whole meta-batch
# ---------------------------------------------------------------------------------------------
class TaskBatchNorm(keras.layers.Layer):
    """Training-mode batch norm of a wrapped ``BatchNormalization`` layer (same beta/gamma variables), with
    statistics computed separately for each of ``groups`` equal consecutive blocks of the batch (one per task)."""

    def __init__(self, bn: keras.layers.BatchNormalization, groups: int, **kwargs):
        super().__init__(name=f"{bn.name}_per_task", **kwargs)
        if bn.axis not in (-1, [-1], [3], 3):
            raise ValueError(f"{bn.name}: only channels-last batch norm is supported (axis={bn.axis})")
        self.bn, self.groups = bn, int(groups)

    def call(self, x, training=None, mask=None):
        shape = tf.shape(x)
        grouped = tf.reshape(x, tf.concat([[self.groups, -1], shape[1:]], 0))
        axes = list(range(1, len(x.shape)))  # of the grouped tensor: all but the group and channel axes
        mean, var = tf.nn.moments(grouped, axes=axes, keepdims=True)
        y = (grouped - mean) * tf.math.rsqrt(var + self.bn.epsilon)
        if getattr(self.bn, "gamma", None) is not None:
            y = y * self.bn.gamma
        if getattr(self.bn, "beta", None) is not None:
            y = y + self.bn.beta
        return tf.reshape(y, shape)

    def compute_output_shape(self, input_shape):
        return input_shape


def taskwise_encoder(encoder: keras.Model, num_tasks: int) -> keras.Model:
    """The encoder with every BatchNormalization computing per-task statistics on a (num_tasks * n, ...) batch
    of num_tasks consecutive blocks. All layers and variables are shared with ``encoder``.

    The original few-shot code builds one encoder copy per task and split, so its batch norm (always in
    training mode) normalises each task's support set and query set with their own statistics; this gives
    the same result with one vectorised pass instead of 2 x meta-batch copies."""

    def swap(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            return TaskBatchNorm(layer, num_tasks)
        return layer

    return keras.models.clone_model(encoder, clone_function=swap)

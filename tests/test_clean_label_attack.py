"""Clean-label attack pieces on a tiny frozen conv net standing in for InceptionV3 (fast): the cached
feature op's hypergradients, the eps-ball projection, the baseline, the radius search and the curve."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import bilevel_tf as bl
from bilevel_tf import datasets, models
from bilevel_tf.apps import poisoning
from bilevel_tf.apps.classifier import ClassifierTrainer

pytestmark = pytest.mark.slow  # end to end, learning or multi-process: deselect with -m "not slow"

SHAPE = (8, 8, 3)


def tiny_feature_map(seed=0) -> poisoning.FeatureMap:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(SHAPE)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="tanh")(inputs))
    # a list of inputs, like models.inception_v3_features
    net = keras.Model([inputs], keras.layers.Dense(6, activation="tanh")(x))
    net.trainable = False
    return poisoning.FeatureMap(net)


def _setup(method="penalty", inner_steps=3, beta=0.0):
    fm = tiny_feature_map()
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (12, *SHAPE)).astype(np.float32)
    labels = np.arange(12) % 2
    features = fm.extract(images)
    trainer = ClassifierTrainer(models.softmax_layer(features.shape[1], 2), keras.optimizers.RMSprop(1e-2))
    trainer.fit(features, labels, 50)
    attack = poisoning.CleanLabelAttack(
        fm,
        trainer,
        features,
        labels,
        SHAPE,
        method=method,
        lr_u=0.05,
        lr_v=1e-2,
        lr_p=1e-2,
        inner_steps=inner_steps,
        rho=1.0,
        lam=1.0,
        eps=1.0,
        nu=0.0,
        sigma=1e-3,
        beta=beta,
    )
    return fm, trainer, attack, images, labels, features


def test_cached_features_give_the_exact_second_order_terms():
    """The cache (r(u) computed once per upper iteration, VJP only when d/du is needed) must give the
    same h_u gradients as the plain formulation calling the network inside the losses."""
    fm, trainer, attack, images, labels, features = _setup(beta=0.01)
    attack.set_pair(images[3], int(labels[3]), features[4], int(labels[4]))
    attack.u.assign(images[3][None] + 0.1)
    attack.solver.problem.lower_init()
    net, clf = fm.network, trainer.model
    problem = attack.solver.problem

    def lower(_):
        logits = clf(tf.concat([net([attack.u]), attack.train_features], 0))
        return poisoning.cross_entropy(logits, tf.concat([attack.poison_label, attack.train_labels], 0))

    def upper(_):
        return (
            poisoning.cross_entropy(clf(attack.target_feature), attack.wrong_label)
            + tf.reduce_sum(tf.square(net([attack.u]) - attack.target_feature))
            + 0.01 * tf.reduce_sum(tf.square(attack.u - attack.base))
        )

    plain = bl.BilevelProblem(upper, lower, [attack.u], trainer.variables)
    np.testing.assert_allclose(float(problem.g(None)), float(plain.g(None)), rtol=1e-6)
    np.testing.assert_allclose(float(problem.f(None)), float(plain.f(None)), rtol=1e-6)
    rng = np.random.default_rng(1)
    w = [tf.constant(rng.normal(size=v.shape), tf.float32) for v in trainer.variables]
    wrt = [attack.u] + trainer.variables
    _, gv1, f1, grads1 = bl.autodiff.second_order(problem, None, w, wrt, extra=lambda: problem.f(None))
    _, gv2, f2, grads2 = bl.autodiff.second_order(plain, None, w, wrt, extra=lambda: plain.f(None))
    for a, b in zip(list(gv1) + list(grads1), list(gv2) + list(grads2)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    assert np.abs(np.asarray(grads1[0])).max() > 0


def test_feature_map_gradient_matches_autodiff():
    fm = tiny_feature_map()
    x = tf.constant(np.random.default_rng(2).uniform(-1, 1, (2, *SHAPE)), tf.float32)
    target = tf.constant(np.random.default_rng(3).normal(size=(2, 6)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.square(fm.network([x]) - target))
    np.testing.assert_allclose(
        fm.input_gradient(x, tf.zeros_like(target), target, tf.constant(1.0)).numpy(),
        tape.gradient(loss, x).numpy(),
        rtol=1e-4,
        atol=1e-7,
    )
    with tf.GradientTape() as tape:  # the differentiable call used by cleverhans' PGD
        tape.watch(x)
        y = fm(x)
    np.testing.assert_allclose(y.numpy(), fm.network([x]).numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        tape.gradient(y, x).numpy(), fm.input_gradient(x, tf.ones_like(y), target, tf.constant(0.0)).numpy(), rtol=1e-5
    )


def test_projection_keeps_the_poison_in_the_ball_and_pixel_range():
    base = tf.constant(np.random.default_rng(4).uniform(-0.9, 0.9, (1, *SHAPE)), tf.float32)
    project = poisoning.poison_projection(base, 2.0)
    inside = base + 0.01
    np.testing.assert_allclose(project([inside])[0].numpy(), inside.numpy(), atol=1e-6)  # identity inside
    (far,) = project([base + 5.0 * tf.random.normal(base.shape)])
    assert float(tf.norm(far - base)) <= 2.0 + 1e-4
    assert float(tf.reduce_min(far)) >= -1.0 and float(tf.reduce_max(far)) <= 1.0


@pytest.mark.parametrize("method", ["penalty", "approxgrad", "rmd"])
def test_attack_and_baseline_stay_within_the_radius(method):
    fm, trainer, attack, images, labels, features = _setup(method)
    clean = trainer.snapshot()
    attack.set_pair(images[0], int(labels[0]), features[1], int(labels[1]))
    start = np.linalg.norm(fm.extract(images[:1])[0] - features[1])
    poison = attack.craft(0.5, 20, clean)
    assert np.linalg.norm(poison - images[0]) <= 0.5 + 1e-4 and poison.min() >= -1 and poison.max() <= 1
    assert np.linalg.norm(fm.extract(poison[None])[0] - features[1]) < start  # features moved to the target
    for v, c in zip(trainer.variables, clean):  # craft starts from the given weights every time
        assert v.shape == c.shape
    baseline = poisoning.FeatureCollision(fm, beta=0.1, lr=0.5).craft(images[0], features[1], 0.5, 20)
    assert np.linalg.norm(baseline - images[0]) <= 0.5 + 1e-4
    assert np.linalg.norm(fm.extract(baseline[None])[0] - features[1]) < start


def test_radius_search_and_success_curve():
    tried = []

    def craft(r):
        tried.append(r)
        return np.full(4, r / 2.0)

    rec = poisoning.smallest_flipping_radius(craft, lambda p: p[0] >= 1.5, np.zeros(4), [4.0, 1.0, 3.0, 2.0])
    assert tried == [1.0, 2.0, 3.0] and rec["radius"] == 3.0
    assert rec["distortions"] == {"1.0": 1.0, "2.0": 2.0, "3.0": 3.0}
    miss = poisoning.smallest_flipping_radius(craft, lambda p: False, np.zeros(4), [1.0, 2.0])
    assert miss["radius"] is None and list(miss["distortions"]) == ["1.0", "2.0"]
    curve = poisoning.success_curve([rec, miss], [1.0, 2.0, 3.0, 4.0])
    assert curve["success_rate"] == [0.0, 0.0, 0.5, 0.5]
    assert curve["average_distortion"] == [1.0, 2.0, 2.5, 2.5]


def test_features_from_other_weights_are_rejected():
    fm = tiny_feature_map(seed=0)
    images = np.random.default_rng(5).uniform(-1, 1, (2, *SHAPE)).astype(np.float32)
    poisoning.check_features_match(fm, images, fm.extract(images), "f.h5")
    with pytest.raises(datasets.DataFormatError, match="same --weights"):
        poisoning.check_features_match(tiny_feature_map(seed=1), images, fm.extract(images), "f.h5")


def test_base_is_the_nearest_training_point_of_the_other_class():
    feats = np.array([[0.0, 0.0], [1.0, 0.0], [0.2, 0.0], [5.0, 5.0]])
    labels = np.array([0, 1, 0, 1])
    assert poisoning.closest_other_class(feats, labels, np.array([0.1, 0.0]), 0) == 1
    assert poisoning.closest_other_class(feats, labels, np.array([0.1, 0.0]), 1) == 0

"""The folded NumPy forward pass computes the Chainer generator's function, so it cannot drift."""

from pathlib import Path

import chainer
import numpy as np
import pytest

from model.classifier import Classifier, load_classifier, predict
from model.cpu_kernels import tap_matrices
from model.export import load_generator
from model.images import to_uint8
from model.inference import FoldedClassifier, FoldedGenerator, spread, spread_matrix
from model.net import Generator
from model.sampling import generate, one_hot, seeds_noise

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def trained_looking(chain: chainer.Chain, seed: int, scale: float = 0.3) -> chainer.Chain:
    """`chain` with large weights and batch-norm statistics, gains and biases far from 0 and 1.

    Folding a batch norm of mean 0 and variance 1 changes nothing, which would let a fold that
    forgets the statistics pass.
    """
    rng = np.random.RandomState(seed)
    for name, param in chain.namedparams():
        if param.ndim > 1 or name.endswith(("gamma", "beta")):
            param.array[...] = rng.normal(0, scale, param.shape)
    for link in chain.links():
        if isinstance(link, chainer.links.BatchNormalization):
            link.avg_mean[...] = rng.normal(0, 1, link.avg_mean.shape)
            link.avg_var[...] = rng.uniform(0.2, 3, link.avg_var.shape)
    return chain


def random_inputs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise of n random seeds and continuous label vectors, each value in [0, 1]."""
    rng = np.random.default_rng(seed)
    return seeds_noise(rng.integers(0, 2**32, n)), rng.random((n, 10), dtype=np.float32)


@pytest.mark.parametrize("batch", [1, 17])
def test_folded_forward_matches_chainer(batch):
    gen = trained_looking(Generator(ch=16), seed=3)
    z, labels = random_inputs(batch, seed=batch)
    expected = generate(gen, z, labels)
    folded = FoldedGenerator(gen)(z, labels)
    assert folded.shape == expected.shape == (batch, 1, 28, 28) and folded.dtype == np.float64
    assert np.abs(folded - expected).max() <= 1e-5
    assert expected.std() > 0.05  # the pictures are not flat, so the comparison means something


@pytest.mark.parametrize(
    ("n", "h", "w", "c", "oc"), [(1, 7, 7, 8, 4), (3, 7, 7, 8, 4), (2, 3, 5, 4, 1), (1, 1, 1, 3, 2)]
)
def test_spread_is_chainers_transposed_convolution(n, h, w, c, oc):
    """Every border, batch and channel count, in float64, where a misplaced tap is far above rounding."""
    rng = np.random.default_rng(n * 100 + h)
    x, weights = rng.standard_normal((n, c, h, w)), rng.standard_normal((c, oc, 4, 4))
    expected = chainer.functions.deconvolution_2d(x, weights, stride=2, pad=1).array
    got = spread(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), spread_matrix(tap_matrices(weights)))
    assert got.shape == (n, 2 * h, 2 * w, oc)
    np.testing.assert_allclose(got.transpose(0, 3, 1, 2), expected, rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def shipped():
    gen, _ = load_generator(WEIGHTS)
    return gen, FoldedGenerator(gen)


def test_folded_shipped_generator_matches_chainer_on_random_labels_and_seeds(shipped):
    gen, folded = shipped
    z, labels = random_inputs(200, seed=0)
    assert np.abs(folded(z, labels) - generate(gen, z, labels)).max() <= 1e-5


def test_folded_shipped_generator_draws_the_same_pictures_as_chainer(shipped):
    """The ten digits at ten seeds: the same uint8 pixels, but for a rare one level off.

    A pixel whose value lies within float rounding of a level's edge can round either way (4 pixels
    of 1,176,000 on 1,500 pictures, docs/performance.md; 1 of these 78,400 for the shipped weights).
    """
    gen, folded = shipped
    z = np.tile(seeds_noise(range(10)), (10, 1))
    labels = one_hot(np.repeat(np.arange(10), 10))
    off = np.abs(to_uint8(folded(z, labels)).astype(int) - to_uint8(generate(gen, z, labels)))
    assert off.max() <= 1 and np.count_nonzero(off) <= 2, f"{np.count_nonzero(off)} pixels differ"


def test_a_picture_is_the_same_on_every_call(shipped):
    _, folded = shipped
    z, labels = random_inputs(3, seed=5)
    first = folded(z[:1], labels[:1])
    for _ in range(3):
        np.testing.assert_array_equal(folded(z[:1], labels[:1]), first)


@pytest.mark.parametrize("batch", [1, 13])
def test_folded_classifier_matches_chainer(batch):
    clf = trained_looking(Classifier(ch=4, n_features=8), seed=5, scale=0.1)
    images = np.random.default_rng(batch).random((batch, 1, 28, 28), dtype=np.float32)
    expected, _ = predict(clf, images)
    folded = FoldedClassifier(clf)(images)
    assert folded.shape == (batch, 10)
    assert np.abs(folded - expected).max() <= 1e-5
    assert expected.max(axis=1).min() < 0.9  # not all saturated, so the comparison means something


def test_folded_shipped_classifier_matches_chainer_on_generated_digits(shipped):
    gen, folded_gen = shipped
    clf, _ = load_classifier(WEIGHTS)
    z, labels = random_inputs(200, seed=2)  # mixed labels: many pictures the classifier is unsure of
    images = to_uint8(folded_gen(z, labels))[:, None].astype(np.float32) / 255
    expected, _ = predict(clf, images)
    assert np.abs(FoldedClassifier(clf)(images) - expected).max() <= 1e-5
    assert expected.max(axis=1).min() < 0.6
